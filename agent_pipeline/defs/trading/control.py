"""Manual kill-switch control from Dagster: a job whose config trips, reduces or clears the switch."""

from typing import Literal

import dagster as dg
from pydantic import Field

from agent_pipeline.defs.resources import KillSwitchResource, StoreResource
from agent_pipeline.defs.trading.assets import TRADING_SAFETY, snapshot_metadata
from agent_pipeline.trading.kill_switch import KillSwitchError
from agent_pipeline.trading.report import snapshot

KILL_SWITCH_JOB = "kill_switch_control"


class KillSwitchCommand(dg.Config):
    action: Literal["trip", "reduce", "clear", "status"] = Field(
        description="trip: halt all orders; reduce: only position-reducing orders; clear: resume; status: show.")
    reason: str = Field(default="", description="Why (required for trip, reduce and clear; goes to the audit).")
    by: str = Field(default="dagster-ui", description="Who is acting (recorded in the audit).")


@dg.op(
    name="set_kill_switch",
    description="Trip, reduce or clear the persisted kill switch (with who and why in its audit), then report "
                "the trading_safety snapshot.",
    tags={"domain": "trading"},
    out=dg.Out(dict, description="The kill switch state after the action."),
)
def set_kill_switch(context: dg.OpExecutionContext, config: KillSwitchCommand, store: StoreResource,
                    kill_switch: KillSwitchResource):
    kill = kill_switch.switch()
    if config.action != "status":
        if not config.reason.strip():
            raise dg.Failure(description=f"kill switch {config.action} needs a reason")
        try:
            status = getattr(kill, config.action)(config.reason.strip(), by=config.by or "dagster-ui")
        except KillSwitchError as exc:  # clear/reduce that could not be audited changed nothing; say so
            raise dg.Failure(description=f"kill switch {config.action} did not happen: {exc}") from exc
        context.log.warning(f"kill switch {config.action} by {config.by}: {config.reason}")
        if status.problems:  # a trip that hit a damaged lock or audit still ended HALTED; show what failed
            context.log.error(f"kill switch {config.action} ended {status.state.value} with problems: "
                              + "; ".join(status.problems))
    snap = snapshot(store.store(), kill)
    yield dg.AssetMaterialization(asset_key=TRADING_SAFETY, description=f"kill switch {config.action}",
                                  metadata=snapshot_metadata(snap, kill.path))
    yield dg.Output(snap.kill_switch.as_dict())


@dg.job(
    name=KILL_SWITCH_JOB,
    description="Operate the kill switch from the UI: launch with config "
                "`ops: {set_kill_switch: {config: {action: trip|reduce|clear|status, reason: ..., by: ...}}}`.",
    tags={"domain": "trading"},
)
def kill_switch_control():
    set_kill_switch()
