"""Cumulative per-agent aggregates of ``agent_events``, maintained incrementally in the metrics domain's own table.

Counters and histogram buckets are totals over the live runs ever stored (``source`` in ``LIVE_SOURCES``): an
imported history is no run of this pipeline, so importing a year of it must not show as a burst in
``increase()``/``rate()``, and an import of 10,000 made-up agent names must not create 10,000 series. They never
go backwards no matter which process publishes. Re-scanning ten million events per publish would cost ~a second,
so the totals are kept in ``metrics_event_rollup`` and each publish folds in only the events ingested since its
watermark (``ingested_at`` is assigned by the writer's transaction under the store lock, so it only grows). If the
table ever holds more rows than the rollup has seen (a row arrived with an older ``ingested_at``), or the histogram
bounds in ``spec`` differ from the ones the rollup was kept with (an upgrade that adds buckets), the rollup is rebuilt
from scratch, and each total is then at least what it was before: deleted events are never subtracted, because a
counter that goes down reads to Prometheus as a reset and ``increase()`` would count the whole total again.

The rollup is marked with the rule its counters were kept under (``count_rule``). A rollup kept under the earlier
rule (every stored event counted, imports included) keeps its totals on upgrade, so no counter drops under a
running Prometheus; only live runs are added from then on. The totals carried over still include the history
imported before the upgrade (``increase()`` and ``rate()`` are unaffected: they see no change at the upgrade).
Each agent's row says whether it has a live run (``has_live``); only such agents, and the registry's agents the
caller names, are exported, so an agent known only from an import has no series (an upgraded one goes stale
rather than dropping to 0).

The last-run and last-value gauges say what an agent is doing now, so they come from live runs only (``source`` in
``LIVE_SOURCES``; imported history, dated or not, is no evidence) by start time, and never from a run that claims to
start after it was stored or after now (beyond ``FUTURE_TOLERANCE_S`` of clock skew): a 2099 timestamp would pin
them for good. These values are kept in the rollup too, with the rule they were computed under (``last_rule``):
a rollup kept under another rule (an upgrade from the rule that let imported or future-dated events in) has its
last values recomputed from the stored events once, while its counters keep their totals. So does a rollup
holding a value ahead of now (the clock stepped back).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from agent_pipeline.metrics.spec import HISTOGRAMS, HistogramSpec
from agent_pipeline.store import Schema, begin, has_table
from agent_pipeline.store.events import LIVE_SOURCES

log = logging.getLogger(__name__)

COMPONENT = "metrics"

MIGRATIONS: list[str] = [
    """
    CREATE TABLE metrics_event_rollup (
        agent VARCHAR PRIMARY KEY,
        runs BIGINT NOT NULL,
        errors BIGINT NOT NULL,
        latency_count BIGINT NOT NULL, latency_sum DOUBLE NOT NULL, latency_buckets BIGINT[] NOT NULL,
        cost_count BIGINT NOT NULL, cost_sum DOUBLE NOT NULL, cost_buckets BIGINT[] NOT NULL,
        reward_count BIGINT NOT NULL, reward_sum DOUBLE NOT NULL, reward_buckets BIGINT[] NOT NULL,
        last_run_us BIGINT,
        last_latency DOUBLE, last_latency_us BIGINT,
        last_cost DOUBLE, last_cost_us BIGINT,
        last_reward DOUBLE, last_reward_us BIGINT
    );
    CREATE TABLE metrics_rollup_state (
        id INTEGER PRIMARY KEY,
        ingested_through TIMESTAMPTZ,
        events BIGINT NOT NULL,
        rebuilt_at TIMESTAMPTZ,
        updated_at TIMESTAMPTZ NOT NULL
    );
    """,
    # The histogram bounds the rollup's bucket arrays count against; NULL (kept before this column) means unknown.
    "ALTER TABLE metrics_rollup_state ADD COLUMN bucket_bounds VARCHAR;",
    # The rule the last-run and last-value columns were computed under; NULL (kept before this column): the old one.
    "ALTER TABLE metrics_rollup_state ADD COLUMN last_rule VARCHAR;",
    # Which events the counters count (NULL: every stored event, the earlier rule), and which agents ran live.
    """
    ALTER TABLE metrics_rollup_state ADD COLUMN count_rule VARCHAR;
    ALTER TABLE metrics_event_rollup ADD COLUMN has_live BOOLEAN NOT NULL DEFAULT true;
    """,
]

FUTURE_TOLERANCE_S = 60.0  # clock skew between the process that ran an agent and the store's clock
_TOLERANCE_US = int(FUTURE_TOLERANCE_S * 1e6)
# Of the live rows the delta reads, one that may set the last-run and last-value gauges: started before it was
# stored and before now.
_PAST = f"(epoch_us(started_at) <= least(epoch_us(ingested_at), $now_us) + {_TOLERANCE_US})"

_PREFIX = {"latency_seconds": "latency", "cost_usd": "cost", "reward": "reward"}


def bucket_bounds() -> str:
    """The bounds of every histogram, as stored beside the rollup: a change means its arrays no longer line up."""
    return json.dumps({h.name: [float(b) for b in h.buckets] for h in HISTOGRAMS}, sort_keys=True)


def count_rule() -> str:
    """Which rows the counters and histograms count, as stored beside the rollup."""
    return json.dumps({"sources": sorted(LIVE_SOURCES)}, sort_keys=True)


def last_rule() -> str:
    """Which rows the last values were taken from, as stored beside the rollup: a change means recompute them."""
    return json.dumps({"sources": sorted(LIVE_SOURCES), "future_tolerance_s": FUTURE_TOLERANCE_S,
                       "not_after": "min(ingested_at, now)"}, sort_keys=True)


@dataclass
class Hist:
    count: int = 0
    sum: float = 0.0
    buckets: list[int] = field(default_factory=list)  # cumulative, one per bound (the +Inf bucket is count)

    def merged(self, other: Hist) -> Hist:
        if not self.buckets:
            return other
        if not other.buckets:
            return self
        return Hist(self.count + other.count, self.sum + other.sum,
                    [a + b for a, b in zip(self.buckets, other.buckets, strict=True)])


@dataclass
class Last:
    value: float | None = None
    at_us: int | None = None

    def newer(self, other: Last) -> Last:
        if other.at_us is None:
            return self
        if self.at_us is None or other.at_us >= self.at_us:
            return other
        return self


@dataclass
class AgentTotals:
    agent: str
    runs: int = 0
    errors: int = 0
    hists: dict[str, Hist] = field(default_factory=dict)  # keyed by histogram metric name
    last_run_us: int | None = None
    last: dict[str, Last] = field(default_factory=dict)  # keyed by events column
    has_live: bool = True  # False: a row carried over from the earlier rule for an agent never run live

    @classmethod
    def zero(cls, agent: str) -> AgentTotals:
        """An agent with no stored events: every counter and bucket at 0, no last values."""
        return cls(agent, hists={h.name: _empty(h) for h in HISTOGRAMS}, last={h.column: Last() for h in HISTOGRAMS})

    def merged(self, other: AgentTotals) -> AgentTotals:
        runs = [x for x in (self.last_run_us, other.last_run_us) if x is not None]
        return AgentTotals(
            agent=self.agent, runs=self.runs + other.runs, errors=self.errors + other.errors,
            hists={h.name: self.hists.get(h.name, _empty(h)).merged(other.hists.get(h.name, _empty(h)))
                   for h in HISTOGRAMS},
            last_run_us=max(runs) if runs else None,
            last={h.column: self.last.get(h.column, Last()).newer(other.last.get(h.column, Last()))
                  for h in HISTOGRAMS},
            has_live=self.has_live or other.has_live,
        )

    def at_least(self, kept: AgentTotals) -> AgentTotals:
        """These totals (a rebuild) raised to ``kept`` wherever ``kept`` counted more: a rebuild never lowers a
        counter. Buckets of the same bounds are raised one by one (each stays cumulative and within the count);
        the last values are this rebuild's."""
        hists = {}
        for h in HISTOGRAMS:
            mine, old = self.hists.get(h.name, _empty(h)), kept.hists.get(h.name, _empty(h))
            if old.count <= mine.count and all(o <= m for o, m in zip(old.buckets, mine.buckets, strict=False)):
                hists[h.name] = mine
            elif len(old.buckets) == len(mine.buckets):
                hists[h.name] = Hist(max(mine.count, old.count), old.sum if old.count > mine.count else mine.sum,
                                     [max(m, o) for m, o in zip(mine.buckets, old.buckets, strict=True)])
            else:
                hists[h.name] = Hist(max(mine.count, old.count), mine.sum, mine.buckets)
        return AgentTotals(agent=self.agent, runs=max(self.runs, kept.runs), errors=max(self.errors, kept.errors),
                           hists=hists, last_run_us=self.last_run_us, last=self.last,
                           has_live=self.has_live or kept.has_live)


