"""The peers run's results: printed rows, the ratios and targets, JSON, markdown and a chart.

`write_outputs` puts three files in the output folder:
- `peers.json`: the run's settings, every round's figures, the medians, ratios and targets;
- `peers.md`: the markdown table of the medians and the ratios (what docs/benchmarks.md quotes);
- `peers.png`: a chart of throughput, server CPU per turn, latency and RSS per system.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.load import verdict
from bench.peers.measure import Figures
from bench.peers.systems import SPECS

MIB_TO_MB = 1.048576


# ---------------------------------------------------------------- ratios and targets


@dataclass(frozen=True)
class Ratio:
    """One system's figure over another's, from the medians."""

    name: str
    value: float
    numerator: str
    denominator: str


@dataclass(frozen=True)
class Target:
    """One of issue 11's or 13's targets, judged on this run's medians."""

    name: str
    figure: str
    met: bool


def _throughput_ratio(m: Mapping[str, Figures], a: str, b: str) -> Ratio | None:
    if a not in m or b not in m or not m[b].turns_per_s:
        return None
    return Ratio(f"{a} / {b} throughput", m[a].turns_per_s / m[b].turns_per_s, a, b)


PAIRS = (
    ("orchestrated", "agentscope-rt"),
    ("orchestrated", "raw-2hop"),
    ("direct-ns", "raw-1hop"),
    ("direct", "raw-1hop"),
    ("orchestrated", "a2a-sdk"),
    ("bridge", "a2a-sdk"),
    ("bridge-pd", "a2a-sdk"),
    ("bridge-mem", "a2a-sdk"),
    ("bridge-mem-pd", "a2a-sdk"),
)
"""The comparisons issue 11 asks for (and a2a-sdk beside them), numerator first."""


def ratios(medians: Mapping[str, Figures]) -> list[Ratio]:
    """For each of PAIRS whose systems both ran: the throughput ratio, then the server CPU per turn
    ratio (the steadier figure on a shared machine: it does not depend on the CPU share a process gets)."""
    found = [_throughput_ratio(medians, a, b) for a, b in PAIRS]
    for a, b in PAIRS:
        if a in medians and b in medians and medians[b].server_cpu_ms_per_turn:
            value = medians[a].server_cpu_ms_per_turn / medians[b].server_cpu_ms_per_turn
            found.append(Ratio(f"{a} / {b} server CPU per turn", value, a, b))
    return [r for r in found if r is not None]


def added_per_hop_ms(medians: Mapping[str, Figures]) -> tuple[float, float] | None:
    """(p50, p99) of orchestrated minus raw 2-hop, last content, divided by the 2 hops."""
    if "orchestrated" not in medians or "raw-2hop" not in medians:
        return None
    o, r = medians["orchestrated"], medians["raw-2hop"]
    return (o.last_p50_ms - r.last_p50_ms) / 2, (o.last_p99_ms - r.last_p99_ms) / 2


def targets(medians: Mapping[str, Figures]) -> list[Target]:
    """Issue 11's targets (per-delta mode) that this run's systems allow judging."""
    found: list[Target] = []
    by_name = {r.name: r for r in ratios(medians)}
    for name, floor in (
        ("orchestrated / agentscope-rt throughput", 2.0),
        ("orchestrated / raw-2hop throughput", 0.7),
        ("direct-ns / raw-1hop throughput", 0.8),
    ):
        if name in by_name:
            value = by_name[name].value
            found.append(Target(f"{name} >= {floor}x", f"{value:.2f}x", value >= floor))
    hop = added_per_hop_ms(medians)
    if hop is not None:
        for pct, value, limit in (("p50", hop[0], 1.0), ("p99", hop[1], 2.0)):
            name = f"added latency per hop vs raw relay, {pct} <= {limit:.0f} ms"
            found.append(Target(name, f"{value:+.2f} ms", value <= limit))
    if "orchestrated" in medians:
        mb = medians["orchestrated"].rss_total_mib * MIB_TO_MB
        found.append(Target("orchestrator + agent RSS <= 200 MB", f"{mb:.0f} MB", mb <= 200))
    # Issue 13 (the A2A bridge): at least the bare a2a-sdk server's throughput, and the bridge
    # hop's added latency (bridge minus orchestrated: the same path without the bridge) under 2 ms.
    for key in BRIDGES:
        if f"{key} / a2a-sdk throughput" in by_name:
            value = by_name[f"{key} / a2a-sdk throughput"].value
            found.append(Target(f"{key} / a2a-sdk throughput >= 1x", f"{value:.2f}x", value >= 1.0))
    for key in BRIDGES:
        added = added_by_bridge_ms(medians, key)
        if added is not None:
            found.append(Target(f"{key}: added latency p50 < 2 ms", f"{added[0]:+.2f} ms", added[0] < 2.0))
    return found


