"""Cumulative regret of run allocators against a constrained oracle, on batched periods.

Each period every policy decides quotas for 10 agents under the environment's bounds (budget, per-agent min and
max, per-strategy caps), the agents run that many times, and the policy sees the rewards. The oracle knows the
true mean rewards of the period and fills the *same* bounds greedily, so regret measures only what the policy
does not know. Regret is expected (pseudo-)regret: sum over periods of oracle value minus sum of quota x true
mean. Constraint violations are checked on every decision (must be 0 for our policies).

A policy run with a value floor (``value_floor = 0.0``, the pipeline's default) is measured against an oracle with
the same floor: it gives a slot only to an agent whose true mean exceeds the floor and otherwise leaves it unspent.
Besides regret the table reports the value captured against that oracle, the share of the runs given that went
to losing agents (true mean below 0 in that period) and the share of the budget held back after warm-up (the first
10 % of periods).

    .venv/bin/python -m benchmarks.allocator_regret                  # full table (a few minutes)
    .venv/bin/python -m benchmarks.allocator_regret --seeds 3 --periods 30 --envs gaussian   # quick look
    .venv/bin/python -m benchmarks.allocator_regret --envs capped_winners,all_losing --first-seed 260 --seeds 100

Comparing two versions of a policy seed by seed (the paired difference is far less noisy than two means): run one
row in each checkout with ``--policy LABEL --per-seed FILE``, then ``--paired BEFORE.json AFTER.json``. The file
also holds, per seed, the runs given to losing agents in each period (where a losers' share comes from).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from agent_pipeline.allocation import DEFAULT_POLICY, make_allocator, make_bounds, violations
from agent_pipeline.allocation.constraints import Bounds, fill
from benchmarks.allocator_baselines import MabwiserAdapter, PrototypeAdapter, mabwiser_available, mabwiser_policies

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
    if name == "capped_winners":
        # what the running product showed: the agents that earn are capped, a watcher runs a fixed number, and
        # the rest of the budget can only go to agents that lose
        mu = np.concatenate([rng.uniform(0.2, 0.8, 3), [0.0], rng.uniform(-0.6, -0.1, K - 4)])
        lo = {agents[3]: 3}
        hi = {agents[0]: 6, agents[1]: 6, agents[2]: 6, agents[3]: 3}
        bounds = make_bounds(agents, batch, lo, hi)
        return Env(name, lambda t: mu, lambda g, a, t, n: mu[a] + g.normal(0, 1.0, n), bounds,
                   "3 winners mu ~ U(0.2, 0.8) capped at 6 runs each, a watcher (mu 0) fixed at 3, 6 losers "
                   "mu ~ U(-0.6, -0.1); sigma 1")
    if name == "all_losing":
        mu = rng.uniform(-0.6, -0.1, K)
        return Env(name, lambda t: mu, lambda g, a, t, n: mu[a] + g.normal(0, 1.0, n), plain,
                   "every agent loses: mu ~ U(-0.6, -0.1), sigma 1, no caps")
    raise SystemExit(f"unknown environment {name!r}")


EXISTING_ENVS = ["bernoulli", "gaussian", "abrupt", "drift", "heavy", "portfolio", "infeasible"]
FLOOR_ENVS = ["capped_winners", "all_losing"]
ENVS = EXISTING_ENVS + FLOOR_ENVS
FLOOR = 0.0  # the pipeline's default [allocation] value_floor
WARMUP_SHARE = 0.1  # held-back shares are reported after the first 10 % of periods


# -- policies under test --------------------------------------------------------------------------------------------
class OursAdapter:
    def __init__(self, name: str, policy: str, seed: int, value_floor: float | None = None, **params):
        self.name = name
        self.value_floor = value_floor
        if make_allocator(policy).randomised:
            params.setdefault("seed", seed)
        self.alloc = make_allocator(policy, **params)

    def decide(self, bounds: Bounds):
        res = self.alloc.allocate(list(bounds.agents), dict(bounds.lo), dict(bounds.hi), bounds.budget,
                                  strategies=dict(bounds.strategy_of), max_runs_per_strategy=dict(bounds.strategy_hi),
                                  value_floor=self.value_floor)
        return res.quotas, res.shortfall, res.held_back

    def update(self, pairs):
        for a, r in pairs:
            self.alloc.observe(a, r)


DEFAULT_WITH_FLOOR = f"{DEFAULT_POLICY}, value_floor {FLOOR}"
PLAIN_TS = {"tail": 0.0, "posterior_scale": 1.0, "fantasize": False}


def policy_factories(include_mabwiser: bool, env_name: str) -> list[tuple[str, Callable[[int], object], float | None]]:
    """(label, factory, value floor) per policy. Every environment gets today's rows (the budget spent) and the
    default policy with the pipeline's floor; the floor environments get every policy of ours with the floor."""
    out: list[tuple[str, Callable[[int], object], float | None]] = [
        ("prototype_ucb (as written)", lambda s: PrototypeAdapter(s), None),
        ("uniform", lambda s: OursAdapter("uniform", "uniform", s), None),
        ("ucb (prototype's, fixed)", lambda s: OursAdapter("ucb (prototype's, fixed)", "ucb", s), None),
        ("thompson", lambda s: OursAdapter("thompson", "thompson", s), None),
        ("glr_thompson", lambda s: OursAdapter("glr_thompson", "glr_thompson", s), None),
        # the same discount as our Thompson policies, without winsorizing, posterior scaling, fantasized slots or
        # change detection
        ("plain discounted Gaussian TS", lambda s: OursAdapter("plain discounted Gaussian TS", "thompson", s,
                                                               **PLAIN_TS), None),
        (DEFAULT_WITH_FLOOR, lambda s: OursAdapter(DEFAULT_WITH_FLOOR, DEFAULT_POLICY, s, value_floor=FLOOR), FLOOR),
    ]
    if env_name in FLOOR_ENVS:
        for label, policy, params in (("uniform", "uniform", {}), ("ucb (prototype's, fixed)", "ucb", {}),
                                      ("thompson", "thompson", {}),
                                      ("plain discounted Gaussian TS", "thompson", PLAIN_TS)):
            name = f"{label}, value_floor {FLOOR}"
            out.append((name, lambda s, n=name, p=policy, kw=params: OursAdapter(n, p, s, value_floor=FLOOR, **kw),
                        FLOOR))
    if include_mabwiser:
        for label, factory, per_slot, binarize in mabwiser_policies():
            out.append((f"mabwiser {label}",
                        lambda s, f=factory, p=per_slot, b=binarize, lab=label: MabwiserAdapter(lab, f, s, p, b),
                        None))
    return out


