"""Logging for every meshscope process: one line per event on stderr, carrying the trace.

  MESHSCOPE_LOG_LEVEL    DEBUG, INFO, WARNING, ERROR or CRITICAL (any case)     INFO
  MESHSCOPE_LOG_FORMAT   text: `<time> <LEVEL> <logger>: <message>`             text
                         json: one JSON object a line (python-json-logger), with
                         time (ISO 8601, UTC), level, logger, message and, for a
                         failure of our own code, exc_info (the traceback as one
                         string)

Every logger goes through the one handler this installs, the libraries' too: AgentScope's `as`
logger, which brings its own handler and does not propagate, is brought back to it (when
AgentScope is loaded, as it is in an agent process before logging is configured), and the
bridge starts uvicorn without its logging configuration.

A line logged while a span is current ends with ` trace_id=<32 hex> span_id=<16 hex>` (text) or
has `trace_id` and `span_id` keys (json), the W3C ids a trace viewer searches by; lines with no
span have neither.
"""

from __future__ import annotations

import logging
import sys

from meshscope.config import Config

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "configure_logging"]

LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _TraceIds(logging.Filter):
    """Adds `trace_id` and `span_id` to a record logged under a recording span.

    opentelemetry-instrumentation-logging does the same by replacing the LogRecord factory of the
    whole process and setting `0` ids on every record; a filter on our handler keeps it to our
    output and leaves the ids out of lines that have none.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if "opentelemetry.trace" in sys.modules:  # loaded only when tracing is on, or by a library
            from opentelemetry import trace

            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
        return True


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        return f"{line} trace_id={trace_id} span_id={getattr(record, 'span_id', '')}" if trace_id else line


def configure_logging() -> None:
    """Log to stderr at MESHSCOPE_LOG_LEVEL in MESHSCOPE_LOG_FORMAT (see the module docstring).

    An unknown level or format is `ConfigError`, read before anything binds by the processes that
    call this at start.
    """
    config = Config()
    level = config.choice("MESHSCOPE_LOG_LEVEL", "info", LOG_LEVELS).upper()
    fmt = config.choice("MESHSCOPE_LOG_FORMAT", "text", LOG_FORMATS)
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceIds())
    if fmt == "json":
        from pythonjsonlogger.json import JsonFormatter

        handler.setFormatter(
            JsonFormatter(
                "{levelname}{name}{message}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="time",
            )
        )
    else:
        handler.setFormatter(_TextFormatter(_TEXT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if "agentscope" in sys.modules:
        agentscope = logging.getLogger("as")
        agentscope.handlers.clear()
        agentscope.propagate = True
        agentscope.setLevel(logging.NOTSET)
