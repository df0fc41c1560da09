"""Publishing: PUT the store-computed snapshot to the Pushgateway, or serve it on /metrics for scraping.

The Pushgateway replaces a group on PUT and never adds, so every push sends the complete cumulative state under
one fixed grouping key (``job=agent_pipeline``). Pushes are serialised by a file lock in $AGENT_PIPELINE_HOME (with
a shared store: a lock in its database, and the push state is a row there, so publishers on every host take
turns and count together) that is held from computing the snapshot until the PUT returns: a snapshot computed later is pushed later, so an older
snapshot never overwrites a newer one. When the store is busy or unreadable the group keeps the last pushed
snapshot, and only what is read from files (the kill switch, the configured thresholds), that snapshot's age and
"not fresh" are POSTed into it: POST replaces the families it names and keeps the others. A gateway that is down or slow never raises: the failure is counted in a
small state file (exported as ``agent_pipeline_metrics_push_failures_total``), and the next push catches up because
the values come from the store, not from memory. An outage is logged once, whichever processes push during it: a
WARNING with what to do at its first failure, then nothing, then one INFO line when a push succeeds again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import (
    basic_auth_handler,
    default_handler,
    generate_latest,
    push_to_gateway,
    pushadd_to_gateway,
)

from agent_pipeline.metrics.collector import (
    SCRAPE_ANSWER_S,
    Snapshot,
    SnapshotCollector,
    StoreCollector,
    files_and_freshness,
    known_agents,
    take_snapshot,
)
from agent_pipeline.metrics.config import GATEWAY_ENV, AlertInputs, MetricsConfig
from agent_pipeline.metrics.spec import Sample
from agent_pipeline.numbers import finite_number
from agent_pipeline.safe_files import read_regular, replace_atomically
from agent_pipeline.settings import pipeline_home
from agent_pipeline.store import LockBusy, Schema, Store, StoreBusy, database_errors, file_lock

log = logging.getLogger(__name__)

STATE_FILE = "metrics_push_state.json"
LOCK_FILE = "metrics_push.lock"
MAX_STATE_BYTES = 65_536
# A shared store keeps the push state in its database (one row), read and written under its push lock.
PUSH_STATE = Schema("metrics_push", ["""
    CREATE TABLE metrics_push_state (
        id INTEGER PRIMARY KEY,
        state VARCHAR NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
    );
