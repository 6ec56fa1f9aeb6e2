"""Free loopback ports, for servers that must be told their port before they start.

The mesh's own servers never need this: they bind port 0 and print the port they got
(`meshscope: serving ... on host:port`). A dev Consul needs four ports on its command line
and a dev redis-server one, and a test that wants "an address where nothing listens" needs
one too; that is what `free_port` is for.
"""

from __future__ import annotations

import socket

__all__ = ["free_port", "free_ports"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now.

    The kernel picks it (bind to port 0) and the socket is closed before returning, so
    another process may take it before the caller binds it: fine for a dev server started
    at once, or for an address that must refuse connections, never a reservation.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def free_ports(count: int, host: str = "127.0.0.1", *, udp: bool = False) -> list[int]:
    """`count` distinct TCP ports on `host` that nothing listens on right now.

    Every socket stays bound until all are picked, so the ports differ from each other (closing
    one before binding the next lets the kernel hand the same port out twice). With `udp`, each
    port is also free for UDP: Consul's Serf listens on both under one number. As with
    `free_port`, nothing is reserved once this returns.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            tcp = socket.socket(family, socket.SOCK_STREAM)
            held.append(tcp)
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if udp:
                probe = socket.socket(family, socket.SOCK_DGRAM)
                held.append(probe)
                try:
                    probe.bind((host, port))
                except OSError:
                    continue  # taken for UDP: keep the TCP socket bound so it is not picked again
            ports.append(port)
        return ports
    finally:
        for s in held:
            s.close()