def _empty(h: HistogramSpec) -> Hist:
    return Hist(0, 0.0, [0] * len(h.buckets))


def _finite(col: str) -> str:
    return f"(CASE WHEN isfinite({col}) THEN {col} END)"


def _delta_sql(where: str) -> str:
    # only live runs are read (counters, histograms, last values); the last values only from rows not future-dated
    where = f"{where} AND list_contains($live, source)" if where else "WHERE list_contains($live, source)"
    parts = ["agent", "count(*)", "count(error)", f"epoch_us(max(started_at) FILTER (WHERE {_PAST}))"]
    for h in HISTOGRAMS:
        v = _finite(h.column)
        parts += [f"count({v})", f"coalesce(sum({v}), 0)"]
        parts += [f"count(*) FILTER (WHERE {v} <= {float(b)!r})" for b in h.buckets]
        parts += [f"arg_max({v}, started_at) FILTER (WHERE {v} IS NOT NULL AND {_PAST})",
                  f"epoch_us(max(started_at) FILTER (WHERE {v} IS NOT NULL AND {_PAST}))"]
    return f"SELECT {', '.join(parts)} FROM agent_events {where} GROUP BY agent"


def _parse_delta(row: tuple) -> AgentTotals:
    agent, runs, errors, last_run = row[:4]
    i = 4
    totals = AgentTotals(agent=str(agent), runs=int(runs), errors=int(errors),
                         last_run_us=None if last_run is None else int(last_run))
    for h in HISTOGRAMS:
        n = len(h.buckets)
        count, total = row[i], row[i + 1]
        buckets = [int(x) for x in row[i + 2:i + 2 + n]]
        last_value, last_us = row[i + 2 + n], row[i + 3 + n]
        i += 4 + n
        totals.hists[h.name] = Hist(int(count), float(total), buckets)
        totals.last[h.column] = Last(None if last_value is None else float(last_value),
                                     None if last_us is None else int(last_us))
    return totals


