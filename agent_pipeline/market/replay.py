"""Replay recorded quotes from a CSV or Parquet file, so agents can be run against real history offline.

Columns: ts (ISO-8601 or epoch seconds, UTC), venue, symbol, bid, ask, bid_size, ask_size. At time ``now`` each
venue/symbol shows its latest quote at or before ``now``; its data age grows until the next one. With
``loop=True`` the file's time span repeats forever, which turns a short sample into a live-looking feed.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from agent_pipeline.market.base import MarketDataError, Quote
from agent_pipeline.store.connection import query_df

REQUIRED = ("ts", "venue", "symbol", "bid", "ask", "bid_size", "ask_size")
SAMPLE_FILE = Path(__file__).with_name("data") / "sample_quotes.csv"


def _load(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise MarketDataError(f"replay file {path} does not exist")
    reader = "read_parquet" if path.suffix.lower() in (".parquet", ".pq") else "read_csv_auto"
    try:
        with duckdb.connect() as conn:
            frame = query_df(conn, f"SELECT * FROM {reader}(?)", [str(path)])
    except duckdb.Error as exc:
        raise MarketDataError(f"replay file {path}: cannot read: {exc}") from exc
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise MarketDataError(f"replay file {path}: missing column(s) {missing}; need {list(REQUIRED)}")
    ts = frame["ts"]
    if pd.api.types.is_numeric_dtype(ts):
        frame["ts"] = pd.to_datetime(ts, unit="s", utc=True)
    else:
        frame["ts"] = pd.to_datetime(ts, utc=True)
    for col in ("bid", "ask", "bid_size", "ask_size"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if frame.empty:
        raise MarketDataError(f"replay file {path} has no quotes")
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


class ReplayMarket:
    """Quotes replayed from a file (the bundled sample by default)."""

    def __init__(self, path: str | Path = SAMPLE_FILE, *, loop: bool = True):
        self.path = Path(path)
        self.loop = loop
        self.frame = _load(self.path)
        self.venues = tuple(sorted(self.frame["venue"].astype(str).unique()))
        self.symbols = tuple(sorted(self.frame["symbol"].astype(str).unique()))
        self.start = self.frame["ts"].iloc[0].to_pydatetime()
        self.end = self.frame["ts"].iloc[-1].to_pydatetime()

    def _file_time(self, now: datetime) -> tuple[datetime, timedelta]:
        """Map ``now`` into the file's time span; returns the file time and the offset added to its stamps."""
        if now.tzinfo is None:
            raise ValueError("market time must be timezone-aware (UTC)")
        span = (self.end - self.start).total_seconds()
        if not self.loop or span <= 0:
            return now, timedelta(0)
        cycles = math.floor((now - self.start).total_seconds() / (span + 1.0))
        offset = timedelta(seconds=cycles * (span + 1.0))
        return now - offset, offset

    def quotes(self, now: datetime) -> list[Quote]:
        at, offset = self._file_time(now)
        seen = self.frame[self.frame["ts"] <= pd.Timestamp(at)]
        if seen.empty:
            raise MarketDataError(f"replay file {self.path} has no quotes at or before {at.isoformat()}")
        latest = seen.groupby(["venue", "symbol"], sort=True).tail(1)
        out = []
        for row in latest.itertuples(index=False):
            ts = row.ts.to_pydatetime() + offset
            out.append(Quote(
                venue=str(row.venue), symbol=str(row.symbol), bid=float(row.bid), ask=float(row.ask),
                bid_size=float(row.bid_size), ask_size=float(row.ask_size), ts=ts,
                data_age_sec=max(0.0, (now - ts).total_seconds()),
            ))
        return out

    def mid_history(self, symbol: str, now: datetime, lookback_sec: int, step_sec: int = 1) -> list[float]:
        if symbol not in self.symbols:
            raise MarketDataError(f"unknown symbol {symbol!r}; {self.path} has {list(self.symbols)}")
        at, _ = self._file_time(now)
        rows = self.frame[self.frame["symbol"] == symbol]
        if self.loop:  # history reaches back across the loop boundary into the previous cycles
            cycle = timedelta(seconds=(self.end - self.start).total_seconds() + 1.0)
            copies = 1 + int(lookback_sec // max(cycle.total_seconds(), 1.0))
            rows = pd.concat([rows.assign(ts=rows["ts"] - k * cycle) for k in range(copies, 0, -1)] + [rows])
        rows = rows[(rows["ts"] <= pd.Timestamp(at)) & (rows["ts"] > pd.Timestamp(at - timedelta(seconds=lookback_sec)))]
        if rows.empty:
            return []
        mids = ((rows["bid"] + rows["ask"]) / 2.0).groupby(rows["ts"]).mean()
        grid = pd.date_range(end=pd.Timestamp(at), periods=max(1, lookback_sec // step_sec), freq=f"{step_sec}s")
        series = mids.reindex(mids.index.union(grid)).ffill().reindex(grid).dropna()
        return [float(x) for x in series.to_numpy(dtype=np.float64)]
