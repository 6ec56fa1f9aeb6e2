"""The deployment files agree with the mesh they deploy (`make deploy-check` validates their syntax
with Compose and kubernetes-validate; this checks what those tools cannot know): every agent of the
mesh file is deployed, probes and health checks ask the ports the servers listen on, the grace
periods cover the drain, and the configuration they set is accepted by meshscope's own parsers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

from meshscope.config import Config
from meshscope.discovery.config import DiscoverySettings, parse_dns_services
from meshscope.orchestrator.pipelines import load_mesh
from meshscope.telemetry.settings import TelemetrySettings

ROOT = Path(__file__).resolve().parents[2]
MESH = load_mesh(str(ROOT / "mesh.yaml"))
PORTS = {"agents": 50051, "orchestrator": 50050, "bridge": 8080}


def seconds(value: str) -> float:
    """A Compose duration (`30s`, `1m0s`) in seconds."""
    total = 0.0
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)([hms])", value):
        total += float(amount) * {"h": 3600, "m": 60, "s": 1}[unit]
    return total


# ---------------------------------------------------------------- Dockerfile


def test_the_image_runs_unprivileged_with_a_health_check_and_every_source_it_installs() -> None:
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    final = parser.structure[[i for i, s in enumerate(parser.structure) if s["instruction"] == "FROM"][-1] :]
    instructions = {s["instruction"]: s["value"] for s in final}
    assert instructions["USER"] not in ("root", "0")
    assert "meshscope health" in instructions["HEALTHCHECK"]
    assert instructions["ENTRYPOINT"] == '["meshscope"]'
    assert set(instructions["EXPOSE"].split()) == {str(p) for p in PORTS.values()}
    # Every server binds all interfaces in a container, else nothing outside it can call it.
    for variable in ("MESHSCOPE_HOST", "MESHSCOPE_ORCHESTRATOR_HOST", "MESHSCOPE_BRIDGE_HOST"):
        assert f"{variable}=0.0.0.0" in instructions["ENV"]
    copied = [
        s["value"].split()[0]
        for s in parser.structure
        if s["instruction"] == "COPY" and "--from" not in s["value"]
    ]
    for source in copied:
        assert (ROOT / source).exists(), source
    pyproject = (ROOT / "pyproject.toml").read_text()
    package_dirs = set(re.findall(r'"meshscope[.\w]*" = "([\w/]+)"', pyproject))
    assert {d.split("/")[0] for d in package_dirs} <= set(copied)  # pip install finds every package
    assert any(s["instruction"] == "ARG" and s["value"].startswith("LOCAL_MODEL=0") for s in parser.structure)


# ---------------------------------------------------------------- docker-compose.yml


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = loaded["services"]
    return services


def test_compose_runs_every_agent_some_with_replicas_each_checked_and_started_in_order() -> None:
    services = compose()
    served = {}
    for service in services.values():
        command = service.get("command", [])
        if command[:2] == ["serve", "agents"]:
            served[command[command.index("--agents") + 1]] = service.get("deploy", {}).get("replicas", 1)
    assert set(served) == set(MESH.agents)
    assert max(served.values()) > 1
    for name, service in services.items():
        command = service.get("command", [])
        if command[:1] != ["serve"]:
            continue
        role = command[1]
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "meshscope", "health"], name
        assert test[3].endswith(f"127.0.0.1:{PORTS[role]}") or test[3].endswith(f":{PORTS[role]}/healthz"), (
            name
        )
        assert all(
            d["condition"] in ("service_healthy", "service_started") for d in service["depends_on"].values()
        )
        grace = float(service["environment"]["MESHSCOPE_SHUTDOWN_GRACE_S"])
        assert seconds(service["stop_grace_period"]) >= grace + 10, name  # drain + deregistration
        # What compose sets, meshscope's own parsers accept.
        environment = {k: str(v) for k, v in service["environment"].items() if "${" not in str(v)}
        DiscoverySettings.from_env(environment)
        TelemetrySettings.from_env("x", environment)
    orchestrator_needs = set(services["orchestrator"]["depends_on"])
    assert set(MESH.agents) <= orchestrator_needs
    assert "--appendonly" in services["redis"]["command"]
    assert {"consul", "redis", "jaeger", "postgres"} <= set(services)
    assert services["bridge"]["environment"]["MESHSCOPE_BRIDGE_DATABASE_URL"].startswith(
        "postgresql+asyncpg://"
    )


# ---------------------------------------------------------------- deploy/k8s


def k8s_base() -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    for path in sorted((ROOT / "deploy" / "k8s" / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            documents.extend(d for d in yaml.safe_load_all(path.read_text()) if d)
    return documents


def test_k8s_every_agent_has_a_deployment_and_a_headless_service_that_dns_discovery_names() -> None:
    documents = k8s_base()
    config = next(d for d in documents if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "meshscope")
    data = config["data"]
    discovery = DiscoverySettings.from_env(data)  # the ConfigMap is valid configuration
    TelemetrySettings.from_env("x", data)
    assert discovery.backend == "dns"
    services = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Service"}
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    names = parse_dns_services(data["MESHSCOPE_DNS_SERVICES"])
    assert set(names) == set(MESH.agents)
    for agent, (name, port) in names.items():
        service = services[name]
        assert service["spec"]["clusterIP"] == "None"  # headless: one record per ready pod
        assert service["spec"]["ports"][0]["port"] == port
        pod_labels = deployments[agent]["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        args = deployments[agent]["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args == ["serve", "agents", "--agents", agent]
    assert max(d["spec"]["replicas"] for a, d in deployments.items() if a in names) > 1


def test_k8s_probes_ask_the_served_ports_and_the_grace_covers_the_drain() -> None:
    documents = k8s_base()
    config = next(d for d in documents if d["kind"] == "ConfigMap")["data"]
    drain_s = Config(config).seconds("MESHSCOPE_SHUTDOWN_GRACE_S", 10.0)
    dns_interval_s = Config(config).seconds("MESHSCOPE_DNS_INTERVAL_S", 5.0)
    for deployment in (d for d in documents if d["kind"] == "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        container = pod["containers"][0]
        role = container["args"][1]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            spec = container[probe]
            if role == "bridge":
                assert spec["httpGet"]["path"] == "/healthz" and spec["httpGet"]["port"] == "http"
                assert ports["http"] == PORTS["bridge"]
            else:
                assert spec["grpc"]["port"] == PORTS[role], (deployment["metadata"]["name"], probe)
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
        if role == "agents":  # its pods leave DNS records: the orchestrator sees that within TTL + interval
            assert pre_stop >= dns_interval_s + 5
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain_s + 5, deployment["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container["resources"]["requests"]["memory"]
