"""Live quotes from exchanges through ccxt, for users with exchange access (``pip install agent_pipeline[ccxt]``).

Only public market data is read (tickers and OHLCV); no keys are needed and no order is ever sent from here.
"""

from __future__ import annotations

from datetime import UTC, datetime

from agent_pipeline.market.base import MarketDataError, Quote


class CcxtMarket:
    def __init__(self, exchanges: tuple[str, ...] = ("kraken", "coinbase"), symbols: tuple[str, ...] = ("BTC/USD",)):
        try:
            import ccxt  # type: ignore[import-not-found]
        except ImportError as exc:
            raise MarketDataError("the ccxt source needs the optional extra: pip install 'agent_pipeline[ccxt]'") from exc
        unknown = [e for e in exchanges if not hasattr(ccxt, e)]
        if unknown:
            raise MarketDataError(f"ccxt has no exchange(s) {unknown}")
        self._clients = {name: getattr(ccxt, name)({"enableRateLimit": True}) for name in exchanges}
        self.venues = tuple(exchanges)
        self.symbols = tuple(symbols)

    def quotes(self, now: datetime) -> list[Quote]:
        out = []
        for venue, client in self._clients.items():
            for symbol in self.symbols:
                try:
                    t = client.fetch_ticker(symbol)
                except Exception as exc:  # network and exchange errors all mean "no data"
                    raise MarketDataError(f"{venue} {symbol}: {type(exc).__name__}: {exc}") from exc
                ts = datetime.fromtimestamp((t.get("timestamp") or now.timestamp() * 1000) / 1000, tz=UTC)
                out.append(Quote(
                    venue=venue, symbol=symbol, bid=float(t.get("bid") or "nan"), ask=float(t.get("ask") or "nan"),
                    bid_size=float(t.get("bidVolume") or "nan"), ask_size=float(t.get("askVolume") or "nan"),
                    ts=ts, data_age_sec=max(0.0, (now - ts).total_seconds()),
                ))
        return out

    def mid_history(self, symbol: str, now: datetime, lookback_sec: int, step_sec: int = 60) -> list[float]:
        venue, client = next(iter(self._clients.items()))
        since = int((now.timestamp() - lookback_sec) * 1000)
        try:
            candles = client.fetch_ohlcv(symbol, timeframe="1m", since=since)
        except Exception as exc:
            raise MarketDataError(f"{venue} {symbol} history: {type(exc).__name__}: {exc}") from exc
        return [float(c[4]) for c in candles]