# -- harness --------------------------------------------------------------------------------------------------------
def oracle_value(bounds: Bounds, mu: np.ndarray, floor: float | None = None) -> float:
    """The best value the bounds allow with the period's true means; with a floor it spends a slot only on an
    agent whose mean exceeds the floor (so it may leave budget unspent)."""
    index = {a: i for i, a in enumerate(bounds.agents)}

    def pick(slot, open_agents, q):
        best = max(open_agents, key=lambda a: mu[index[a]])
        return best if floor is None or mu[index[best]] > floor else None

    quotas = fill(bounds, pick).quotas
    return float(sum(q * mu[index[a]] for a, q in quotas.items()))


@dataclass
class Outcome:
    """One policy on one seed of one environment."""

    regret: float = 0.0
    value: float = 0.0
    oracle: float = 0.0  # the oracle with the floor (value captured is always measured against it)
    # runs given out, those to agents whose true mean is below 0, those held back, and the budget: over every
    # period and after the warm-up
    every_period: Counter = field(default_factory=Counter)
    after_warmup: Counter = field(default_factory=Counter)
    losing_by_period: list[int] = field(default_factory=list)
    violations: int = 0
    seconds: float = 0.0
    decisions: int = 0


def run_one(env_name: str, factory, seed: int, periods: int, batch: int, floor: float | None = None) -> Outcome:
    env = make_env(env_name, seed, periods, batch)
    policy = factory(seed)
    g = np.random.default_rng(seed)
    index = {a: i for i, a in enumerate(env.bounds.agents)}
    warmup = math.ceil(WARMUP_SHARE * periods)
    out = Outcome()
    for t in range(periods):
        mu = env.means(t)
        t0 = time.perf_counter()
        decided = policy.decide(env.bounds)
        out.seconds += time.perf_counter() - t0
        quotas, shortfall = decided[0], decided[1]
        held = decided[2] if len(decided) > 2 else 0
        out.violations += 1 if violations(env.bounds, quotas, shortfall, held) else 0
        value = sum(q * mu[index[a]] for a, q in quotas.items())
        with_floor = oracle_value(env.bounds, mu, FLOOR)
        out.regret += (with_floor if floor == FLOOR else oracle_value(env.bounds, mu, floor)) - value
        out.value += value
        out.oracle += with_floor
        losing = sum(q for a, q in quotas.items() if mu[index[a]] < 0)
        period = Counter(runs=sum(quotas.values()), losing=losing, held=held, budget=env.bounds.budget)
        out.every_period.update(period)
        out.losing_by_period.append(int(losing))
        if t >= warmup:
            out.after_warmup.update(period)
        pairs = []
        for a, q in quotas.items():
            if q > 0:
                pairs.extend((a, float(r)) for r in env.draw(g, index[a], t, q))
        order = g.permutation(len(pairs))  # runs of a period interleave in time
        policy.update([pairs[i] for i in order])
    out.decisions = periods
    return out


