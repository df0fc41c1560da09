"""Trading safety: the pre-trade gate, the kill switch, approvals, and the one execution layer.

Public contract (DESIGN.md section 3): ``GuardrailConfig``, ``KillSwitch()`` / ``KillSwitch(path)``,
``TradeGuardrails(cfg, kill_switch).check(signal)`` -> ``Decision`` (``ok, reason = ...``, ``.code``) and
``record_pnl``. Orders reach the paper broker only through ``agent_pipeline.trading.execution.ExecutionLayer``.
"""

from agent_pipeline.trading.config import APPROVAL_KEY_ENV, ExecutionConfig, GuardrailConfig
from agent_pipeline.trading.guardrails import PROTOTYPE_SIGNAL_KEYS, Decision, TradeGuardrails
from agent_pipeline.trading.kill_switch import KillSwitch, KillSwitchBusy, KillSwitchState, KillSwitchStatus
from agent_pipeline.trading.reasons import Reason
from agent_pipeline.trading.state import MemoryGateState, trading_date

__all__ = ["APPROVAL_KEY_ENV", "PROTOTYPE_SIGNAL_KEYS", "Decision", "ExecutionConfig", "GuardrailConfig", "KillSwitch",
           "KillSwitchBusy", "KillSwitchState", "KillSwitchStatus", "MemoryGateState", "Reason",
           "TradeGuardrails", "trading_date"]
