"""Host and port as gRPC and sockets want them, for every server and client of the mesh.

gRPC targets and bind addresses need IPv6 literals in brackets (`[::1]:50051`)
while sockets want them bare, so a host is kept bare and bracketed only when
formatted; a user may give it either way. Stdlib only.
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["bare_host", "bracketed", "ensure_bindable", "host_port", "is_loopback"]


def bare_host(host: str) -> str:
    """`host` without the brackets of an IPv6 literal ("[::1]" -> "::1")."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def bracketed(host: str) -> str:
    """`host` as a URL or gRPC target wants it: an IPv6 literal in brackets ("::1" -> "[::1]")."""
    bare = bare_host(host)
    return f"[{bare}]" if ":" in bare else bare


def host_port(host: str, port: int) -> str:
    """A gRPC address: `host:port`, with an IPv6 literal in brackets."""
    return f"{bracketed(host)}:{port}"


def is_loopback(host: str) -> bool:
    """Whether `host` only reaches this machine: `localhost`, 127.0.0.0/8 or ::1.

    A wildcard (`0.0.0.0`, `::`) or any other name is not: it may be reached from elsewhere.
    """
    bare = bare_host(host)
    if bare == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def ensure_bindable(host: str, port: int) -> None:
    """Fail with one line before gRPC core would log its own multi-line bind error.

    Raises OSError ``cannot bind host:port (<reason>)``; port 0 (any free port) is not probed.
    """
    if port == 0:
        return
    bare = bare_host(host)
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bare, port))
        except OSError as exc:
            raise OSError(f"cannot bind {host_port(bare, port)} ({exc.strerror})") from None