def _mean_sem(values: list[float]) -> tuple[float, float]:
    mean = float(np.mean(values))
    sem = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0
    return mean, sem


@dataclass
class Row:
    regret: tuple[float, float]
    captured: tuple[float, float] | None  # value / oracle value, per seed; None when the oracle earns nothing
    value: float
    oracle: float
    losing_share: float
    losing_share_after: float
    held_share: float
    violations: int
    ms: float
    floor: float | None


def summarize(outcomes: list[Outcome], floor: float | None) -> Row:
    captured = [o.value / o.oracle for o in outcomes if o.oracle > 1e-9]
    runs = sum(o.every_period["runs"] for o in outcomes)
    runs_after = sum(o.after_warmup["runs"] for o in outcomes)
    budget = sum(o.after_warmup["budget"] for o in outcomes)
    return Row(regret=_mean_sem([o.regret for o in outcomes]),
               captured=_mean_sem(captured) if len(captured) == len(outcomes) else None,
               value=float(np.mean([o.value for o in outcomes])), oracle=float(np.mean([o.oracle for o in outcomes])),
               losing_share=sum(o.every_period["losing"] for o in outcomes) / runs if runs else 0.0,
               losing_share_after=sum(o.after_warmup["losing"] for o in outcomes) / runs_after if runs_after else 0.0,
               held_share=sum(o.after_warmup["held"] for o in outcomes) / budget if budget else 0.0,
               violations=sum(o.violations for o in outcomes),
               ms=1000.0 * sum(o.seconds for o in outcomes) / max(sum(o.decisions for o in outcomes), 1),
               floor=floor)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    ap.add_argument("--periods", type=int, default=100)
    ap.add_argument("--batch", type=int, default=50, help="runs per period")
    ap.add_argument("--envs", default=",".join(ENVS))
    ap.add_argument("--no-mabwiser", action="store_true")
    ap.add_argument("--policy", action="append", metavar="LABEL",
                    help="run only the row with this label (repeatable), e.g. 'glr_thompson, value_floor 0.0'")
    ap.add_argument("--per-seed", metavar="FILE", help="also write each row's per-seed results to this JSON file")
    ap.add_argument("--paired", nargs=2, metavar=("BEFORE", "AFTER"),
                    help="print the paired regret difference between two --per-seed files, and run nothing")
    if argv is None:  # run by `python -m benchmarks` (whose own argv is not ours): the defaults
        argv = sys.argv[1:] if __name__ == "__main__" else []
    args = ap.parse_args(argv)
    if args.paired:
        print(paired(*(json.loads(Path(path).read_text(encoding="utf-8")) for path in args.paired)))
        return 0
    envs = [e.strip() for e in args.envs.split(",") if e.strip()]
    with_mab = not args.no_mabwiser and mabwiser_available()
    notes = []
    if not args.no_mabwiser and not with_mab:
        notes.append("MABWiser is not installed (`pip install -e '.[bench]'`): its rows are skipped.")
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    started = time.perf_counter()
    results: dict[str, dict[str, Row]] = {}
    per_seed: dict[str, dict[str, dict[int, dict]]] = {}
    for env_name in envs:
        results[env_name], per_seed[env_name] = {}, {}
        for label, factory, floor in policy_factories(with_mab, env_name):
            if args.policy and label not in args.policy:
                continue
            outcomes = [run_one(env_name, factory, seed, args.periods, args.batch, floor) for seed in seeds]
            row = summarize(outcomes, floor)
            results[env_name][label] = row
            per_seed[env_name][label] = {seed: {"regret": o.regret, "runs": o.every_period["runs"],
                                                "losing_by_period": o.losing_by_period}
                                         for seed, o in zip(seeds, outcomes, strict=True)}
            print(f"# {env_name:14s} {label:42s} regret {row.regret[0]:9.1f} ± {row.regret[1]:6.1f}  "
                  f"captured {_pct(row.captured)}  losing {row.losing_share:6.1%}  held {row.held_share:6.1%}  "
                  f"violations {row.violations}  {row.ms:.2f} ms/alloc", file=sys.stderr, flush=True)
    if args.policy and not any(results.values()):
        labels = [label for label, _, _ in policy_factories(with_mab, envs[0])]
        ap.error(f"no row is labelled {args.policy}; labels: {labels}")
    if args.per_seed:
        Path(args.per_seed).write_text(json.dumps(per_seed), encoding="utf-8")
    print(render(results, envs, args, notes, time.perf_counter() - started))
    return 0