"""])


@dataclass
class PushState:
    """What the publishers of this home have done so far (persisted; read and written under the push lock)."""

    pushes: int = 0
    failures: int = 0
    skipped_busy: int = 0
    last_snapshot_at: float = 0.0
    last_pushed_at: float = 0.0
    last_error: str = ""
    last_error_at: float = 0.0
    outage_failures: int = 0  # failed pushes since the last success (0: no outage)
    outage_since: float = 0.0  # when the first of them failed

    @classmethod
    def read(cls, path: Path) -> PushState:
        """The saved counters; "no state" (zeros) when the file is missing, damaged, or not a regular file (a
        FIFO, socket, device, directory or link is never opened for a blocking read or followed)."""
        try:
            raw = json.loads(read_regular(path, MAX_STATE_BYTES))
            if not isinstance(raw, dict):
                raise TypeError("not a JSON object")
            return cls(**{name: cls._field(name, raw[name]) for name in cls.__dataclass_fields__ if name in raw})
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError, TypeError) as exc:
            log.warning("metrics: unreadable push state %s (%s); starting from zero", path, exc)
            return cls()

    @classmethod
    def _field(cls, name: str, value):
        if name == "last_error":
            if not isinstance(value, str):
                raise ValueError(f"{name} is not text")
            return value[:2000]
        number = finite_number(value)
        if number is None or number < 0:
            raise ValueError(f"{name} is not a finite non-negative number: {value!r}")
        return int(number) if name in ("pushes", "failures", "skipped_busy") else number

    @classmethod
    def load(cls, store: Store, path: Path) -> PushState:
        """The state of the store's publishers: the row in a shared store's database, else the file."""
        if not store.shared:
            return cls.read(path)
        try:
            with store.connect(timeout_s=10.0, exclusive=False) as conn:
                store.ensure(conn, PUSH_STATE)
                row = conn.execute("SELECT state FROM metrics_push_state WHERE id = 1").fetchone()
            raw = json.loads(row[0]) if row else {}
            if not isinstance(raw, dict):
                raise TypeError("not a JSON object")
            return cls(**{name: cls._field(name, raw[name]) for name in cls.__dataclass_fields__ if name in raw})
        except (StoreBusy, ValueError, TypeError, *database_errors()) as exc:
            log.warning("metrics: unreadable push state in %s (%s); starting from zero", store.location, exc)
            return cls()

    def save(self, store: Store, path: Path) -> None:
        """Keep the state where ``load`` reads it; a failure is logged, never raised."""
        if not store.shared:
            self.write(path)
            return
        try:
            with store.connect(timeout_s=10.0, exclusive=False) as conn:
                store.ensure(conn, PUSH_STATE)
                conn.execute("INSERT OR REPLACE INTO metrics_push_state (id, state, updated_at) VALUES (1, ?, now())",
                             [json.dumps(asdict(self), sort_keys=True)])
        except (StoreBusy, *database_errors()) as exc:
            log.warning("metrics: cannot save push state in %s (%s); its counters are not kept", store.location, exc)

    def write(self, path: Path) -> None:
        """Replace the state file (never writing through a link); a failure is logged, never raised."""
        try:
            replace_atomically(path, json.dumps(asdict(self), sort_keys=True).encode(), durable=False)
        except OSError as exc:
            log.warning("metrics: cannot save push state %s (%s); its counters are not kept", path, exc)

    def samples(self) -> list[Sample]:
        return [Sample("agent_pipeline_metrics_pushes_total", (), float(self.pushes)),
                Sample("agent_pipeline_metrics_push_failures_total", (), float(self.failures))]


@dataclass
class PushResult:
    """Outcome of one publish. ``status``: pushed | failed | store_unavailable | lock_busy | lock_unusable | stale.

    ``partial``: the store was unavailable; the kill switch and the last snapshot's age were sent instead.
    """

    status: str
    gateway: str
    snapshot_at: float = 0.0
    events: int = 0
    payload_bytes: int = 0
    seconds: float = 0.0
    error: str = ""
    state: PushState = field(default_factory=PushState)
    outage_started: bool = False  # this push is the first failure after a success (the one that is logged)
    recovered: bool = False  # this push is the first success after failures
    partial: bool = False

    @property
    def worth_logging(self) -> bool:
        """Failures inside an outage that is already reported are counted, not logged again."""
        return self.status != "failed" or self.outage_started

    @property
    def ok(self) -> bool:
        return self.status == "pushed"

    def summary(self) -> str:
        if self.partial:
            base = (f"{self.status}: kill switch and snapshot age sent (the rest kept from the last push), "
                    f"{self.payload_bytes} bytes to {self.gateway} in {self.seconds:.3f} s")
        else:
            base = (f"{self.status}: {self.events} events, {self.payload_bytes} bytes to {self.gateway} in "
                    f"{self.seconds:.3f} s")
        return base + (f" ({self.error})" if self.error else "")

    def brief(self) -> str:
        """``summary()``, except that a failure inside an outage already reported says so instead of repeating the
        error (the daemon logs every sensor tick's message)."""
        if self.status == "failed" and not self.outage_started:
            return (f"failed: {self.gateway} still unreachable, {self.state.outage_failures} failed pushes in this "
                    "outage (its first one was logged; each is counted in agent_pipeline_metrics_push_failures_total)")
        return self.summary()


def _handler(username: str | None, password: str | None):
    if not username:
        return default_handler

    def handler(url, method, timeout, headers, data):
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return handler


def read_state(home=None, store: Store | None = None) -> PushState:
    """The publishers' state where they keep it: the database of a shared store, else the home's file."""
    home_path = pipeline_home(home)
    return PushState.load(store or Store.at_home(home_path), home_path / STATE_FILE)


def publish(config: MetricsConfig | None = None, *, auth: tuple[str | None, str | None] | None = None, home=None,
            store: Store | None = None, expectations: AlertInputs | None = None,
            agents: Iterable[str] | None = None) -> PushResult:
    """Compute a snapshot from the store and PUT it to ``config.gateway_url``. Never raises for gateway or store
    trouble. ``auth``: (username, password) for basic auth; ``expectations``: the configured thresholds exported
    beside the measured series (None: not exported); ``agents``: the registry's agent names, whose counters are
    pushed at 0 before their first run (the agents in the store are known either way)."""
    agents = known_agents(agents)  # a bad argument is a bug at the edge: said at once, before any store or gateway
    cfg = config or MetricsConfig()
    gateway_url = cfg.gateway_url
    home_path = pipeline_home(home)
    store = store or Store.at_home(home_path)
    username, password = auth or (None, None)
    t0 = time.perf_counter()
    with ExitStack() as held:
        try:
            held.enter_context(store.lock("metrics_push", cfg.lock_timeout_s) if store.shared else
                               file_lock(home_path / LOCK_FILE, cfg.lock_timeout_s, what="push lock"))
        except StoreBusy as exc:  # the shared store's database, where the lock lives, does not answer
            log.warning("metrics: push lock not taken (%s); this push is skipped", exc)
            return PushResult("lock_unusable", gateway_url, error=f"push lock unusable: {exc}",
                              seconds=time.perf_counter() - t0)
        except LockBusy:
            log.warning("metrics: another publisher held the push lock too long; this push is skipped")
            return PushResult("lock_busy", gateway_url, error="push lock busy", seconds=time.perf_counter() - t0)
        except (OSError, *database_errors()) as exc:  # a FIFO, a directory, a link, no database: skip, never hang
            log.warning("metrics: push lock unusable (%s); this push is skipped", exc)
            return PushResult("lock_unusable", gateway_url, error=f"push lock unusable: {exc}",
                              seconds=time.perf_counter() - t0)
        return _publish_locked(store, home_path, gateway_url, cfg.job, t0, store_timeout_s=cfg.store_timeout_s,
                               timeout_s=cfg.timeout_s, handler=_handler(username, password),
                               expectations=expectations, agents=agents)


def _publish_locked(store: Store, home_path: Path, gateway_url: str, job: str, t0: float, *,
                    store_timeout_s: float, timeout_s: float, handler, expectations: AlertInputs | None,
                    agents: Iterable[str] | None) -> PushResult:
    """``publish`` under the push lock: snapshot, order check, PUT, state update."""
    state_path = home_path / STATE_FILE
    state = PushState.load(store, state_path)
    try:
        snap = take_snapshot(store, home=home_path, timeout_s=store_timeout_s, agents=agents)
    except (StoreBusy, OSError, *database_errors()) as exc:
        state.skipped_busy += 1
        log.warning("metrics: store unreadable (%s); the kill switch is pushed, the rest waits for the next push",
                    exc)
        result = _push_kill_switch(state, home_path, gateway_url, job, timeout_s=timeout_s, handler=handler, store=store,
                                   expectations=expectations)
        result.error = "; ".join(e for e in (str(exc), result.error) if e)
        state.save(store, state_path)
        result.state, result.seconds = state, time.perf_counter() - t0
        return result
    if snap.taken_at < state.last_snapshot_at:  # only if the wall clock stepped back
        log.warning("metrics: snapshot older than the one already pushed; not pushing it")
        return PushResult("stale", gateway_url, snapshot_at=snap.taken_at, events=snap.events,
                          seconds=time.perf_counter() - t0, state=state)
    registry = CollectorRegistry(auto_describe=False)
    extra = [*files_and_freshness(home_path, snap, fresh=True, now=time.time(), expectations=expectations,
                                  store=store),
             *state.samples()]
    registry.register(SnapshotCollector(snap, extra))
    payload = len(generate_latest(registry))
    result = PushResult("pushed", gateway_url, snapshot_at=snap.taken_at, events=snap.events, payload_bytes=payload)
    try:
        push_to_gateway(gateway_url, job=job, registry=registry, timeout=timeout_s, handler=handler)
    except Exception as exc:  # down, slow, refused, 4xx/5xx: counted and logged once per outage, never raised
        result.status = "failed"
        _record_failure(state, result, gateway_url, f"{type(exc).__name__}: {exc}")
    else:
        _record_success(state, result, gateway_url)
        state.last_snapshot_at = snap.taken_at
    state.save(store, state_path)
    result.state, result.seconds = state, time.perf_counter() - t0
    return result


def _push_kill_switch(state: PushState, home_path: Path, gateway_url: str, job: str, *, timeout_s: float,
                      handler, expectations: AlertInputs | None, store: Store | None = None) -> PushResult:
    """With no snapshot to push: POST the kill switch (read now), the configured thresholds, "not fresh" and the
    last pushed snapshot's age into the group, which keeps every other family of that snapshot."""
    last = Snapshot(taken_at=state.last_snapshot_at) if state.last_snapshot_at > 0 else None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(None, [*files_and_freshness(home_path, last, fresh=False, now=time.time(),
                                                                    expectations=expectations, store=store),
                                               *state.samples()]))
    result = PushResult("store_unavailable", gateway_url, payload_bytes=len(generate_latest(registry)), partial=True)
    try:
        pushadd_to_gateway(gateway_url, job=job, registry=registry, timeout=timeout_s, handler=handler)
    except Exception as exc:  # as for a full push: counted, logged once per outage, never raised
        _record_failure(state, result, gateway_url, f"{type(exc).__name__}: {exc}")
    return result


