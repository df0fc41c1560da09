"""A prometheus_client collector whose values are computed from the DuckDB store, the source of truth.

Nothing is counted in process memory: every value is derived from stored rows (cumulative per-agent totals from
``rollup``, the loop's tables from ``domain_tables``), so the same numbers come out of any process, at any time, and
a counter can never go backwards because a short-lived process exited. Label sets come from the agents the caller
names (the registry) and the agents with live runs, never from imported history alone, so a file of made-up
names cannot multiply the series. Known label sets (those agents, every reason code and outcome) are exported at 0
before their first increment, so that the first one shows in ``increase()`` and ``rate()``.

The kill switch and the configured thresholds are files, read fresh for every exposition; the store values come
from a snapshot, and every exposition says how old it is (``agent_pipeline_metrics_snapshot_age_seconds``) and
whether it was taken for this exposition (``agent_pipeline_metrics_snapshot_fresh``). A scrape server answers
within ``SCRAPE_ANSWER_S`` even while a writer holds the store: the kill switch always, the rest from the last
good snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample as PromSample
from prometheus_client.utils import floatToGoString

from agent_pipeline.metrics import domain_tables, rollup
from agent_pipeline.metrics.spec import BY_NAME, HISTOGRAMS, METRICS, MetricSpec, Sample
from agent_pipeline.store import Store, StoreBusy, database_errors
from agent_pipeline.trading.state import trading_date

log = logging.getLogger(__name__)

DEFAULT_STORE_TIMEOUT_S = 10.0
# Prometheus' default scrape timeout is 10 s: a scrape server answers well within it, busy store or not.
SCRAPE_ANSWER_S = 2.0

_LAST_GAUGES = {"latency_seconds": "agent_last_latency_seconds", "cost_usd": "agent_last_cost_usd",
                "reward": "agent_last_reward"}


def _family(spec: MetricSpec) -> Metric:
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=spec.labels)
    if spec.kind == "gauge":
        return GaugeMetricFamily(spec.name, spec.help, labels=spec.labels)
    return HistogramMetricFamily(spec.name, spec.help, labels=spec.labels)


def _add(fam: Metric, spec: MetricSpec, sample: Sample) -> None:
    labels = dict(sample.labels)
    if set(labels) != set(spec.labels):
        raise ValueError(f"metric {spec.name!r} takes labels {spec.labels}, got {sorted(labels)}")
    fam.add_metric([labels[name] for name in spec.labels], sample.value)


def families(agents: dict[str, rollup.AgentTotals], samples: Iterable[Sample]) -> list[Metric]:
    """Per-agent totals and samples as metric families, in ``spec.METRICS`` order (stable output, easy diffs)."""
    fams = {m.name: _family(m) for m in METRICS}
    for name in sorted(agents):
        t = agents[name]
        fams["agent_runs_total"].add_metric([name], float(t.runs))
        fams["agent_errors_total"].add_metric([name], float(t.errors))
        for h in HISTOGRAMS:
            hist, fam = t.hists[h.name], fams[h.name]
            buckets = [(floatToGoString(b), float(n)) for b, n in zip(h.buckets, hist.buckets, strict=True)]
            fam.add_metric([name], [*buckets, ("+Inf", float(hist.count))], float(hist.sum))
            if h.buckets[0] < 0:  # prometheus_client then drops _count and _sum (agent_reward): add them by hand
                fam.samples += [PromSample(f"{h.name}_count", {"agent": name}, float(hist.count)),
                                PromSample(f"{h.name}_sum", {"agent": name}, float(hist.sum))]
            last = t.last[h.column]
            if last.value is not None:
                fams[_LAST_GAUGES[h.column]].add_metric([name], float(last.value))
        if t.last_run_us is not None:
            fams["agent_last_run_timestamp_seconds"].add_metric([name], t.last_run_us / 1e6)
    for s in samples:
        if s.name not in BY_NAME:
            raise KeyError(f"metric {s.name!r} is not in spec.METRICS")
        _add(fams[s.name], BY_NAME[s.name], s)
    return [f for f in fams.values() if f.samples]


@dataclass
class Snapshot:
    """The store's values at ``taken_at`` (Unix seconds): per-agent totals and the loop's tables."""

    taken_at: float
    agents: dict[str, rollup.AgentTotals] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(t.runs for t in self.agents.values())

    def families(self, extra: Iterable[Sample] = ()) -> list[Metric]:
        """The snapshot and ``extra`` as metric families, with the snapshot's timestamp."""
        stamp = Sample("agent_pipeline_metrics_snapshot_timestamp_seconds", (), self.taken_at)
        return families(self.agents, [*self.samples, *extra, stamp])


def known_agents(agents: Iterable[str] | None) -> set[str]:
    """The caller's agent names, checked: a misspelt argument must not silently export nothing (or one series per
    letter of a name)."""
    if agents is None:
        return set()
    if isinstance(agents, str):
        raise TypeError(f"agents must be a collection of agent names, not the string {agents!r}")
    names = set(agents)
    bad = sorted(repr(a) for a in names if not isinstance(a, str) or not a)
    if bad:
        raise ValueError(f"agents must be non-empty strings, got {', '.join(bad)}")
    return names


