"""Free loopback ports, for servers that must be told their port before they start.

The mesh's own servers never need this: they bind port 0 and print the port they got
(`meshscope: serving ... on host:port`). A dev Consul needs four ports on its command line
and a dev redis-server one, and a test that wants "an address where nothing listens" needs
one too; that is what `free_port` is for.
"""

from __future__ import annotations

import socket

__all__ = ["free_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now.

    The kernel picks it (bind to port 0) and the socket is closed before returning, so
    another process may take it before the caller binds it: fine for a dev server started
    at once, or for an address that must refuse connections, never a reservation.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
