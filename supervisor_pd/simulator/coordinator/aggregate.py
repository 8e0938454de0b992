"""The Coordinator's /metrics on its external port: the Servers' metrics summed.

(inferred) The reference says only that the Coordinator aggregates the Servers' metrics; here
every series with the same name and labels is summed across instances, histograms bucket by
bucket, and instances that do not answer are left out.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from supervisor_pd.simulator.coordinator.instances import Instance
from supervisor_pd.simulator.motortls import Link


async def _fetch(session: aiohttp.ClientSession, instance: Instance, link: Link | None) -> str:
    if link is None:  # mindie_mangment's files were refused: no scrape
        return ""
    url = link.url(instance.ip, instance.metric_port, "/metrics")
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=2), **link.options) as response:
            return await response.text() if response.status == 200 else ""
    except (aiohttp.ClientError, TimeoutError):
        return ""


async def aggregate(session: aiohttp.ClientSession, instances: list[Instance], link: Link | None = None) -> str:
    """`link`: how to reach the Servers' metrics ports (mindie_mangment)."""
    link = link if link is not None else Link()
    texts = await asyncio.gather(*(_fetch(session, instance, link) for instance in instances))
    kinds: dict[str, str] = {}
    helps: dict[str, str] = {}
    sums: OrderedDict[tuple[str, str, tuple[tuple[str, str], ...]], float] = OrderedDict()
    for text in texts:
        if not text:
            continue
        for family in text_string_to_metric_families(text):
            kinds.setdefault(family.name, family.type)
            helps.setdefault(family.name, family.documentation)
            for sample in family.samples:
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                sums[key] = sums.get(key, 0.0) + sample.value
    lines: list[str] = []
    emitted: set[str] = set()
    for (family, name, labels), value in sums.items():
        if family not in emitted:
            emitted.add(family)
            kind = kinds[family]
            exposed = family + "_total" if kind == "counter" and not family.endswith("_total") else family
            lines += [f"# HELP {exposed} {helps[family]}", f"# TYPE {exposed} {kind}"]
        label_text = ",".join(f'{k}="{v}"' for k, v in labels)
        lines.append(f"{name}{{{label_text}}} {value}" if label_text else f"{name} {value}")
    return "\n".join(lines) + "\n"