def take_snapshot(store: Store | None = None, *, home: Path | None = None,
                  timeout_s: float = DEFAULT_STORE_TIMEOUT_S, agents: Iterable[str] | None = None,
                  now: float | None = None) -> Snapshot:
    """Fold new events into the rollup and read the loop's tables, all under one short hold of the store lock.

    ``agents``: the registry's agent names (each gets its counters at 0 before its first run); the agents with
    live runs are known either way, agents known only from imported history are not exported. ``now`` (Unix seconds, default the clock) is "today" for the PnL and the bound
    no last value may pass. Raises ``StoreBusy`` when the lock is not free within ``timeout_s``. A store that does
    not exist yet gives a snapshot of nothing (the known agents at 0) rather than creating the file.
    """
    store = store or Store.at_home(home)
    clock = time.time if now is None else (lambda: now)
    today = trading_date(datetime.fromtimestamp(clock(), UTC))
    known = known_agents(agents)
    snap = Snapshot(taken_at=clock())
    if store.exists():
        with store.connect(timeout_s=timeout_s) as conn:
            snap.agents = {agent: t for agent, t in rollup.update_rollup(store, conn, now=now).items()
                           if t.has_live or agent in known}
            snap.samples = domain_tables.read_tables(conn, agents=known | set(snap.agents), today=today)
        snap.taken_at = clock()
    else:  # read as an empty store: the known counters at 0
        with duckdb.connect() as empty:
            snap.samples = domain_tables.read_tables(empty, agents=known, today=today)
    for agent in sorted((known | domain_tables.agent_labels(snap.samples)) - set(snap.agents)):
        snap.agents[agent] = rollup.AgentTotals.zero(agent)
    return snap


def files_and_freshness(home: Path, snapshot: Snapshot | None, *, fresh: bool, now: float,
                        expectations=None, store: Store | None = None) -> list[Sample]:
    """What each exposition reads now beside the store's snapshot: the kill switch, the configured thresholds
    (``expectations``, a ``metrics.config.AlertInputs`` from the settings; None gives none), and how old the
    snapshot is (no age without one)."""
    out = [*domain_tables.kill_switch(home, store),
           *domain_tables.configured_expectations(expectations, snapshot.samples if snapshot else ()),
           Sample("agent_pipeline_metrics_snapshot_fresh", (), 1.0 if fresh else 0.0)]
    if snapshot is not None:
        out.append(Sample("agent_pipeline_metrics_snapshot_age_seconds", (), max(0.0, now - snapshot.taken_at)))
    return out


class StoreCollector:
    """Collector for scrape mode (``agent-pipeline metrics serve``) and for ad-hoc registries.

    Each collect asks for a fresh snapshot, taken in a background thread, and waits for it at most
    ``answer_within_s`` (None: until it is taken or fails). When the store is busy, unreadable or slow it serves
    the last good snapshot (marked not fresh, with its age), or none before the first; the kill switch and the
    configured thresholds are read for every collect either way. One snapshot is taken at a time; scrapes that
    arrive meanwhile wait for that one.
    """

    def __init__(self, store: Store | None = None, *, home: Path | None = None,
                 timeout_s: float = DEFAULT_STORE_TIMEOUT_S, answer_within_s: float | None = None,
                 agents: Iterable[str] | None = None, extra=None, expectations=None):
        self.store = store or Store.at_home(home)
        self.home = home or getattr(self.store, "path", None) and self.store.path.parent
        self.timeout_s = timeout_s
        self.answer_within_s = answer_within_s
        self.agents = tuple(sorted(known_agents(agents)))
        self.expectations = expectations
        self.extra = extra  # callable returning extra samples (the publisher's own counters)
        self._mutex = threading.Lock()
        self._pending: Future | None = None
        self._last: Snapshot | None = None

    def describe(self) -> list[Metric]:
        return []  # registering must not touch the store

    def _take(self, future: Future) -> None:
        try:
            snap = take_snapshot(self.store, home=self.home, timeout_s=self.timeout_s, agents=self.agents)
        except BaseException as exc:  # handed to whoever waits on the future
            with self._mutex:
                self._pending = None
            future.set_exception(exc)
        else:
            with self._mutex:
                if self._last is None or snap.taken_at >= self._last.taken_at:
                    self._last = snap
                self._pending = None
            future.set_result(snap)

    def store_values(self) -> tuple[Snapshot | None, bool]:
        """(snapshot, fresh): a snapshot taken for this call, else the last good one (or None) and False."""
        with self._mutex:
            if self._pending is None:
                self._pending = Future()
                threading.Thread(target=self._take, args=(self._pending,), name="metrics-snapshot",
                                 daemon=True).start()
            pending = self._pending
        try:
            return pending.result(timeout=self.answer_within_s), True
        except FutureTimeout:
            why = f"no snapshot within {self.answer_within_s:g} s (store busy or slow)"
        except (StoreBusy, OSError, *database_errors()) as exc:
            why = str(exc)
        except Exception as exc:  # a bug must not take the kill switch's series down with it
            log.exception("metrics: taking a snapshot failed")
            why = f"{type(exc).__name__}: {exc}"
        last = self._last
        if last is None:
            log.warning("metrics: %s; no snapshot yet, serving the kill switch only", why)
        else:
            log.warning("metrics: %s; serving the snapshot of %.0f", why, last.taken_at)
        return last, False

    def collect(self) -> Iterator[Metric]:
        snap, fresh = self.store_values()
        extra = [*files_and_freshness(self.home, snap, fresh=fresh, now=time.time(), expectations=self.expectations,
                                      store=self.store),
                 *(self.extra() if self.extra else ())]
        yield from snap.families(extra) if snap is not None else families({}, extra)


class SnapshotCollector:
    """Fixed families as a collector: what one push sends."""

    def __init__(self, snapshot: Snapshot | None, extra: Iterable[Sample] = ()):
        self._families = snapshot.families(extra) if snapshot is not None else families({}, extra)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield from self._families