BRIDGES = ("bridge", "bridge-pd", "bridge-mem", "bridge-mem-pd")
"""The bridge systems (bench/peers/systems.py): issue 13's targets are judged for each."""


def added_by_bridge_ms(medians: Mapping[str, Figures], key: str) -> tuple[float, float] | None:
    """(p50, p99) of a bridge path minus the orchestrated path (last content): what the bridge adds."""
    if key not in medians or "orchestrated" not in medians:
        return None
    b, o = medians[key], medians["orchestrated"]
    return b.last_p50_ms - o.last_p50_ms, b.last_p99_ms - o.last_p99_ms


# ---------------------------------------------------------------- printing

ROW = "{:<5} {:<14} {:>9} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}"


def print_header(clients: int) -> None:
    print(ROW.format("round", "system", "first p50", "first p99", "last p50", "last p99",
                     "turns/s", "srv CPU/t", "cli CPU/t", "RSS MiB"))  # fmt: skip
    print(ROW.format("", "", "ms", "ms", "ms", "ms", f"{clients} cl.", "ms", "ms", "all"))


def print_row(label: str, f: Figures) -> None:
    print(
        ROW.format(
            label, f.key, f"{f.first_p50_ms:.2f}", f"{f.first_p99_ms:.2f}", f"{f.last_p50_ms:.2f}",
            f"{f.last_p99_ms:.2f}", f"{f.turns_per_s:.0f}", f"{f.server_cpu_ms_per_turn:.2f}",
            f"{f.client_cpu_ms_per_turn:.2f}", f"{f.rss_total_mib:.0f}",
        ),
        flush=True,
    )  # fmt: skip


def print_summary(medians: Mapping[str, Figures], rounds: Mapping[str, Sequence[Figures]]) -> None:
    """The medians, the ratios (with the per-round throughput ratios) and the targets."""
    print(ROW.format(*["-----"] * 10))
    for f in medians.values():
        print_row("med", f)
    print("\nRSS per process (MiB, median after load):")
    for f in medians.values():
        print(f"  {f.key:<14} " + ", ".join(f"{p} {v:.0f}" for p, v in f.rss_mib.items()))
    print("\nRatios (medians):")
    for r in ratios(medians):
        paired = ""
        if r.name.endswith("throughput"):
            per_round = [
                a.turns_per_s / b.turns_per_s
                for a, b in zip(rounds[r.numerator], rounds[r.denominator], strict=True)
            ]
            paired = f"   (per round: {', '.join(f'{p:.2f}' for p in per_round)})"
        print(f"  {r.name:<50} {r.value:5.2f}x{paired}")
    hop = added_per_hop_ms(medians)
    if hop is not None:
        print(
            f"  {'added per hop vs raw relay (last content)':<50} p50 {hop[0]:+.2f} ms, p99 {hop[1]:+.2f} ms"
        )
    for key in BRIDGES:
        added = added_by_bridge_ms(medians, key)
        if added is not None:
            label = f"added by {key} (last content)"
            print(f"  {label:<50} p50 {added[0]:+.2f} ms, p99 {added[1]:+.2f} ms")
    found = targets(medians)
    if found:
        print("\nTargets of issues 11 (per-delta mode) and 13 (the bridge), on this run:")
        for t in found:
            print(f"  {verdict(t.met)}  {t.name}: {t.figure}")


# ---------------------------------------------------------------- files


