"""One fuzz run: generated requests against real agent, orchestrator and bridge processes.

The mesh: one agent process serving `analyst` and `writer` (scripted model), the orchestrator
(static discovery, the `analysis` pipeline), the bridge (SQLite task store). Then `grpc_budget`
gRPC requests, every method of `meshscope.v1.AgentService` and `meshscope.v1.Orchestrator`, their
bytes from `fuzz.protos.requests`, and `http_budget` HTTP requests to the bridge from
`fuzz.http.http_requests`. The verdict: no gRPC status INTERNAL or UNKNOWN (a request the server
cannot use is the caller's mistake: INVALID_ARGUMENT and kin), no HTTP 5xx and no JSON-RPC internal
error (-32603, in an answer's body or an SSE event), no traceback in any log,
and every server alive and answering afterwards (health SERVING, a real run through the bridge).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from fuzz.http import HttpRequest, http_requests
from fuzz.protos import requests
from meshscope.cli.launch import ServiceProcess, launch, meshscope_command
from meshscope.testing import child_env
from meshscope.v1 import agent_pb2, common_pb2, orchestrator_pb2

__all__ = ["FuzzReport", "run_fuzz"]

MESH = "agents: [analyst, writer]\npipelines:\n  analysis: {kind: sequential, steps: [analyst, writer]}\n"
AGENT_METHODS: list[tuple[str, type, bool]] = [
    ("/meshscope.v1.AgentService/Invoke", agent_pb2.InvokeRequest, True),
    ("/meshscope.v1.AgentService/GetCard", agent_pb2.GetCardRequest, False),
    ("/meshscope.v1.AgentService/ListSessions", common_pb2.ListSessionsRequest, False),
    ("/meshscope.v1.AgentService/GetSession", common_pb2.GetSessionRequest, False),
    ("/meshscope.v1.AgentService/DeleteSession", common_pb2.DeleteSessionRequest, False),
]
ORCHESTRATOR_METHODS: list[tuple[str, type, bool]] = [
    ("/meshscope.v1.Orchestrator/Run", orchestrator_pb2.RunRequest, True),
    ("/meshscope.v1.Orchestrator/ListAgents", orchestrator_pb2.ListAgentsRequest, False),
    ("/meshscope.v1.Orchestrator/ListPipelines", orchestrator_pb2.ListPipelinesRequest, False),
    ("/meshscope.v1.Orchestrator/ListSessions", common_pb2.ListSessionsRequest, False),
    ("/meshscope.v1.Orchestrator/GetSession", common_pb2.GetSessionRequest, False),
    ("/meshscope.v1.Orchestrator/DeleteSession", common_pb2.DeleteSessionRequest, False),
]
CALL_TIMEOUT_S = 15.0
STREAM_READ_S = 3.0
"""How long an SSE answer is read before the fuzzer moves on (a run streams; a subscription waits)."""


@dataclass
class FuzzReport:
    grpc_statuses: Counter[str] = field(default_factory=Counter)
    http_statuses: Counter[int] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    """The requests that got INTERNAL, UNKNOWN, a 5xx or JSON-RPC's -32603 (the first 20)."""
    bad_count: int = 0
    tracebacks: dict[str, int] = field(default_factory=dict)
    alive: dict[str, bool] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.grpc_statuses.values()) + sum(self.http_statuses.values())

    @property
    def passed(self) -> bool:
        return not self.bad_count and not any(self.tracebacks.values()) and all(self.alive.values())

    def _bad(self, what: str) -> None:
        self.bad_count += 1
        if len(self.bad) < 20:
            self.bad.append(what[:400])

    def table(self) -> str:
        lines = [f"{self.requests} requests"]
        lines.append("gRPC statuses: " + ", ".join(f"{k} {v}" for k, v in self.grpc_statuses.most_common()))
        lines.append("HTTP statuses: " + ", ".join(f"{k} {v}" for k, v in sorted(self.http_statuses.items())))
        lines.append(f"INTERNAL/UNKNOWN/5xx/-32603: {self.bad_count}")
        lines += [f"  {b}" for b in self.bad]
        lines.append("tracebacks in logs: " + ", ".join(f"{k} {v}" for k, v in self.tracebacks.items()))
        lines.append(
            "alive afterwards: " + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in self.alive.items())
        )
        lines.append(f"verdict: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines)


def _settings(budget: int) -> settings:
    return settings(
        max_examples=budget,
        deadline=None,
        database=None,
        phases=[Phase.generate],  # nothing raises: every outcome is counted, no shrinking
        suppress_health_check=list(HealthCheck),
    )


def fuzz_grpc(targets: dict[str, str], budget: int, report: FuzzReport) -> None:
    if not budget:
        return
    channels = {name: grpc.insecure_channel(address) for name, address in targets.items()}
    methods = [("agents", m) for m in AGENT_METHODS] + [("orchestrator", m) for m in ORCHESTRATOR_METHODS]

    @st.composite
    def calls(draw: st.DrawFn) -> tuple[str, str, bytes, bool]:
        server, (path, cls, streaming) = draw(st.sampled_from(methods))
        return server, path, draw(requests(cls)), streaming

    @_settings(budget)
    @given(calls())
    def one(call: tuple[str, str, bytes, bool]) -> None:
        server, path, wire, streaming = call
        channel = channels[server]
        try:
            if streaming:
                for _ in channel.unary_stream(path)(wire, timeout=CALL_TIMEOUT_S):
                    pass
            else:
                channel.unary_unary(path)(wire, timeout=CALL_TIMEOUT_S)
            code = grpc.StatusCode.OK
            details = ""
        except grpc.RpcError as error:
            code, details = error.code(), str(error.details())
        report.grpc_statuses[code.name] += 1
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            report._bad(f"{server} {path} {code.name}: {details} <- {wire[:80]!r}")

    try:
        one()
    finally:
        for channel in channels.values():
            channel.close()


def fuzz_http(bridge_url: str, budget: int, report: FuzzReport) -> None:
    if not budget:
        return
    with httpx.Client(base_url=bridge_url, timeout=CALL_TIMEOUT_S) as http:

        @_settings(budget)
        @given(http_requests())
        def one(request: HttpRequest) -> None:
            status, internal = _send(http, request)
            report.http_statuses[status] += 1
            if status >= 500 or internal:
                report._bad(
                    f"{request.method} {request.path} -> {status} <- {request.body[:120]!r} {request.headers}"
                )

        one()


def _send(http: httpx.Client, request: HttpRequest) -> tuple[int, bool]:
    """The response's status, and whether its body carries JSON-RPC's internal error (-32603, in a
    200 answer or an SSE event): a 5xx in all but status (an SSE answer is read for at most
    STREAM_READ_S, then dropped)."""
    seen = b""
    with http.stream(request.method, request.path, headers=request.headers, content=request.body) as response:
        began = time.monotonic()
        for chunk in response.iter_raw():
            seen = (seen + chunk)[-65536:]
            if b"-32603" in seen or time.monotonic() - began > STREAM_READ_S:
                break
        return response.status_code, b"-32603" in seen


def _alive(mesh: dict[str, ServiceProcess]) -> dict[str, bool]:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    alive: dict[str, bool] = {}
    for name in ("agents", "orchestrator"):
        with grpc.insecure_channel(mesh[name].address) as channel:
            try:
                status = (
                    health_pb2_grpc.HealthStub(channel)
                    .Check(health_pb2.HealthCheckRequest(), timeout=5)
                    .status
                )
                alive[name] = status == health_pb2.HealthCheckResponse.SERVING
            except grpc.RpcError:
                alive[name] = False
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {
            "message": {"messageId": "after-fuzz", "role": "ROLE_USER", "parts": [{"text": "still there?"}]}
        },
    }
    try:
        answer = httpx.post(
            f"{mesh['bridge'].address}/agents/analysis/",
            json=body,
            headers={"A2A-Version": "1.0"},
            timeout=30,
        ).json()
        alive["bridge"] = answer["result"]["task"]["status"]["state"] == "TASK_STATE_COMPLETED"
    except (httpx.HTTPError, KeyError, ValueError):
        alive["bridge"] = False
    return alive


