"""Host and port as gRPC and sockets want them, shared by the agent and orchestrator servers.

gRPC targets and bind addresses need IPv6 literals in brackets (`[::1]:50051`)
while sockets want them bare, so a host is kept bare and bracketed only when
formatted; a user may give it either way.
"""

from __future__ import annotations

import socket

import grpc


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


def bind_insecure(server: grpc.aio.Server, host: str, port: int) -> int:
    """Bind `server` to host:port (0: any free port); the port bound, or one-line OSError."""
    ensure_bindable(host, port)
    try:
        bound: int = server.add_insecure_port(host_port(host, port))
    except RuntimeError as exc:  # how grpc reports a failed bind
        raise OSError(f"cannot bind {host_port(host, port)} (in use or not local)") from exc
    return bound


def ensure_bindable(host: str, port: int) -> None:
    """Fail with one line before gRPC core would log its own multi-line bind error."""
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