def _now_us(now: float | None) -> int:
    return int((time.time() if now is None else now) * 1e6)


_AFTER_WATERMARK = ("WHERE ingested_at > coalesce((SELECT ingested_through FROM metrics_rollup_state WHERE id = 1), "
                    "TIMESTAMPTZ '1970-01-01 00:00:00+00')")


def aggregate_events(conn, *, after_watermark: bool = False, now: float | None = None) -> dict[str, AgentTotals]:
    """Per-agent totals of the live runs, or of those ingested after the rollup's watermark; ``now`` (Unix
    seconds, default the clock) bounds the last values."""
    where = _AFTER_WATERMARK if after_watermark else ""
    params = {"live": list(LIVE_SOURCES), "now_us": _now_us(now)}
    return {t.agent: t for t in map(_parse_delta, conn.execute(_delta_sql(where), params).fetchall())}


def _rows_after_watermark(conn) -> int:
    """Every event ingested after the watermark, live or not: what the watermark has seen is counted in rows."""
    return int(conn.execute(f"SELECT count(*) FROM agent_events {_AFTER_WATERMARK}").fetchone()[0])


def _rebuilt(conn, kept: dict[str, AgentTotals], now: float | None) -> dict[str, AgentTotals]:
    """The totals recomputed from the stored live runs, never below what was counted before."""
    fresh = aggregate_events(conn, now=now)
    out = {agent: (t.at_least(kept[agent]) if agent in kept else t) for agent, t in fresh.items()}
    for agent, t in kept.items():
        if agent not in out:  # every counted event deleted since (or none live): keep the totals, not the values
            out[agent] = AgentTotals.zero(agent).at_least(t)
            out[agent].has_live = t.has_live
    return out


def _carry_over(conn, totals: dict[str, AgentTotals]) -> None:
    """Upgrade from the rule that counted every stored event: keep the totals (no counter goes down), mark the
    agents that never ran live, and count live runs only from now on."""
    log.info("metrics rollup: counters now count live runs only; totals counted before are kept")
    live = {row[0] for row in conn.execute("SELECT DISTINCT agent FROM agent_events WHERE list_contains(?, source)",
                                           [list(LIVE_SOURCES)]).fetchall()}
    for agent, t in totals.items():
        t.has_live = agent in live


def _ahead_of(t: AgentTotals, limit_us: int) -> bool:
    return any(at is not None and at > limit_us for at in (t.last_run_us, *(v.at_us for v in t.last.values())))


def _repair_last_values(conn, totals: dict[str, AgentTotals], state, now: float | None) -> bool:
    """Recompute every agent's last values from the stored events when they were kept under another rule or one
    is ahead of now; counters are left alone (events may have been deleted since they were counted)."""
    limit_us = _now_us(now) + _TOLERANCE_US
    if state is None or (state[2] == last_rule() and not any(_ahead_of(t, limit_us) for t in totals.values())):
        return False
    log.info("metrics rollup: last-run and last-value gauges recomputed from the stored live runs")
    fresh = aggregate_events(conn, now=now)
    for agent, t in totals.items():
        source = fresh.get(agent) or AgentTotals.zero(agent)
        t.last_run_us = source.last_run_us
        t.last = {h.column: source.last.get(h.column, Last()) for h in HISTOGRAMS}
    return True