def _record_failure(state: PushState, result: PushResult, gateway_url: str, error: str) -> None:
    now = time.time()
    state.failures += 1
    state.last_error, state.last_error_at = error, now
    result.error = error
    result.outage_started = state.outage_failures == 0
    if result.outage_started:
        state.outage_since = now
    state.outage_failures += 1
    if result.outage_started:
        log.warning("metrics: cannot push to %s (%s). Runs are unaffected and the store keeps every value; the next "
                    "push that gets through catches up. Start the Pushgateway (`make run` starts one, or "
                    "`ops/start-local-stack.sh start`) or point $%s / [metrics] gateway_url at yours. Further "
                    "failures are counted in agent_pipeline_metrics_push_failures_total and not logged until pushes "
                    "succeed again.", gateway_url, error, GATEWAY_ENV)
    else:
        log.debug("metrics: push to %s failed again (%s); %d failures in this outage",
                  gateway_url, error, state.outage_failures)


def _record_success(state: PushState, result: PushResult, gateway_url: str) -> None:
    now = time.time()
    state.pushes += 1
    state.last_pushed_at = now
    if state.outage_failures:
        result.recovered = True
        log.info("metrics: pushes to %s succeed again after %d failed push(es) over %.0f s; Prometheus is caught up",
                 gateway_url, state.outage_failures, max(0.0, now - state.outage_since))
    state.outage_failures, state.outage_since = 0, 0.0


