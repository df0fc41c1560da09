"""A prometheus_client collector whose values are computed from the DuckDB store, the source of truth.

Nothing is counted in process memory: every value is derived from stored rows (cumulative per-agent totals from
``rollup``, the loop's tables from ``loop``), so the same numbers come out of any process, at any time, and a
counter can never go backwards because a short-lived process exited.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample as PromSample

from agent_pipeline.metrics import loop, rollup
from agent_pipeline.metrics.spec import BY_NAME, HISTOGRAMS, METRICS
from agent_pipeline.store import Store, StoreBusy

log = logging.getLogger(__name__)

DEFAULT_STORE_TIMEOUT_S = 10.0


def _le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _family(name: str, doc: str, kind: str) -> Metric:
    # A counter family is named without "_total" (its samples carry it), or the exposition says "_total_total".
    return Metric(name[:-len("_total")] if kind == "counter" and name.endswith("_total") else name, doc, kind)


@dataclass
class Snapshot:
    """Everything one publish exposes, computed at ``taken_at`` (Unix seconds)."""

    taken_at: float
    agents: dict[str, rollup.AgentTotals] = field(default_factory=dict)
    samples: list[loop.Sample] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(t.runs for t in self.agents.values())

    def families(self, extra: Iterable[loop.Sample] = ()) -> list[Metric]:
        """The snapshot as metric families, in ``spec.METRICS`` order (stable output, easy diffs)."""
        fams = {m.name: _family(m.name, m.help, m.kind) for m in METRICS}
        for name in sorted(self.agents):
            t = self.agents[name]
            lab = {"agent": name}
            fams["agent_runs_total"].samples.append(PromSample("agent_runs_total", lab, float(t.runs)))
            fams["agent_errors_total"].samples.append(PromSample("agent_errors_total", lab, float(t.errors)))
            for h in HISTOGRAMS:
                hist, fam = t.hists[h.name], fams[h.name]
                for bound, n in zip(h.buckets, hist.buckets, strict=True):
                    fam.samples.append(PromSample(f"{h.name}_bucket", {**lab, "le": _le(bound)}, float(n)))
                fam.samples.append(PromSample(f"{h.name}_bucket", {**lab, "le": "+Inf"}, float(hist.count)))
                # Built by hand: prometheus_client drops _sum/_count when a bound is negative (agent_reward).
                fam.samples.append(PromSample(f"{h.name}_count", lab, float(hist.count)))
                fam.samples.append(PromSample(f"{h.name}_sum", lab, float(hist.sum)))
            for h, gauge in zip(HISTOGRAMS, ("agent_last_latency_seconds", "agent_last_cost_usd", "agent_last_reward"),
                                strict=True):
                last = t.last[h.column]
                if last.value is not None:
                    fams[gauge].samples.append(PromSample(gauge, lab, float(last.value)))
            if t.last_run_us is not None:
                fams["agent_last_run_timestamp_seconds"].samples.append(
                    PromSample("agent_last_run_timestamp_seconds", lab, t.last_run_us / 1e6))
        for s in [*self.samples, *extra]:
            if s.name not in BY_NAME:
                raise KeyError(f"metric {s.name!r} is not in spec.METRICS")
            fams[s.name].samples.append(PromSample(s.name, dict(s.labels), s.value))
        fams["agent_pipeline_metrics_snapshot_timestamp_seconds"].samples.append(
            PromSample("agent_pipeline_metrics_snapshot_timestamp_seconds", {}, self.taken_at))
        return [f for f in fams.values() if f.samples]


def take_snapshot(store: Store | None = None, *, home: Path | None = None,
                  timeout_s: float = DEFAULT_STORE_TIMEOUT_S, expectations=None) -> Snapshot:
    """Fold new events into the rollup and read the loop's tables, all under one short hold of the store lock.

    Raises ``StoreBusy`` when the lock is not free within ``timeout_s``. A store that does not exist yet gives an
    empty snapshot (no series) rather than creating the file. ``expectations`` (``metrics.config.AlertInputs``,
    from the settings) adds the configured thresholds; None adds none.
    """
    store = store or Store.at_home(home)
    home = home or store.path.parent
    snap = Snapshot(taken_at=time.time())
    if store.path.exists():
        with store.connect(timeout_s=timeout_s) as conn:
            snap.agents = rollup.update_rollup(store, conn)
            for reader in loop.TABLE_READERS:
                snap.samples.extend(reader(conn))
        snap.taken_at = time.time()
    snap.samples.extend(loop.configured_expectations(expectations, snap.samples))
    snap.samples.extend(loop.kill_switch(home))
    return snap


class StoreCollector:
    """Collector for scrape mode (``agent-pipeline metrics serve``) and for ad-hoc registries.

    Each collect takes a fresh snapshot; when the store is busy past the timeout it serves the previous snapshot
    (values a few seconds old beat a failed scrape), and nothing when there is none yet.
    """

    def __init__(self, store: Store | None = None, *, timeout_s: float = DEFAULT_STORE_TIMEOUT_S,
                 extra=None, expectations=None):
        self.store = store
        self.timeout_s = timeout_s
        self.expectations = expectations
        self.extra = extra  # callable returning extra samples (the publisher's own counters)
        self._last: Snapshot | None = None

    def describe(self) -> list[Metric]:
        return []  # registering must not touch the store

    def snapshot(self) -> Snapshot:
        try:
            self._last = take_snapshot(self.store, timeout_s=self.timeout_s, expectations=self.expectations)
        except (StoreBusy, duckdb.Error) as exc:
            if self._last is None:
                raise
            log.warning("metrics: %s; serving the snapshot of %.0f", exc, self._last.taken_at)
        return self._last

    def collect(self) -> Iterator[Metric]:
        try:
            snap = self.snapshot()
        except (StoreBusy, duckdb.Error) as exc:
            log.warning("metrics: %s; no snapshot yet", exc)
            return
        yield from snap.families(self.extra() if self.extra else ())


class SnapshotCollector:
    """A fixed snapshot as a collector: what one push sends."""

    def __init__(self, snapshot: Snapshot, extra: Iterable[loop.Sample] = ()):
        self._families = snapshot.families(extra)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._families
