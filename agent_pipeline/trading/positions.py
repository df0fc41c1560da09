"""Average-cost position accounting, as pure functions: old position + fill -> new position and realised PnL.

The ledger books fills with ``apply_fill`` (``trading.tables.record_fill`` reads and writes the row) and the gate
predicts an order's exposure with ``position_after``, so the leverage check and the stored positions cannot
disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Position:
    """One strategy's holding in one symbol: signed quantity, average price, and what it has realised so far."""

    qty: float = 0.0
    avg_price: float = 0.0
    realized_pnl_usd: float = 0.0
    fees_usd: float = 0.0


def position_after(qty: float, avg_price: float, side: str, size: float, price: float) -> tuple[float, float, float]:
    """Average-cost accounting of one fill: (new qty, new average price, realised PnL before fees)."""
    signed = size if side == "buy" else -size
    if qty == 0 or (qty > 0) == (signed > 0):
        new_qty = qty + signed
        return new_qty, (abs(qty) * avg_price + size * price) / abs(new_qty), 0.0
    closing = min(abs(signed), abs(qty))
    pnl = (price - avg_price) * closing * (1 if qty > 0 else -1)
    new_qty = qty + signed
    if abs(new_qty) < 1e-12:
        return 0.0, 0.0, pnl
    if (new_qty > 0) == (qty > 0):
        return new_qty, avg_price, pnl
    return new_qty, price, pnl


def apply_fill(position: Position, *, side: str, size: float, price: float,
               fee_usd: float) -> tuple[Position, float]:
    """The position after one fill and the fill's realised PnL, fee included (the fee is a realised loss)."""
    qty, avg_price, gross = position_after(position.qty, position.avg_price, side, size, price)
    pnl = gross - fee_usd
    return Position(qty, avg_price, position.realized_pnl_usd + pnl, position.fees_usd + fee_usd), pnl