def paired(before: dict, after: dict) -> str:
    """Per environment and row present in both files, mean regret of each and the mean paired difference
    (after - before) over the seeds both ran, each ± its standard error."""
    lines = []
    for env_name, rows in after.items():
        for label, seeds in rows.items():
            prior = before.get(env_name, {}).get(label, {})
            common = sorted(set(seeds) & set(prior), key=int)
            if not common:
                continue
            b = [prior[s]["regret"] for s in common]
            a = [seeds[s]["regret"] for s in common]
            difference = [y - x for x, y in zip(b, a, strict=True)]
            (mb, sb), (ma, sa), (md, sd) = _mean_sem(b), _mean_sem(a), _mean_sem(difference)
            lines.append(f"{env_name} / {label}, {len(common)} seeds: before {mb:.1f} ± {sb:.1f}, after {ma:.1f} ± "
                         f"{sa:.1f}, paired difference {md:+.1f} ± {sd:.1f}")
    return "\n".join(lines) or "no row and seed in common"


def _pct(pair: tuple[float, float] | None) -> str:
    return "—" if pair is None else f"{pair[0]:.1%} ± {pair[1]:.1%}"


def render(results, envs, args, notes, elapsed) -> str:
    header = (f"Seeds {args.first_seed}-{args.first_seed + args.seeds - 1}, {args.periods} periods of {args.batch} "
              f"runs, {K} agents; default policy `{DEFAULT_POLICY}`; regret ± standard error over seeds, against the "
              f"oracle with the row's floor (none: it spends the budget); `vs uniform` = regret / uniform's regret "
              f"(both without a floor); `captured` = value / the value of the oracle with floor {FLOOR:g}, which "
              f"may leave budget unspent (— when it earns nothing); `value (oracle)` = mean total value per seed "
              f"and that oracle's; `to losers` = share of the runs given that went to agents whose true mean was "
              f"below 0, over all periods and (in brackets) after the first {WARMUP_SHARE:.0%} of periods; `held "
              f"back` = share of the budget left unspent on purpose after those first {WARMUP_SHARE:.0%}; wall "
              f"time {elapsed:.0f} s.")
    lines = [header, ""]
    for env_name in envs:
        env = make_env(env_name, args.first_seed, args.periods, args.batch)
        lines += [f"**{env_name}** — {env.note}", "",
                  ("| policy | floor | regret | vs uniform | captured | value (oracle) | to losers | held back | "
                   "violations | ms / allocation |"),
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        uniform = (results[env_name]["uniform"].regret[0] or 1.0) if "uniform" in results[env_name] else None
        for label, row in results[env_name].items():
            mark = " **(default)**" if label in (DEFAULT_POLICY, DEFAULT_WITH_FLOOR) else ""
            floor = "none" if row.floor is None else f"{row.floor:g}"
            vs = f"{row.regret[0] / uniform:.2f}" if row.floor is None and uniform is not None else ""
            lines.append(f"| {label}{mark} | {floor} | {row.regret[0]:.1f} ± {row.regret[1]:.1f} | {vs} | "
                         f"{_pct(row.captured)} | {row.value:.1f} ({row.oracle:.1f}) | {row.losing_share:.1%} "
                         f"({row.losing_share_after:.1%}) | "
                         f"{row.held_share:.1%} | {row.violations} | {row.ms:.2f} |")
        lines.append("")
    lines += notes
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
