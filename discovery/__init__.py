"""Service discovery for the mesh: registration and watching, behind one small interface.

Two backends: Consul (the default; agents register with a gRPC health check
and consumers watch `health/service/<agent>?passing` with blocking queries)
and static (fixed endpoints from configuration, for tests and DNS-based
platforms).
"""

from meshscope.discovery.model import AGENT_TAG, PROTOCOL_VERSION, Instance, Registration

__all__ = ["AGENT_TAG", "PROTOCOL_VERSION", "Instance", "Registration"]
