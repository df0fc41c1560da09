"""The execution layer: the one code path from an agent's output to the paper broker.

For each output item that proposes a trade (it carries ``side`` or any of the prototype's signal keys):

1. build the signal the gate sees: the agent's item, minus the keys only this layer may set (``RESERVED_KEYS``:
   ``order_key``, ``strategy``, ``strategy_hash``, ``approvals``, ``capital_usd``, ``agent``, ``event_id``,
   ``market``, ...), plus those keys. The agent's market facts (``spread_bps``, ``slippage_bps``,
   ``data_age_sec``, ``quote_size``, ``reference_price``, ``bid``, ``ask``, ``mid``) and its ``size`` are moved
   aside as claims (``claimed_spread_bps``, ...);
2. measure the market (``market_facts.measure_order``) from the batch's one snapshot of the market source, the
   very quotes the paper broker fills against, at decision time, and put the measured facts in their place;
3. size it: the notional is the agent's proposal capped at ``max_order_fraction`` of the agent's capital (the
   latest ``allocator_quotas`` period, else ``[execution] default_capital_usd``); the size comes from the book the
   broker fills against, so that for every leg ``size x fill price <= notional x (1 + 1e-9)``
   (``market_facts.FILL_NOTIONAL_TOLERANCE``, float rounding only). The agent's ``price`` is a limit: one far
   enough from the market to change the size, or that would not fill, is refused (``LIMIT_PRICE_OFF_MARKET``);
4. check it (``TradeGuardrails(require_market=True)`` over the DuckDB-backed state, with ``SAFE_DEFAULTS`` for
   every exposure limit the configuration leaves unset) and record the decision in ``gate_decisions``: its
   ``inputs`` keep what the agent claimed beside what the market showed (``market``: per leg venue, ts, bid,
   ask, sizes, mid, spread, age, touch, expected fill price and slippage);
5. if approved, send it to the paper broker (which checks the quotes and the notional again) and record the
   order, its fills, the position and the realised PnL (which feeds the daily loss budget).

The order key is a hash of (agent, event id, item index, symbol, side, venues): an op retry or a run re-executed from
failure sees the same agent event and so the same keys, and ``orders.order_key`` is unique, so nothing is placed
twice. One batch is one DuckDB transaction inside the kill switch's ``guard()``: a trip waits for the batch to
commit, and every order checked after the trip sees HALTED.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from agent_pipeline.allocation.config import AllocationConfig
from agent_pipeline.allocation.tables import capital_in_force, period_in_force
from agent_pipeline.market.base import MarketSource
from agent_pipeline.numbers import finite_number
from agent_pipeline.safe_text import utf8_safe
from agent_pipeline.store import Store
from agent_pipeline.trading import tables
from agent_pipeline.trading.approval_store import approval_tokens
from agent_pipeline.trading.broker import OrderIntent, PaperBroker
from agent_pipeline.trading.config import ExecutionConfig, GuardrailConfig
from agent_pipeline.trading.guardrails import (
    CLAIM_PREFIX,
    MEASURED_KEYS,
    PROTOTYPE_SIGNAL_KEYS,
    SIDES,
    Decision,
    TradeGuardrails,
)
from agent_pipeline.trading.kill_switch import KillSwitch, default_path
from agent_pipeline.trading.kill_switch_store import kill_switch_for
from agent_pipeline.trading.market_facts import MarketSnapshot, measure_order
from agent_pipeline.trading.reasons import Reason
from agent_pipeline.trading.store_state import StoreGateState

# Keys only this layer sets: an agent's values for them are dropped (its market facts are kept as claims).
RESERVED_KEYS = ("order_key", "strategy", "strategy_hash", "approvals", "capital_usd", "agent",
                 "proposed_notional_usd", "event_id", "run_id", "market")


DEFAULT_PERIOD_SEC = AllocationConfig().period_minutes * 60.0


def is_trade_proposal(item: Any) -> bool:
    return isinstance(item, Mapping) and ("side" in item or any(k in item for k in PROTOTYPE_SIGNAL_KEYS))


def order_key(agent: str, event_id: str, index: int, item: Mapping[str, Any]) -> str:
    parts = [agent, str(event_id), str(index)] + [str(item.get(k, "")) for k in ("symbol", "side", "venue",
                                                                                  "sell_venue")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def _plain(value: Any) -> str:
    """Text as an exact ``str`` (a str subclass with its own ``__eq__``, ``__hash__`` or ``__str__`` is copied
    out of it); None and other objects are ``""``, so they are missing, never a match."""
    return str.__str__(value) if isinstance(value, str) else ""


def plain_item(item: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """The agent's item as plain data before any check reads it: str subclasses (an ``__eq__`` that is always
    true, a ``__str__`` or ``lower`` that lies) become exact ``str`` copies of their characters, in keys and in
    values, nested too; a key that is not text is dropped (no check reads it). Numbers stay as they are
    (``agent_pipeline.numbers`` judges them)."""
    return {utf8_safe(k): _plain_value(v, depth + 1) for k, v in item.items() if isinstance(k, str)}


def _plain_value(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return utf8_safe(value)  # an exact str, lone surrogates escaped (the key hashes it, the store writes it)
    if depth > 8:  # deeper than any field a check reads: kept out of the way
        return repr(type(value))
    if isinstance(value, Mapping):
        return plain_item(value, depth)
    if isinstance(value, (list, tuple)):
        return [_plain_value(v, depth + 1) for v in value]
    return value


def _safe_repr(value: Any, limit: int = 500) -> str:
    """``repr`` for the record; an object whose ``repr`` raises is named by its type."""
    try:
        return str.__str__(repr(value))[:limit]
    except Exception:  # noqa: BLE001 - only for the record
        return f"<unprintable {type(value).__qualname__}>"[:limit]


def _finite_positive(value: Any) -> bool:
    number = finite_number(value)
    return number is not None and number > 0


@dataclass
class ExecutionReport:
    """What one agent run's proposals became. Approved and denied are counted from the keys and denials recorded
    (one record each, so the counts cannot drift from what they count)."""

    agent: str
    run_id: str
    event_id: str | None
    proposals: int = 0
    filled: int = 0
    rejected: int = 0
    realized_pnl_usd: float = 0.0
    capital_usd: float | None = None
    capital_source: str = ""
    kill_switch_state: str = ""
    by_reason: Counter = field(default_factory=Counter)
    denials: list[tuple[str, str, str]] = field(default_factory=list)  # (order_key, code, reason)
    order_keys: list[str] = field(default_factory=list)  # the approved orders'

    @property
    def approved(self) -> int:
        return len(self.order_keys)

    @property
    def denied(self) -> int:
        return len(self.denials)

    def summary(self) -> dict[str, Any]:
        return {"agent": self.agent, "run_id": self.run_id, "event_id": self.event_id, "proposals": self.proposals,
                "approved": self.approved, "denied": self.denied, "filled": self.filled, "rejected": self.rejected,
                "realized_pnl_usd": self.realized_pnl_usd, "capital_usd": self.capital_usd,
                "capital_source": self.capital_source, "kill_switch_state": self.kill_switch_state,
                "by_reason": dict(self.by_reason)}


class ExecutionLayer:
    """Gate + paper broker + ledger, with the configs its caller loaded (the safe limits apply whatever they say)."""

    def __init__(self, store: Store, market: MarketSource, *, guardrails: GuardrailConfig | None = None,
                 execution: ExecutionConfig | None = None, kill_switch: KillSwitch | None = None,
                 clock: Callable[[], datetime] | None = None, environ: Mapping[str, str] | None = None,
                 allocation_period_sec: float = DEFAULT_PERIOD_SEC):
        self.store = store
        self.allocation_period_sec = float(allocation_period_sec)  # [allocation] period_minutes, as seconds
        # the safe defaults apply whatever the caller passed: a limit can be loosened, never left off
        self.cfg = dataclasses.replace((guardrails or GuardrailConfig()).with_safe_defaults(), require_order_key=True)
        self.exec_cfg = execution or ExecutionConfig()
        self.kill = kill_switch if kill_switch is not None else kill_switch_for(store, default_path())
        self._clock = clock or (lambda: datetime.now(UTC))
        self.state = StoreGateState(store, self.cfg, timeout_s=self.exec_cfg.lock_timeout_s)
        self.guardrails = TradeGuardrails(self.cfg, self.kill, state=self.state, clock=self._clock, environ=environ,
                                          require_market=True)
        self._broker = PaperBroker(market, self.exec_cfg, self._clock, max_quote_age_sec=self.cfg.max_staleness_sec)

    def execute(self, result: Mapping[str, Any], *, run_id: str, strategy_hash: str | None = None,
                agent: str | None = None, strategy: str | None = None, conn=None) -> ExecutionReport:
        """Send one agent run's output (the agent op's dict: agent, strategy, event_id, output) through the gate.

        ``agent`` and ``strategy`` are the registry's (the execution op passes them): an order's identity comes
        from the registry, never from the run's output, so no agent spends another strategy's limits,
        positions, capital or approvals. Without them the run's dict is used (tests, benchmarks); a dict naming
        another agent than the registered one is refused.

        ``conn``: an open transaction of this store (with the trading tables migrated) to join instead of opening
        one, so a caller that writes many runs (the quota tick) pays one connection and one commit for all.
        """
        claimed_agent = _plain(result.get("agent"))
        agent = _plain(agent) if agent is not None else claimed_agent
        strategy = _plain(strategy) if strategy is not None else (_plain(result.get("strategy")) or agent)
        raw_event = result.get("event_id")
        event_id = _plain(raw_event) if isinstance(raw_event, str) else (str(raw_event) if raw_event else "")
        if not agent or not event_id:
            raise ValueError("execute needs the agent run's 'agent' and 'event_id' (the order keys derive from them)")
        if claimed_agent and claimed_agent != agent:
            raise ValueError(f"execute for registered agent {agent!r} got the run of {claimed_agent[:80]!r}")
        output = result.get("output")
        items = output if isinstance(output, list) else []
        proposals = [(i, item) for i, item in enumerate(items) if is_trade_proposal(item)]
        report = ExecutionReport(agent, run_id, str(event_id), proposals=len(proposals))
        if not proposals:
            report.kill_switch_state = self.kill.state.value
            return report
        snapshot = self._broker.prefetch()  # one snapshot per batch, read before any lock is taken
        try:
            return self._execute(report, proposals, agent, strategy, str(event_id), run_id, strategy_hash, snapshot,
                                 conn)
        finally:
            self._broker.release()

    def _execute(self, report: ExecutionReport, proposals: list, agent: str, strategy: str, event_id: str,
                 run_id: str, strategy_hash: str | None, snapshot: MarketSnapshot, shared=None) -> ExecutionReport:
        with self.kill.guard() as status:
            report.kill_switch_state = status.state.value
            with self._transaction(shared) as conn:
                with self.state.bind(conn):
                    capital, decided = capital_in_force(conn, agent)
                    report.capital_source = "allocator_quotas" if decided else "[execution] default_capital_usd"
                    if not decided:
                        capital = self.exec_cfg.default_capital_usd
                    report.capital_usd = capital
                    stale = self._stale_allocation(conn) if decided else None
                    tokens = approval_tokens(conn, agent, strategy_hash)
                    for index, item in proposals:
                        self._one(conn, report, index, item, agent, strategy, event_id, run_id, capital,
                                  strategy_hash, tokens, snapshot, stale)
        report.kill_switch_state = self.kill.state.value
        return report

    def _stale_allocation(self, conn) -> str | None:
        """Why the allocation period in force may no longer be spent, or None while it (or its grace) lasts.

        The period in force is the latest decided one; once it has ended and ``allocation_grace_sec`` has passed
        with no newer decision, its capital was decided for another time: fail closed. A period start that cannot
        be read as a time counts as stale too."""
        start = period_in_force(conn)[0]
        grace = self.exec_cfg.allocation_grace_sec
        if not isinstance(start, datetime) or start.tzinfo is None:
            return f"the allocation period in force has no usable start ({start!r:.40}): its capital is not spent"
        now = self._clock()
        ends = start + timedelta(seconds=self.allocation_period_sec)
        if now <= ends + timedelta(seconds=grace):
            return None
        return (f"the allocation period in force started {start.isoformat()} and ended {ends.isoformat()}; no newer "
                f"decision for {(now - ends).total_seconds():.0f} s, more than [execution] allocation_grace_sec "
                f"{grace:g} s: its capital is not spent until the allocator decides again")

    @contextmanager
    def _transaction(self, shared):
        if shared is not None:  # the caller's transaction: it commits (or rolls back) every batch in it at once
            yield shared
            return
        with self.store.transaction(timeout_s=self.exec_cfg.lock_timeout_s, schema=tables.TRADING) as conn:
            yield conn

    # -- one proposal ----------------------------------------------------------------------------------------
    def _signal(self, item: Mapping[str, Any], key: str, agent: str, strategy: str, event_id: str,
                capital: float | None, strategy_hash: str | None, tokens: list[str],
                snapshot: MarketSnapshot) -> dict[str, Any]:
        signal = measured_signal(item, snapshot=snapshot, capital=capital, now=self._clock(), cfg=self.exec_cfg)
        signal.update(order_key=key, agent=agent, strategy=strategy, event_id=event_id, approvals=list(tokens))
        if strategy_hash:
            signal["strategy_hash"] = strategy_hash
        return signal

    def _denial(self, code: Reason, message: str, field_name: str | None, signal: dict[str, Any]) -> Decision:
        return Decision(False, code, message, self._clock(), self.kill.status().state.value, field_name, signal)

    def _one(self, conn, report: ExecutionReport, index: int, item: Mapping[str, Any], agent: str, strategy: str,
             event_id: str, run_id: str, capital: float | None, strategy_hash: str | None,
             tokens: list[str], snapshot: MarketSnapshot, stale: str | None = None) -> None:
        key = order_key(agent, event_id, index, {})
        try:
            item = plain_item(item)  # before the key and every check: text is its own characters
            key = order_key(agent, event_id, index, item)
            signal = self._signal(item, key, agent, strategy, event_id, capital, strategy_hash, tokens, snapshot)
        except Exception as exc:  # building the signal failed: recorded as a denial, never a pass
            signal = {"order_key": key, "agent": agent, "strategy": strategy, "item": _safe_repr(item)}
            decision = self._denial(Reason.CHECK_ERROR, f"could not build the signal: {type(exc).__name__}: {exc}",
                                    None, signal)
        else:
            decision = self.guardrails.check(signal)  # the kill switch and bad input outrank a missing capital
            if decision.ok and stale is not None:
                decision = self._denial(Reason.ALLOCATION_STALE, stale, "capital_usd", signal)
            if decision.ok and not _finite_positive(capital):
                decision = self._denial(Reason.NO_CAPITAL, f"agent {agent} has no capital ({capital!r}) from the "
                                        "allocator", "capital_usd", signal)
        decision_id = tables.record_decision(conn, decision, run_id=run_id, event_id=event_id, agent=agent,
                                             strategy=strategy)
        report.by_reason[decision.code.value] += 1
        if not decision.ok:
            report.denials.append((key, decision.code.value, decision.reason))
            return
        report.order_keys.append(key)
        self.guardrails.record_order(signal, decision)
        intent, problem = _intent(signal, key, agent, strategy)
        if intent is not None:
            result = self._broker.submit(intent, decision)
            status, fills, problem = result.status, result.fills, result.reject_reason
        else:
            status, fills = "rejected", ()
        now = self._clock()
        order_id = tables.record_order(
            conn, order_key=key, created_at=now, run_id=run_id, event_id=event_id, agent=agent, strategy=strategy,
            intent=intent, notional_usd=float(signal["notional_usd"]), capital_usd=signal.get("capital_usd"),
            status=status, reject_reason=problem, paper=bool(signal.get("paper")), decision_id=decision_id)
        if status != "filled":
            report.rejected += 1
            return
        report.filled += 1
        for fill in fills:  # each fill's loss counts on its own: one leg's gain does not hide another's loss
            pnl = tables.record_fill(conn, order_id=order_id, strategy=strategy, fill=fill, at=now)
            report.realized_pnl_usd += pnl
            self.guardrails.record_pnl(pnl)


def measured_signal(item: Mapping[str, Any], *, snapshot: MarketSnapshot, capital: float | None, now: datetime,
                    cfg: ExecutionConfig) -> dict[str, Any]:
    """The agent's item as the gate sees it: reserved keys dropped, its market facts and size moved aside as
    claims, the notional capped by the capital, and the market measured from ``snapshot`` at ``now`` under the
    prototype's signal keys (``market`` holds the full ``MarketFacts``). The caller adds the order's identity keys."""
    signal = {k: v for k, v in item.items() if k not in RESERVED_KEYS and not str(k).startswith(CLAIM_PREFIX)}
    for claimed in (*MEASURED_KEYS, "size"):  # the agent's word about the market, kept beside the measurement
        if claimed in signal:
            signal[CLAIM_PREFIX + claimed] = signal.pop(claimed)
    has_capital = _finite_positive(capital)
    signal["capital_usd"] = float(capital) if has_capital else 0.0  # 0 = no capital: the gate denies
    proposed = finite_number(item.get("notional_usd"))  # the same "number" the gate accepts
    notional = None
    if proposed is not None and proposed > 0:
        notional = min(proposed, float(capital) * cfg.max_order_fraction) if has_capital else proposed
        signal["proposed_notional_usd"] = proposed
        signal["notional_usd"] = notional
    facts = measure_order(snapshot, symbol=item.get("symbol"), side=item.get("side"), venue=item.get("venue"),
                          sell_venue=item.get("sell_venue"), notional=notional, now=now, cfg=cfg)
    signal["market"] = facts
    if facts.ok:  # the measured facts under the prototype's keys, so the decision row reads as the gate saw it
        first = facts.legs[0]
        signal.update(size=facts.size, spread_bps=facts.spread_bps, slippage_bps=facts.slippage_bps,
                      data_age_sec=facts.age_at(now), quote_size=facts.quote_size,
                      reference_price=facts.reference_price, bid=first.bid, ask=first.ask, mid=first.mid)
    return signal


def _intent(signal: Mapping[str, Any], key: str, agent: str, strategy: str) -> tuple[OrderIntent | None, str | None]:
    """The broker order, or why the approved signal cannot be routed (it lacks symbol, side, venue, price, size)."""
    missing = [k for k in ("symbol", "venue") if not isinstance(signal.get(k), str) or not signal.get(k)]
    if signal.get("side") not in SIDES:
        missing.append("side")
    missing += [k for k in ("price", "size") if not _finite_positive(signal.get(k))]
    sell_venue = signal.get("sell_venue")
    sell_price = signal.get("sell_price")
    if sell_venue is not None:
        if not isinstance(sell_venue, str) or not sell_venue:
            missing.append("sell_venue")
        if not _finite_positive(sell_price):
            missing.append("sell_price")
    if missing:
        return None, f"cannot route: missing or invalid {missing}"
    return OrderIntent(order_key=key, agent=agent, strategy=strategy, symbol=signal["symbol"], side=signal["side"],
                       venue=signal["venue"], size=float(signal["size"]), price=float(signal["price"]),
                       notional_usd=float(signal["notional_usd"]), sell_venue=sell_venue,
                       sell_price=float(sell_price) if sell_venue is not None else None,
                       capital_usd=signal.get("capital_usd"), paper=bool(signal.get("paper"))), None
