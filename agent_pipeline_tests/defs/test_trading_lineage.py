"""What an agent run tells the UI about trading: each table it changed is materialized (fills, positions and
daily_pnl with the fills), and a gate denial, the gate doing its job, is an INFO line rather than a warning."""

import logging

import dagster as dg

from agent_pipeline.trading.kill_switch import default_path
from agent_pipeline.trading.kill_switch_anchor import anchored_switch

TABLES = ("gate_decisions", "orders", "fills", "positions", "daily_pnl")


def _location():
    from agent_pipeline.definitions import build_location
    from agent_pipeline.pipeline_settings import Settings

    return build_location(Settings.load())


def _materialized(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def test_a_denial_is_logged_at_info_and_only_the_gate_table_changes(store, pipeline_home):
    anchored_switch(default_path()).trip("maintenance", by="test")  # as the CLI and the jobs write it
    instance = dg.DagsterInstance.ephemeral()
    result = _location().get_job_def("agent__momentum").execute_in_process(instance=instance)
    assert result.output_for_node("execute_momentum")["by_reason"] == {"KILL_SWITCH_HALTED": 1}
    logs = [e for e in instance.all_logs(result.run_id) if "denied by the gate" in (e.user_message or "")]
    assert [(e.level, e.step_key) for e in logs] == [(logging.INFO, "execute_momentum")]
    assert "KILL_SWITCH_HALTED x1" in logs[0].user_message
    assert _materialized(result) & set(TABLES) == {"gate_decisions"}  # no order, so no fill, position or PnL


def test_the_tables_an_agent_run_changed_are_the_ones_it_materializes(store, pipeline_home):
    (pipeline_home / "config.toml").write_text("[market]\nfault_rate = 0.0\n")
    job = _location().get_job_def("agent_runs")
    for _ in range(3):
        result = job.execute_in_process()
        summaries = [result.output_for_node(f"execute_{a}") for a in ("cross_venue_arb", "momentum", "regime_watcher")]
        filled = sum(s["filled"] for s in summaries)
        materialized = _materialized(result)
        assert ("fills" in materialized) == ("positions" in materialized) == ("daily_pnl" in materialized) == \
            (filled > 0)
        assert ("orders" in materialized) == (sum(s["approved"] for s in summaries) > 0)
        with store.connect(read_only=True) as conn:
            stored = conn.execute("SELECT count(*) FROM fills WHERE order_id IN (SELECT order_id FROM orders "
                                  "WHERE run_id = ?)", [result.run_id]).fetchone()[0] if filled else 0
        assert (stored > 0) == (filled > 0)
