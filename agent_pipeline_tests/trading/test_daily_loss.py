"""Daily loss: persisted by UTC trading date, survives restarts, resets only when the UTC date changes."""

from datetime import UTC, datetime, timedelta

from agent_pipeline.trading import GuardrailConfig, KillSwitch, Reason, TradeGuardrails, trading_date
from agent_pipeline.trading.store_state import StoreGateState

from .conftest import prototype_signal


def make(store, kill, clock):
    return TradeGuardrails(GuardrailConfig(), kill, state=StoreGateState(store), clock=clock)


def test_trading_date_is_utc():
    from zoneinfo import ZoneInfo

    late_in_new_york = datetime(2026, 3, 2, 22, 30, tzinfo=ZoneInfo("America/New_York"))
    assert trading_date(late_in_new_york).isoformat() == "2026-03-03"


def test_daily_loss_survives_restart(store, tmp_path, clock):
    kill_path = tmp_path / "ks.json"
    first = make(store, KillSwitch(kill_path), clock)
    first.record_pnl(-300.0)
    second = make(store, KillSwitch(kill_path), clock)  # a new process: nothing carried in memory
    assert second.daily_loss_usd == 300.0
    second.record_pnl(-250.0)
    assert KillSwitch(kill_path).enabled  # 550 > 500 trips the persisted switch
    KillSwitch(kill_path).clear("reviewed")
    third = make(store, KillSwitch(kill_path), clock)
    d = third.check(prototype_signal())
    assert d.code is Reason.DAILY_LOSS_LIMIT  # the restart did not reset the day's budget
    assert KillSwitch(kill_path).enabled


def test_day_rollover_with_an_injected_clock(store, clock):
    clock.now = datetime(2026, 3, 2, 23, 59, 30, tzinfo=UTC)
    kill = KillSwitch()
    g = make(store, kill, clock)
    g.record_pnl(-450.0)
    assert g.day_key == "2026-03-02" and g.daily_loss_usd == 450.0
    clock.now += timedelta(seconds=29)
    g.record_pnl(-40.0)
    assert g.daily_loss_usd == 490.0 and g.check(prototype_signal()).ok
    clock.now += timedelta(seconds=2)  # 00:00:01 UTC: a new trading date
    assert g.day_key == "2026-03-03" and g.daily_loss_usd == 0.0
    g.record_pnl(-100.0)
    assert g.daily_loss_usd == 100.0 and g.check(prototype_signal()).ok and not kill.enabled
    with store.connect() as conn:
        rows = conn.execute("SELECT trading_date::VARCHAR, loss_usd FROM daily_pnl ORDER BY 1").fetchall()
    assert rows == [("2026-03-02", 490.0), ("2026-03-03", 100.0)]
