"""Stable reason codes for every gate decision.

The codes are a wire contract: they are stored in ``gate_decisions.reason_code``, exported as metric labels and
named in ``[guardrails] trip_on``. Add new codes; never rename or reuse one. The human-readable ``reason`` next to
a code says which field or limit, and with which values.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OK = "OK"
    # input shape: a missing, non-numeric, non-finite, negative or out-of-range field each has its own code
    SIGNAL_INVALID = "SIGNAL_INVALID"            # not a mapping
    FIELD_MISSING = "FIELD_MISSING"
    FIELD_NOT_NUMBER = "FIELD_NOT_NUMBER"        # strings, booleans, None, containers where a number is due
    FIELD_NOT_FINITE = "FIELD_NOT_FINITE"        # NaN, +-inf, numbers too large for a float
    FIELD_NEGATIVE = "FIELD_NEGATIVE"
    FIELD_OUT_OF_RANGE = "FIELD_OUT_OF_RANGE"    # e.g. zero notional, confidence outside [0, 1]
    FIELD_INVALID = "FIELD_INVALID"              # a non-number field with a wrong value (paper not a bool, side)
    FUTURE_DATED_DATA = "FUTURE_DATED_DATA"      # negative data age, or a quote stamped after the decision time
    CROSSED_QUOTE = "CROSSED_QUOTE"              # negative spread, or bid above ask (claimed or in the book)
    # kill switch and circuit breaker
    KILL_SWITCH_HALTED = "KILL_SWITCH_HALTED"
    KILL_SWITCH_REDUCING = "KILL_SWITCH_REDUCING"  # REDUCING state and the order does not reduce a position
    KILL_SWITCH_UNREADABLE = "KILL_SWITCH_UNREADABLE"
    CIRCUIT_BREAKER = "CIRCUIT_BREAKER"          # the error-rate / reward breach is already in the store
    # the prototype's checks
    PAPER_ONLY = "PAPER_ONLY"
    NOTIONAL_LIMIT = "NOTIONAL_LIMIT"
    DAILY_LOSS_LIMIT = "DAILY_LOSS_LIMIT"
    EDGE_TOO_LOW = "EDGE_TOO_LOW"
    SPREAD_TOO_WIDE = "SPREAD_TOO_WIDE"
    SLIPPAGE_TOO_HIGH = "SLIPPAGE_TOO_HIGH"
    STALE_DATA = "STALE_DATA"                    # measured: the quote's age at decision time (or the signal's field)
    # checks beyond the prototype (each applies once configured)
    CONFIDENCE_TOO_LOW = "CONFIDENCE_TOO_LOW"
    LIQUIDITY = "LIQUIDITY"                      # order size too large against the quoted size
    PRICE_COLLAR = "PRICE_COLLAR"                # order price too far from the reference price
    LEVERAGE_LIMIT = "LEVERAGE_LIMIT"
    STRATEGY_RATE_LIMIT = "STRATEGY_RATE_LIMIT"
    GLOBAL_RATE_LIMIT = "GLOBAL_RATE_LIMIT"
    ROLLING_NOTIONAL_LIMIT = "ROLLING_NOTIONAL_LIMIT"
    DUPLICATE_ORDER = "DUPLICATE_ORDER"
    ORDERS_PER_RUN_LIMIT = "ORDERS_PER_RUN_LIMIT"  # one agent run placed its maximum number of orders
    STRATEGY_TURNOVER_LIMIT = "STRATEGY_TURNOVER_LIMIT"  # a strategy's rolling notional, as a multiple of capital
    NOTIONAL_MISMATCH = "NOTIONAL_MISMATCH"      # notional_usd disagrees with size x price
    # the market, measured by the execution layer from the market source's own quotes (never the agent's word)
    MARKET_DATA_MISSING = "MARKET_DATA_MISSING"  # no quote for the venue/symbol, an outage, no measured market
    QUOTE_INVALID = "QUOTE_INVALID"              # non-finite, zero or negative prices or sizes, no usable timestamp
    EMPTY_BOOK = "EMPTY_BOOK"                    # nothing quoted (or nothing left in this batch) on a side
    LIMIT_PRICE_OFF_MARKET = "LIMIT_PRICE_OFF_MARKET"  # the order's limit is far from the price it would fill at
    MARKET_CLAIM_MISMATCH = "MARKET_CLAIM_MISMATCH"  # an agent's claim about the market is far from the measurement
    MARKET_UNREADABLE = "MARKET_UNREADABLE"      # the market source's answer (or the clock) could not be read at all
    # two-person rule
    APPROVAL_MISSING = "APPROVAL_MISSING"
    APPROVAL_KEY_MISSING = "APPROVAL_KEY_MISSING"
    APPROVAL_FORGED = "APPROVAL_FORGED"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    APPROVAL_NOT_YET_VALID = "APPROVAL_NOT_YET_VALID"  # issued more than a minute after the decision time
    APPROVAL_MISMATCH = "APPROVAL_MISMATCH"      # signed for another strategy hash
    APPROVAL_SINGLE_APPROVER = "APPROVAL_SINGLE_APPROVER"
    APPROVAL_APPROVER_INVALID = "APPROVAL_APPROVER_INVALID"  # name refused (mixed scripts, ...) or without own key
    # execution layer
    NO_CAPITAL = "NO_CAPITAL"                    # the allocator gave this agent no capital
    ALLOCATION_STALE = "ALLOCATION_STALE"        # the allocation period in force ended (plus its grace), none newer
    CHECK_ERROR = "CHECK_ERROR"                  # a check raised: denied, never passed


# Denials that always trip the kill switch, whatever the configuration says.
ALWAYS_TRIP: frozenset[Reason] = frozenset({Reason.DAILY_LOSS_LIMIT})

CODES: frozenset[str] = frozenset(r.value for r in Reason)
