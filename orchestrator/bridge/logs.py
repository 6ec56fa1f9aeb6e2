"""Keep client mistakes out of the bridge's error log.

a2a-sdk 1.3.0 logs some refusals of a client's bad request with `logger.exception` (a
traceback at ERROR), although the client got its precise error (-32600 / -32602): a malformed
JSON-RPC envelope, params that do not parse. Our rule is tracebacks only for failures of our
own code, so those records are rewritten to one WARNING line without the traceback. Every other
record passes unchanged (an unhandled exception stays an ERROR with its traceback).
"""

from __future__ import annotations

import logging

__all__ = ["install"]

CLIENT_ERRORS = (
    "Failed to validate base JSON-RPC request",
    "Failed to parse request params",
)
"""Messages a2a-sdk logs with a traceback when the fault is the client's (prefixes)."""


class ClientErrorFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.msg, str) and record.msg.startswith(CLIENT_ERRORS):
            error = record.exc_info[1]
            record.msg = f"{record.msg}: {error}" if error is not None else record.msg
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    """Add the filter to the loggers of a2a-sdk's JSON-RPC dispatchers (1.0 and 0.3)."""
    for name in ("a2a.server.routes.jsonrpc_dispatcher", "a2a.compat.v0_3.jsonrpc_adapter"):
        logging.getLogger(name).addFilter(ClientErrorFilter())
