"""The A2A agent card of each target the bridge serves.

One card per pipeline and per agent, at `/agents/<name>/.well-known/agent-card.json`, and the
default target's at the root's well-known path. Each declares:

- its interfaces: JSON-RPC (`<base>/agents/<name>/`) and HTTP+JSON (`<base>/agents/<name>`) for
  A2A 1.0, then the same two for 0.3 (a2a-sdk builds the 0.3 fields of the served card from the
  0.3 interfaces, and a 0.3 client finds nothing without them: upstream a2a-python #1111);
- streaming and push notifications;
- its skills: a pipeline's own (its name and description), an agent's from its registration
  meta (the `skills` ids the agent service registers in Consul);
- when API keys are configured, the two ways to present one (`Authorization: Bearer` and the
  `X-API-Key` header) as security schemes, either of which satisfies the requirement.
"""

from __future__ import annotations

from a2a.types import a2a_pb2
from a2a.utils.constants import PROTOCOL_VERSION_0_3, PROTOCOL_VERSION_1_0, TransportProtocol

from meshscope.orchestrator.bridge.catalog import Target

__all__ = ["API_KEY_HEADER", "build_card"]

API_KEY_HEADER = "X-API-Key"
INPUT_MODES = ("text/plain", "application/json", "application/octet-stream")
OUTPUT_MODES = ("text/plain", "application/json")


def build_card(target: Target, url: str, *, version: str, secured: bool) -> a2a_pb2.AgentCard:
    """The card of `target` served at `url` (no trailing slash: `<base>/agents/<name>` or the root)."""
    interfaces = [
        a2a_pb2.AgentInterface(url=f"{url}/", protocol_binding=binding, protocol_version=protocol)
        if binding == TransportProtocol.JSONRPC
        else a2a_pb2.AgentInterface(url=url or "/", protocol_binding=binding, protocol_version=protocol)
        for protocol in (PROTOCOL_VERSION_1_0, PROTOCOL_VERSION_0_3)
        for binding in (TransportProtocol.JSONRPC, TransportProtocol.HTTP_JSON)
    ]
    card = a2a_pb2.AgentCard(
        name=target.name,
        description=target.description,
        version=target.version or version,
        supported_interfaces=interfaces,
        capabilities=a2a_pb2.AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=list(INPUT_MODES),
        default_output_modes=list(OUTPUT_MODES),
        skills=[
            a2a_pb2.AgentSkill(
                id=skill.id,
                name=skill.id,
                description=skill.description or f"{skill.id} ({target.kind} {target.name})",
                tags=[target.kind, *target.agents],
            )
            for skill in target.skills
        ],
    )
    if secured:
        card.security_schemes["bearer"].http_auth_security_scheme.CopyFrom(
            a2a_pb2.HTTPAuthSecurityScheme(scheme="bearer", description="An API key as a bearer token.")
        )
        card.security_schemes["apiKey"].api_key_security_scheme.CopyFrom(
            a2a_pb2.APIKeySecurityScheme(location="header", name=API_KEY_HEADER, description="An API key.")
        )
        bearer = card.security_requirements.add()
        bearer.schemes.get_or_create("bearer")
        api_key = card.security_requirements.add()
        api_key.schemes.get_or_create("apiKey")
    return card
