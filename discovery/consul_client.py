"""py-consul's asyncio client, configured from `ConsulSettings`."""

from __future__ import annotations

import warnings
from typing import Any

import aiohttp
import consul
import consul.aio

from meshscope.discovery.addresses import bracketed
from meshscope.discovery.config import ConsulSettings

UNREACHABLE = (aiohttp.ClientError, OSError, TimeoutError, consul.Timeout)
"""Errors that mean Consul could not be reached (as opposed to refusing a request)."""


def connect(settings: ConsulSettings) -> Any:
    """A `consul.aio.Consul`; must be called inside a running event loop."""
    # py-consul passes aiohttp a deprecated argument; the warning is theirs to fix.
    warnings.filterwarnings("ignore", "ssl_context is deprecated", DeprecationWarning)
    # py-consul joins scheme, host and port as given: an IPv6 literal needs its brackets.
    host = bracketed(settings.host)
    return consul.aio.Consul(
        host=host,
        port=settings.port,
        scheme=settings.scheme,
        token=settings.token,
        verify=settings.verify,
        cert=settings.cert,
    )


def duration(seconds: float) -> str:
    """Seconds as a Go duration string, as Consul's API wants them.

    Whole milliseconds: Go's ParseDuration takes no exponent, which `:g` would
    print from a million seconds on ("1.5e+06s").
    """
    return f"{round(seconds * 1000)}ms"


def describe_error(exc: BaseException) -> str:
    """A one-line description of a Consul failure."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