def run_fuzz(
    folder: Path, grpc_budget: int, http_budget: int, echo: Callable[[str], None] = print
) -> FuzzReport:
    """Start the mesh, fuzz it, check it is alive and its logs clean, stop it (see the module docstring)."""
    env = child_env({"MESHSCOPE_LOG_LEVEL": "WARNING", "MESHSCOPE_BRIDGE_RATE_LIMIT": "off"})
    mesh: dict[str, ServiceProcess] = {}
    report = FuzzReport()
    try:
        mesh["agents"] = launch(
            meshscope_command(
                "serve", "agents", "--agents", "analyst,writer", "--model", "scripted", "--port", "0"
            ),
            env,
        )
        (folder / "mesh.yaml").write_text(MESH)
        static = f"analyst={mesh['agents'].address};writer={mesh['agents'].address}"
        mesh["orchestrator"] = launch(
            meshscope_command("serve", "orchestrator", "-f", str(folder / "mesh.yaml"), "--port", "0"),
            env | {"MESHSCOPE_STATIC_ENDPOINTS": static},
        )
        mesh["bridge"] = launch(
            meshscope_command("serve", "bridge", "--port", "0"),
            env
            | {
                "MESHSCOPE_ORCHESTRATOR": mesh["orchestrator"].address,
                "MESHSCOPE_BRIDGE_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'bridge.db'}",
            },
        )
        echo(f"fuzz: {grpc_budget} gRPC requests ...")
        fuzz_grpc(
            {"agents": mesh["agents"].address, "orchestrator": mesh["orchestrator"].address},
            grpc_budget,
            report,
        )
        echo(f"fuzz: {http_budget} HTTP requests ...")
        fuzz_http(mesh["bridge"].address, http_budget, report)
        report.alive = _alive(mesh)
    finally:
        for process in mesh.values():
            process.stop()
    report.tracebacks = {name: sum("Traceback" in line for line in p.log) for name, p in mesh.items()}
    return report