def _rollup_columns() -> list[str]:
    cols = ["agent", "runs", "errors", "last_run_us"]
    for h in HISTOGRAMS:
        p = _PREFIX[h.column]
        cols += [f"{p}_count", f"{p}_sum", f"{p}_buckets", f"last_{p}", f"last_{p}_us"]
    return cols


def _read_rollup(conn) -> dict[str, AgentTotals]:
    cols = _rollup_columns()
    out: dict[str, AgentTotals] = {}
    for row in conn.execute(f"SELECT {', '.join(cols)}, has_live FROM metrics_event_rollup").fetchall():
        t = AgentTotals(agent=row[0], runs=int(row[1]), errors=int(row[2]), last_run_us=row[3], has_live=row[-1])
        for k, h in enumerate(HISTOGRAMS):
            count, total, buckets, last_value, last_us = row[4 + 5 * k: 9 + 5 * k]
            t.hists[h.name] = Hist(int(count), float(total), [int(b) for b in buckets])
            t.last[h.column] = Last(last_value, last_us)
        out[t.agent] = t
    return out


def _write_rollup(conn, totals: dict[str, AgentTotals]) -> None:
    conn.execute("DELETE FROM metrics_event_rollup")
    rows = []
    for t in totals.values():
        row: list = [t.agent, t.runs, t.errors, t.last_run_us]
        for h in HISTOGRAMS:
            hist, last = t.hists[h.name], t.last[h.column]
            row += [hist.count, hist.sum, hist.buckets, last.value, last.at_us]
        rows.append([*row, t.has_live])
    if rows:
        cols = [*_rollup_columns(), "has_live"]
        conn.executemany(f"INSERT INTO metrics_event_rollup ({', '.join(cols)}) "
                         f"VALUES ({', '.join('?' for _ in cols)})", rows)


def update_rollup(store, conn, *, now: float | None = None) -> dict[str, AgentTotals]:
    """Fold newly ingested events into the rollup and return the cumulative per-agent totals.

    ``conn`` must be a read-write connection under the store lock and not inside a transaction. ``now`` (Unix
    seconds, default the clock): no last value is taken from a run that starts after it.
    """
    Schema(COMPONENT, MIGRATIONS).ensure(store, conn)
    if not has_table(conn, "agent_events"):
        return {}
    with begin(conn):
        state = conn.execute("SELECT events, bucket_bounds, last_rule, count_rule FROM metrics_rollup_state "
                             "WHERE id = 1").fetchone()
        seen = int(state[0]) if state else 0  # rows the watermark has passed, live or not
        bounds = bucket_bounds()
        delta = aggregate_events(conn, after_watermark=True, now=now)
        stored = conn.execute("SELECT count(*) FROM agent_events").fetchone()[0]
        new = _rows_after_watermark(conn)
        totals = _read_rollup(conn)
        upgraded = bool(state) and state[3] != count_rule()
        if upgraded:
            _carry_over(conn, totals)
        rebuilt = False
        if state and state[1] != bounds:
            log.info("metrics rollup: histogram buckets differ from the ones it was kept with; rebuilding")
            totals, rebuilt = _rebuilt(conn, totals, now), True
        elif seen + new < stored:
            log.info("metrics rollup: %d events arrived behind the watermark; rebuilding", stored - seen - new)
            totals, rebuilt = _rebuilt(conn, totals, now), True
        else:
            if seen + new > stored:
                log.warning("metrics rollup: agent_events holds fewer rows (%d) than counted (%d); counters keep "
                            "their totals", stored, seen + new)
            for agent, d in delta.items():
                totals[agent] = totals[agent].merged(d) if agent in totals else d
        repaired = not rebuilt and _repair_last_values(conn, totals, state, now)
        if new or delta or rebuilt or repaired or upgraded or not state:
            _write_rollup(conn, totals)
            conn.execute(
                """INSERT OR REPLACE INTO metrics_rollup_state
                       (id, ingested_through, events, rebuilt_at, updated_at, bucket_bounds, last_rule, count_rule)
                   SELECT 1, (SELECT max(ingested_at) FROM agent_events), ?,
                          CASE WHEN ? THEN now() ELSE (SELECT rebuilt_at FROM metrics_rollup_state WHERE id = 1) END,
                          now(), ?, ?, ?""",
                [stored if rebuilt else seen + new, rebuilt, bounds, last_rule(), count_rule()])
    return totals