def exposition(home=None, store: Store | None = None, agents: Iterable[str] | None = None,
               expectations: AlertInputs | None = None) -> bytes:
    """The text exposition of a snapshot taken now (what /metrics serves), waiting for the store as long as the
    store timeout allows; a busy store gives the kill switch only."""
    registry = CollectorRegistry(auto_describe=False)
    home_path = pipeline_home(home)
    store = store or Store.at_home(home_path)
    registry.register(StoreCollector(store, home=home_path, agents=agents, expectations=expectations,
                                     extra=lambda: read_state(home_path, store).samples()))
    return generate_latest(registry)


def serve(port: int = 9464, host: str = "127.0.0.1", *, home=None, config: MetricsConfig | None = None,
          expectations: AlertInputs | None = None, agents: Iterable[str] | None = None,
          answer_within_s: float = SCRAPE_ANSWER_S, store: Store | None = None):
    """Serve the collector on http://host:port/metrics in a background thread; returns (server, thread).

    Every scrape is answered within ``answer_within_s``: with a snapshot taken for it, or with the last good one
    while the store is busy (the kill switch is read for each scrape either way)."""
    from prometheus_client import start_http_server

    home_path = pipeline_home(home)
    cfg = config or MetricsConfig()
    store = store or Store.at_home(home_path)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, home=home_path, timeout_s=cfg.store_timeout_s,
                                     answer_within_s=answer_within_s, agents=agents, expectations=expectations,
                                     extra=lambda: read_state(home_path, store).samples()))
    return start_http_server(port, addr=host, registry=registry)
