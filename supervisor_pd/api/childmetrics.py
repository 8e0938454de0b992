"""The children's own /metrics, relabelled into one exposition with supervisor_pd's.

Every child sample gets the same label set, `component` (`server`, `coordinator`), `process`
(the process's name, as on supervisor_pd's own families) and `role` (`prefill`/`decode`, empty
for the Coordinator); a child's own label of one of those names becomes `exported_<name>`, as
Prometheus does with `honor_labels: false`. Each target has `supervisor_pd_child_scrape_up` and
`supervisor_pd_child_scrape_duration_seconds`: a child that does not answer is `0`, and the scrape
of supervisor_pd itself never fails because of it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from supervisor_pd.runtime.snapshot import Snapshot
from supervisor_pd.runtime.spec import Kind

if TYPE_CHECKING:
    from supervisor_pd.plan.model import Plan

TARGET_LABELS = ("component", "process", "role")
_SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created", "_info")
# The Servers' queue gauges (MindIE-LLM src/server/endpoint/http_wrapper/prometheus_metrics.cpp:118-127),
# summed over the Servers into the service-wide gauges below.
SERVICE_TOTALS = {
    "supervisor_pd_service_requests_running": (
        "num_requests_running",
        "Requests running on the Servers (sum of their num_requests_running).",
    ),
    "supervisor_pd_service_requests_waiting": (
        "num_requests_waiting",
        "Requests queued on the Servers (sum of their num_requests_waiting).",
    ),
}
SCRAPE_UP = "supervisor_pd_child_scrape_up"
SCRAPE_SECONDS = "supervisor_pd_child_scrape_duration_seconds"


@dataclass
class Family:
    help: str = ""
    kind: str = ""
    samples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Target:
    labels: dict[str, str]
    url: str


@dataclass(frozen=True)
class Scraped:
    text: str | None  # None: no answer, an error status or a timeout
    seconds: float


def label_text(labels: dict[str, str]) -> str:
    return ",".join(f'{name}="{value}"' for name, value in labels.items())


def relabel(
    text: str, labels: dict[str, str], families: dict[str, Family], totals: dict[str, float] | None = None
) -> None:
    """Add `labels` to every sample of `text`, grouping samples by family into `families`; the
    values of the metrics named in `totals` are added to it. One pass, plain string operations:
    this runs in the event loop for every child on every scrape."""
    ours = label_text(labels)
    bare = "{" + ours + "}"
    more = "{" + ours + ","
    clashes = tuple(f'{name}="' for name in labels)
    collide = re.compile(r"(^|,)\s*(" + "|".join(labels) + r')="')
    current = ""
    owner = ""
    samples: list[str] = []
    for line in text.split("\n"):
        if not line or line.isspace():
            continue
        if line[0] == "#":
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                family = families.setdefault(parts[2], Family())
                if parts[1] == "HELP":
                    family.help = family.help or (parts[3] if len(parts) > 3 else "")
                else:
                    family.kind = family.kind or (parts[3] if len(parts) > 3 else "untyped")
                    current = parts[2]
            continue
        brace = line.find("{")
        space = line.find(" ")
        if brace != -1 and (space == -1 or brace < space):
            name = line[:brace]
            rest = line[brace + 1 :]
            if rest.startswith("}"):
                sample = name + bare + rest[1:]
            else:
                if any(clash in rest for clash in clashes):
                    close = rest.rfind("}")
                    rest = collide.sub(r'\1exported_\2="', rest[:close]) + rest[close:]
                sample = name + more + rest
        else:
            name = line[:space] if space != -1 else line
            sample = name + bare + line[len(name) :]
        if name != owner:
            owner = name
            family_name = (
                current
                if current and (name == current or (name.startswith(current) and name[len(current) :] in _SUFFIXES))
                else name
            )
            samples = families.setdefault(family_name, Family()).samples
            if totals is not None and name in totals:
                with contextlib.suppress(ValueError, IndexError):
                    totals[name] += float(line.rsplit(" ", 1)[1])
        elif totals is not None and name in totals:
            with contextlib.suppress(ValueError, IndexError):
                totals[name] += float(line.rsplit(" ", 1)[1])
        samples.append(sample)


def _scheme(plan: Plan, link: str) -> str:
    return "https" if plan.tls.on(link) else "http"


def targets(plan: Plan, view: Snapshot) -> list[Target]:
    found = []
    for child in view.processes:
        server = child.spec.server
        if child.kind is Kind.SERVER and server is not None:
            role = child.role or server.role.value
            found.append(
                Target(
                    {"component": Kind.SERVER.value, "process": child.name, "role": role},
                    f"{_scheme(plan, 'server_metrics')}://{server.ip}:{server.ports.metrics}/metrics",
                )
            )
    coordinator = plan.coordinator
    name = next((child.name for child in view.of_kind(Kind.COORDINATOR)), Kind.COORDINATOR.value)
    found.append(
        Target(
            {"component": Kind.COORDINATOR.value, "process": name, "role": ""},
            f"{_scheme(plan, 'coordinator_metrics')}://{coordinator.manage_ip}:{coordinator.external_port}/metrics",
        )
    )
    return found


def merge(found: list[Target], scraped: list[Scraped]) -> str:
    """Every target's families, relabelled and grouped, then the scrape's own gauges and the
    service-wide queue gauges."""
    families: dict[str, Family] = {}
    up = Family(help="1 if the child's own /metrics answered supervisor_pd's last scrape of it.", kind="gauge")
    seconds = Family(help="How long supervisor_pd's last scrape of the child's /metrics took.", kind="gauge")
    totals = {source: 0.0 for source, _ in SERVICE_TOTALS.values()}
    for target, result in zip(found, scraped, strict=True):
        labels = label_text(target.labels)
        up.samples.append(f"{SCRAPE_UP}{{{labels}}} {1 if result.text is not None else 0}")
        seconds.samples.append(f"{SCRAPE_SECONDS}{{{labels}}} {result.seconds:.6f}")
        if result.text is None:
            continue
        server = target.labels["component"] == Kind.SERVER.value
        relabel(result.text, target.labels, families, totals if server else None)
    families[SCRAPE_UP] = up
    families[SCRAPE_SECONDS] = seconds
    rendered = "".join(render(name, family) for name, family in families.items())
    return rendered + "".join(
        f"# HELP {name} {text}\n# TYPE {name} gauge\n{name} {totals[source]}\n"
        for name, (source, text) in SERVICE_TOTALS.items()
    )


def render(name: str, family: Family) -> str:
    lines = [f"# HELP {name} {family.help}"] if family.help else []
    if family.kind:
        lines.append(f"# TYPE {name} {family.kind}")
    lines.extend(family.samples)
    return "\n".join(lines) + "\n" if lines else ""