def markdown(medians: Mapping[str, Figures], plan: Mapping[str, Any]) -> str:
    """The medians as a markdown table, then the ratios and the targets as lists."""
    lines = [
        f"| system | turns/s ({plan['clients']} clients) | server CPU ms/turn | 1-client first content "
        "p50 / p99 | 1-client last content p50 / p99 | RSS (MB) | load generator CPU ms/turn |",
        "| --- | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for f in medians.values():
        rss = " + ".join(f"{v * MIB_TO_MB:.0f}" for v in f.rss_mib.values())
        if len(f.rss_mib) > 1:
            rss += f" = {f.rss_total_mib * MIB_TO_MB:.0f}"
        first = f"{f.first_p50_ms:.2f} / {f.first_p99_ms:.2f} ms"
        last = f"{f.last_p50_ms:.2f} / {f.last_p99_ms:.2f} ms"
        lines.append(
            f"| {SPECS[f.key].label} | {f.turns_per_s:.0f} | {f.server_cpu_ms_per_turn:.2f} | {first} | "
            f"{last} | {rss} | {f.client_cpu_ms_per_turn:.2f} |"
        )
    lines.append("")
    for r in ratios(medians):
        lines.append(f"- {r.name}: **{r.value:.2f}x**")
    hop = added_per_hop_ms(medians)
    if hop is not None:
        lines.append(
            "- added latency per hop vs the raw relay (last content): "
            f"p50 {hop[0]:+.2f} ms, p99 {hop[1]:+.2f} ms"
        )
    for t in targets(medians):
        lines.append(f"- target {t.name}: {t.figure} — **{verdict(t.met)}**")
    return "\n".join(lines) + "\n"


def _color(key: str) -> str:
    """Grey for the raw baselines, blue for meshscope, orange for the other frameworks."""
    if key.startswith("raw"):
        return "#7f7f7f"
    return "#1f77b4" if key in {"direct", "direct-ns", "orchestrated", *BRIDGES} else "#ff7f0e"


def chart(medians: Mapping[str, Figures], path: Path, title: str, clients: int) -> None:
    """A PNG of four panels: throughput, server CPU per turn, 1-client p50 latency, RSS.

    p99s are left to the table: on a shared machine they swing by tens of ms between rounds.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = list(medians.values())
    labels = [SPECS[f.key].label.replace(" (", "\n(") for f in figures]
    colors = [_color(f.key) for f in figures]
    panels: list[tuple[str, list[float], list[float] | None]] = [
        (f"turns/s, {clients} clients (higher is better)", [f.turns_per_s for f in figures], None),
        ("server CPU per turn, ms", [f.server_cpu_ms_per_turn for f in figures], None),
        ("1 client p50, ms: to the first content (dark) and the last", [f.last_p50_ms for f in figures],
         [f.first_p50_ms for f in figures]),
        ("RSS of the system's processes, MB", [f.rss_total_mib * MIB_TO_MB for f in figures], None),
    ]  # fmt: skip
    fig, axes = plt.subplots(2, 2, figsize=(13, 2.2 + 0.55 * len(figures) * 2), sharey=True)
    y = list(range(len(figures)))
    for ax, (name, values, inner) in zip(axes.flat, panels, strict=True):
        ax.barh(y, values, color=colors)
        if inner is not None:
            ax.barh(y, inner, height=0.35, color="black", alpha=0.45)
        for yi, v in zip(y, values, strict=True):
            ax.text(v, yi, f" {v:.0f}" if v >= 10 else f" {v:.2f}", va="center", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.margins(x=0.18)
        ax.set_yticks(y, labels, fontsize=8)
    axes.flat[0].invert_yaxis()  # the y axis is shared: once puts the first system on top
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load(path: Path) -> tuple[dict[str, Any], dict[str, list[Figures]], dict[str, Figures]]:
    """A saved run's `peers.json` back as (meta, rounds, medians), to render it again."""
    doc = json.loads(path.read_text())
    rounds = {k: [Figures(**f) for f in v] for k, v in doc["rounds"].items()}
    medians = {k: Figures(**f) for k, f in doc["medians"].items()}
    return doc["meta"], rounds, medians


def write_outputs(
    out: Path,
    meta: Mapping[str, Any],
    rounds: Mapping[str, Sequence[Figures]],
    medians: Mapping[str, Figures],
) -> list[Path]:
    """Write peers.json, peers.md and peers.png into `out` (created); the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "meta": dict(meta),
        "systems": {k: SPECS[k].label for k in medians},
        "rounds": {k: [asdict(f) for f in v] for k, v in rounds.items()},
        "medians": {k: asdict(f) for k, f in medians.items()},
        "ratios": {r.name: round(r.value, 4) for r in ratios(medians)},
        "added_per_hop_ms": added_per_hop_ms(medians),
        "targets": [asdict(t) for t in targets(medians)],
    }
    paths = [out / "peers.json", out / "peers.md", out / "peers.png"]
    paths[0].write_text(json.dumps(doc, indent=2) + "\n")
    paths[1].write_text(markdown(medians, meta["plan"]))
    plan = meta["plan"]
    title = (
        f"meshscope and its peers, one run: {meta['date']}, {meta['cpus']} CPUs, "
        f"medians of {plan['rounds']} rounds"
    )
    chart(medians, paths[2], title, plan["clients"])
    return paths
