"""NPU and link health on /metrics, read from the engine's snapshot at scrape time.

Chip series carry `process` (the Server that owns the chip), `npu_id`, `chip_id` (npu-smi's ids)
and `phy_id` (the physical id hccn_tool and /dev/davinciN use). A reading the last collection
could not get (its tool failed) has no series; `supervisor_pd_npu_up` says which chips were read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from supervisor_pd.runtime.npuwatch import LINK_UP, NET_OK, NET_UNMEASURED, NOT_FAULTS
from supervisor_pd.runtime.snapshot import Snapshot
from supervisor_pd.runtime.spec import Kind

View = Callable[[], Snapshot]
CHIP = ["process", "npu_id", "chip_id", "phy_id"]
MIB = 1024 * 1024


def _gauge(name: str, text: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, text, labels=[*CHIP, *extra])


class NpuCollector(Collector):
    def __init__(self, view: View) -> None:
        self.view = view

    def collect(self) -> Iterable[Metric]:
        view = self.view()
        npu = view.npu
        up = _gauge("supervisor_pd_npu_up", "1 if the last collection read the chip's row of npu-smi info.")
        healthy = _gauge("supervisor_pd_npu_healthy", "1 if npu-smi's health is OK or Warning, 0 for a fault.")
        health = _gauge(
            "supervisor_pd_npu_health_info",
            "npu-smi's health word for the chip and, when it is not OK, its error code.",
            ("health", "error_code"),
        )
        temperature = _gauge("supervisor_pd_npu_temperature_celsius", "Chip temperature (npu-smi info).")
        power = _gauge("supervisor_pd_npu_power_watts", "Card power, on the chip npu-smi prints it for.")
        used = _gauge("supervisor_pd_npu_hbm_used_bytes", "HBM in use.")
        total = _gauge("supervisor_pd_npu_hbm_total_bytes", "HBM size.")
        aicore = _gauge("supervisor_pd_npu_aicore_utilization_ratio", "AI Core utilisation, 0 to 1.")
        link = _gauge("supervisor_pd_npu_link_up", "1 if hccn_tool says the chip's RoCE link is UP, 0 if DOWN.")
        net = _gauge(
            "supervisor_pd_npu_net_healthy",
            "1 if hccn_tool's net health is Success, 0 for a failure (no series while nothing is measured).",
        )
        net_info = _gauge("supervisor_pd_npu_net_health_info", "hccn_tool's net health word.", ("status",))
        for chip in npu.chips:
            labels = [chip.server, str(chip.npu_id), str(chip.chip_id), str(chip.phy_id)]
            latest = chip.latest
            reading = latest.reading if latest is not None else None
            up.add_metric(labels, 1.0 if reading is not None else 0.0)
            if latest is None:
                continue
            if reading is not None:
                code = latest.detail.error_code if latest.detail is not None else None
                healthy.add_metric(labels, 1.0 if reading.health in NOT_FAULTS else 0.0)
                health.add_metric([*labels, reading.health, code or ""], 1.0)
                for family, value, scale in (
                    (temperature, reading.temp_c, 1.0),
                    (power, reading.power_w, 1.0),
                    (used, reading.hbm_used_mb, MIB),
                    (total, reading.hbm_total_mb, MIB),
                    (aicore, reading.aicore_pct, 0.01),
                ):
                    if value is not None:
                        family.add_metric(labels, float(value) * scale)
            if latest.link is not None:
                link.add_metric(labels, 1.0 if latest.link == LINK_UP else 0.0)
            if latest.net is not None:
                net_info.add_metric([*labels, latest.net], 1.0)
                if latest.net not in NET_UNMEASURED:
                    net.add_metric(labels, 1.0 if latest.net == NET_OK else 0.0)
        yield from (up, healthy, health, temperature, power, used, total, aicore, link, net, net_info)
        yield from self._servers(view)
        yield from self._collector(view)

    @staticmethod
    def _servers(view: Snapshot) -> Iterable[Metric]:
        fault = GaugeMetricFamily(
            "supervisor_pd_process_npu_fault",
            "1 while a Server has a bad chip or link (not ready; the policy applies), by the last known readings.",
            labels=["process"],
        )
        for process in view.of_kind(Kind.SERVER):
            fault.add_metric([process.name], 1.0 if process.npu_fault else 0.0)
        yield fault

    @staticmethod
    def _collector(view: Snapshot) -> Iterable[Metric]:
        npu = view.npu
        collections = CounterMetricFamily(
            "supervisor_pd_npu_collections", "NPU and link health collections finished since the start."
        )
        collections.add_metric([], float(npu.collections))
        errors = CounterMetricFamily(
            "supervisor_pd_npu_collector_errors",
            "Tool runs of the NPU health collector that failed, timed out or printed what cannot be read.",
            labels=["tool"],
        )
        tools = ["npu-smi", *(["hccn_tool"] if any(chip.link_checked for chip in npu.chips) else [])]
        for tool in sorted(set(tools) | set(npu.errors)):
            errors.add_metric([tool], float(npu.errors.get(tool, 0)))
        tool_up = GaugeMetricFamily(
            "supervisor_pd_npu_collector_up",
            "1 if every run of the tool answered in the last collection.",
            labels=["tool"],
        )
        seconds = GaugeMetricFamily("supervisor_pd_npu_collection_seconds", "How long the last collection took.")
        age = GaugeMetricFamily("supervisor_pd_npu_collection_age_seconds", "Time since the last collection ended.")
        last = npu.last
        if last is not None:
            failing = {failure.tool for failure in last.failures}
            for tool in tools:
                tool_up.add_metric([tool], 0.0 if tool in failing else 1.0)
            seconds.add_metric([], last.finished - last.started)
            age.add_metric([], time.monotonic() - last.finished)
        yield from (collections, errors, tool_up, seconds, age)
