"""Cumulative regret of run allocators against a constrained oracle, on batched periods.

Each period every policy decides quotas for 10 agents under the environment's bounds (budget, per-agent min and
max, per-strategy caps), the agents run that many times, and the policy sees the rewards. The oracle knows the
true mean rewards of the period and fills the *same* bounds greedily, so regret measures only what the policy
does not know. Regret is expected (pseudo-)regret: sum over periods of oracle value minus sum of quota x true
mean. Constraint violations are checked on every decision (must be 0 for our policies).

    .venv/bin/python -m benchmarks.allocator_regret                  # full table (a few minutes)
    .venv/bin/python -m benchmarks.allocator_regret --seeds 3 --periods 30 --envs gaussian   # quick look
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from agent_pipeline.allocation import DEFAULT_POLICY, make_allocator, make_bounds, violations
from agent_pipeline.allocation.constraints import Bounds, fill
from benchmarks.allocator_baselines import (MabwiserAdapter, SeedAdapter, mabwiser_available,
                                            mabwiser_policies)

K = 10


# -- environments ---------------------------------------------------------------------------------------------------
@dataclass
class Env:
    name: str
    means: Callable[[int], np.ndarray]  # period -> true mean per agent
    draw: Callable[[np.random.Generator, int, int, int], np.ndarray]  # rng, agent, period, n -> rewards
    bounds: Bounds
    note: str = ""


def _agents(k: int = K) -> list[str]:
    return [f"agent_{i:02d}" for i in range(k)]


def make_env(name: str, seed: int, periods: int, batch: int) -> Env:
    rng = np.random.default_rng(10_000 + seed)
    agents = _agents()
    plain = make_bounds(agents, batch)
    if name == "bernoulli":
        p = rng.uniform(0.05, 0.95, K)
        return Env(name, lambda t: p, lambda g, a, t, n: (g.random(n) < p[a]).astype(float), plain,
                   "stationary Bernoulli, p ~ U(0.05, 0.95)")
    if name == "gaussian":
        mu = rng.normal(0.0, 0.5, K)
        return Env(name, lambda t: mu, lambda g, a, t, n: mu[a] + g.normal(0, 1.0, n), plain,
                   "stationary Gaussian, mu ~ N(0, 0.5), sigma 1")
    if name == "abrupt":
        n_segments = 4
        table = rng.normal(0.0, 0.5, (n_segments, K))
        length = max(periods // n_segments, 1)
        seg = lambda t: table[min(t // length, n_segments - 1)]  # noqa: E731
        return Env(name, seg, lambda g, a, t, n: seg(t)[a] + g.normal(0, 0.5, n), plain,
                   f"piecewise constant: all means redrawn every {length} periods, sigma 0.5")
    if name == "drift":
        phase = rng.uniform(0, 2 * math.pi, K)
        period_len = rng.uniform(0.5, 1.5, K) * periods
        amp = rng.uniform(0.3, 0.6, K)
        mu = lambda t: amp * np.sin(2 * math.pi * t / period_len + phase)  # noqa: E731
        return Env(name, mu, lambda g, a, t, n: mu(t)[a] + g.normal(0, 0.5, n), plain,
                   "slow sinusoidal drift (one cycle per 0.5-1.5 horizons), sigma 0.5")
    if name == "heavy":
        mu = rng.normal(0.0, 0.5, K)
        return Env(name, lambda t: mu, lambda g, a, t, n: mu[a] + 0.5 * g.standard_t(2, n), plain,
                   "stationary, Student-t(2) noise (infinite variance), scale 0.5")
    if name in ("portfolio", "infeasible"):
        mu = rng.normal(0.0, 0.5, K)
        kinds = ["watcher"] * 2 + ["execution-sensitive"] * 3 + ["signal"] * 5
        strategies = {a: f"s{i % 4}" for i, a in enumerate(agents)}
        order = np.argsort(-mu)  # make the constraints bite: the best agents are the capped ones
        agents_sorted = [agents[i] for i in order]
        kind_of = dict(zip(agents_sorted[2:] + agents_sorted[:2], kinds, strict=True))
        lo = {a: 3 for a, k in kind_of.items() if k == "watcher"}
        hi = {a: 8 for a, k in kind_of.items() if k == "execution-sensitive"}
        strat_cap = {"s0": batch // 3}
        if name == "infeasible":
            hi = {a: 4 for a in agents}  # 10 x 4 = 40 runs fit in a budget of `batch`
            strat_cap = {"s0": 6}
        bounds = make_bounds(agents, batch, lo, hi, strategies, strat_cap)
        note = ("constrained portfolio: 2 watchers min 3, 3 execution-sensitive max 8, strategy s0 capped at "
                f"{batch // 3} runs") if name == "portfolio" else \
            f"infeasible: every agent max 4, s0 max 6 (capacity {bounds.capacity} < budget {batch})"
        return Env(name, lambda t: mu, lambda g, a, t, n: mu[a] + g.normal(0, 1.0, n), bounds, note)
    raise SystemExit(f"unknown environment {name!r}")


ENVS = ["bernoulli", "gaussian", "abrupt", "drift", "heavy", "portfolio", "infeasible"]


# -- policies under test --------------------------------------------------------------------------------------------
class OursAdapter:
    def __init__(self, name: str, policy: str, seed: int, **params):
        self.name = name
        if make_allocator(policy).randomised:
            params.setdefault("seed", seed)
        self.alloc = make_allocator(policy, **params)

    def decide(self, bounds: Bounds):
        res = self.alloc.allocate(list(bounds.agents), dict(bounds.lo), dict(bounds.hi), bounds.budget,
                                  strategies=dict(bounds.strategy_of), max_runs_per_strategy=dict(bounds.strategy_hi))
        return res.quotas, res.shortfall

    def update(self, pairs):
        for a, r in pairs:
            self.alloc.observe(a, r)


def policy_factories(include_mabwiser: bool) -> list[tuple[str, Callable[[int], object]]]:
    out: list[tuple[str, Callable[[int], object]]] = [
        ("seed_ucb (as written)", lambda s: SeedAdapter(s)),
        ("uniform", lambda s: OursAdapter("uniform", "uniform", s)),
        ("ucb (fixed seed)", lambda s: OursAdapter("ucb (fixed seed)", "ucb", s)),
        ("thompson", lambda s: OursAdapter("thompson", "thompson", s)),
        ("glr_thompson", lambda s: OursAdapter("glr_thompson", "glr_thompson", s)),
        # the same discount as our Thompson policies, without winsorizing, posterior scaling, fantasized slots or
        # change detection
        ("plain discounted Gaussian TS", lambda s: OursAdapter("plain discounted Gaussian TS", "thompson", s,
                                                               tail=0.0, posterior_scale=1.0, fantasize=False)),
    ]
    if include_mabwiser:
        for label, factory, per_slot, binarize in mabwiser_policies():
            out.append((f"mabwiser {label}",
                        lambda s, f=factory, p=per_slot, b=binarize, lab=label: MabwiserAdapter(lab, f, s, p, b)))
    return out


# -- harness --------------------------------------------------------------------------------------------------------
def oracle_value(bounds: Bounds, mu: np.ndarray) -> float:
    index = {a: i for i, a in enumerate(bounds.agents)}
    quotas, _ = fill(bounds, lambda slot, open_agents, q: max(open_agents, key=lambda a: mu[index[a]]))
    return float(sum(q * mu[index[a]] for a, q in quotas.items()))


@dataclass
class Outcome:
    regret: list[float] = field(default_factory=list)
    violations: int = 0
    alloc_seconds: float = 0.0
    decisions: int = 0


def run_one(env_name: str, factory, seed: int, periods: int, batch: int) -> tuple[float, int, float, int]:
    env = make_env(env_name, seed, periods, batch)
    policy = factory(seed)
    g = np.random.default_rng(seed)
    index = {a: i for i, a in enumerate(env.bounds.agents)}
    regret, bad, spent = 0.0, 0, 0.0
    for t in range(periods):
        mu = env.means(t)
        t0 = time.perf_counter()
        quotas, shortfall = policy.decide(env.bounds)
        spent += time.perf_counter() - t0
        bad += 1 if violations(env.bounds, quotas, shortfall) else 0
        regret += oracle_value(env.bounds, mu) - sum(q * mu[index[a]] for a, q in quotas.items())
        pairs = []
        for a, q in quotas.items():
            if q > 0:
                pairs.extend((a, float(r)) for r in env.draw(g, index[a], t, q))
        order = g.permutation(len(pairs))  # runs of a period interleave in time
        policy.update([pairs[i] for i in order])
    return regret, bad, spent, periods


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--periods", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50, help="runs per period")
    ap.add_argument("--envs", default=",".join(ENVS))
    ap.add_argument("--no-mabwiser", action="store_true")
    if argv is None:  # run by `python -m benchmarks` (whose own argv is not ours): the defaults
        argv = sys.argv[1:] if __name__ == "__main__" else []
    args = ap.parse_args(argv)
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    with_mab = not args.no_mabwiser and mabwiser_available()
    notes = []
    if not args.no_mabwiser and not with_mab:
        notes.append("MABWiser is not installed (`pip install -e '.[bench]'`): its rows are skipped.")
    policies = policy_factories(with_mab)
    started = time.perf_counter()
    results: dict[str, dict[str, tuple[float, float, int, float]]] = {}
    for env_name in envs:
        results[env_name] = {}
        for label, factory in policies:
            regrets, bad, spent, decisions = [], 0, 0.0, 0
            for seed in range(args.seeds):
                r, b, s, d = run_one(env_name, factory, seed, args.periods, args.batch)
                regrets.append(r)
                bad += b
                spent += s
                decisions += d
            mean = float(np.mean(regrets))
            sem = float(np.std(regrets, ddof=1) / math.sqrt(len(regrets))) if len(regrets) > 1 else 0.0
            results[env_name][label] = (mean, sem, bad, 1000.0 * spent / max(decisions, 1))
            print(f"# {env_name:10s} {label:40s} regret {mean:9.1f} ± {sem:6.1f}  violations {bad}  "
                  f"{1000.0 * spent / max(decisions, 1):.2f} ms/alloc", file=sys.stderr, flush=True)
    print(render(results, envs, args, notes, time.perf_counter() - started))
    return 0


def render(results, envs, args, notes, elapsed) -> str:
    lines = [f"Seeds {args.seeds}, {args.periods} periods of {args.batch} runs, {K} agents; default policy "
             f"`{DEFAULT_POLICY}`; regret ± standard error over seeds; `vs uniform` = regret / uniform's regret; "
             f"wall time {elapsed:.0f} s.", ""]
    for env_name in envs:
        env = make_env(env_name, 0, args.periods, args.batch)
        lines += [f"**{env_name}** — {env.note}", "",
                  "| policy | regret | vs uniform | violations | ms / allocation |", "|---|---:|---:|---:|---:|"]
        uniform = results[env_name]["uniform"][0] or 1.0
        for label, (mean, sem, bad, ms) in results[env_name].items():
            mark = " **(default)**" if label == DEFAULT_POLICY else ""
            lines.append(f"| {label}{mark} | {mean:.1f} ± {sem:.1f} | {mean / uniform:.2f} | {bad} | {ms:.2f} |")
        lines.append("")
    lines += notes
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
