"""Per-run reward overrides: the run config of ``agent_rewards`` and ``reward_distributions``, layered over the
``reward_config`` resource (``agent_pipeline.defs.resources.RewardConfigResource``, the ``[reward]`` table's
concrete values), so a parameter can be changed in the launchpad for one reprice backfill."""

from agent_pipeline.config_fields import rules
from agent_pipeline.defs.config_models import run_overrides
from agent_pipeline.defs.resources import RewardConfigResource
from agent_pipeline.reward import RewardConfig

RewardRunConfig = run_overrides(
    RewardConfig, tuple(rules(RewardConfig)), "RewardRunConfig",
    "Per-run overrides of the reward configuration: unset keys keep the reward_config resource's value, a "
    "history key replaces that key only, a budget given here replaces that strategy's budget (the others stay).")

__all__ = ["RewardConfigResource", "RewardRunConfig"]
