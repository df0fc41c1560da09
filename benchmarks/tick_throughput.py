"""Agent runs per minute through Dagster: the quota tick beside the plain loop and the per-run jobs, in one run.

Twenty user agents, ten trivial and ten that wait 0.3 s as a model call would, each given the same quota by the
allocator (``[allocation] min_runs = max_runs``, so the real ``allocator_quotas`` decision is the offered load).

1. Plain loop: the same agents run instrumented through the package (``run_and_record``), one after the other,
   each event appended through one held store connection; no Dagster.
2. Old path: ``agent__fast_00`` (one agent per run) and ``agent_runs`` (all twenty per run) launched through the
   webserver of a real ``dagster dev`` (queued run coordinator, 3 runs at once, as ``make run``), timed from the
   first launch until the last run ended.
3. Quota tick: at the next period boundary the allocator decides, and the same ``dagster dev``'s daemon evaluates
   ``agent_tick_sensor`` and launches ``agent_tick`` runs through its run launcher, the deployment's own path.
   Measured over ``--minutes`` from ``--warmup`` seconds after the boundary (slots due in that window): runs per minute by agent class, schedule lag (a slot's due time
   to the agent's start, from its event's ``started_at``; the op starts a few ms before), slots due but not run,
   and CPU seconds per agent run (user + system of every process of the ``dagster dev`` session, including its
   webserver, daemon and other sensors, over the window).

Command (see BENCHMARKS.md): ``nice -n 10 .venv/bin/python -m benchmarks.tick_throughput`` (about 10 minutes:
it waits for the next 5-minute period boundary); ``python -m benchmarks tick_throughput`` runs it with its
defaults.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAST = [f"fast_{i:02d}" for i in range(10)]
SLOW = [f"slow_{i:02d}" for i in range(10)]
WAIT_S = 0.3
PERIOD_MINUTES = 5

AGENTS_MODULE = textwrap.dedent(f"""
    import time

    def trivial(ctx):
        return [{{"profit_pct": 0.01}}]

    def model_call(ctx):
        time.sleep({WAIT_S})  # a model call's wait: no CPU
        return [{{"profit_pct": 0.01}}]
""")


def _config(per_minute: int) -> str:
    quota = per_minute * PERIOD_MINUTES
    names = FAST + SLOW
    bounds = ", ".join(f"{n} = {quota}" for n in names)
    agents = "".join(f'[[agents]]\nname = "{n}"\nref = "bench_tick_agents:{"trivial" if n in FAST else "model_call"}"\n'
                     f'strategy = "{n}"\n' for n in names)
    return (f"builtin_agents = false\n[market]\nfault_rate = 0.0\n"
            f"[allocation]\nperiod_minutes = {PERIOD_MINUTES}\ntotal_budget_runs = {quota * len(names)}\n"
            f"min_runs = {{ {bounds} }}\nmax_runs = {{ {bounds} }}\n" + agents)


def _setup(workdir: Path, per_minute: int) -> tuple[Path, Path]:
    home, code = workdir / "home", workdir / "code"
    home.mkdir()
    code.mkdir()
    (code / "bench_tick_agents.py").write_text(AGENTS_MODULE)
    (home / "config.toml").write_text(_config(per_minute))
    dagster_home = workdir / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(ROOT / "ops" / "dagster.dev.yaml", dagster_home / "dagster.yaml")
    return home, code


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- 1. the plain loop --------------------------------------------------------------------------------------------
def plain_loop(rounds: int) -> dict:
    from agent_pipeline.agents import AgentContext, build_registry
    from agent_pipeline.agents.instrumentation import run_and_record
    from agent_pipeline.market import make_market
    from agent_pipeline.pipeline_settings import Settings
    from agent_pipeline.store import Store, append_event

    settings = Settings.load()
    registry = build_registry(settings.agents)
    store = Store(settings.store_path)
    out = {}
    for label, names in (("trivial", FAST), ("waiting", SLOW), ("mix", FAST + SLOW)):
        runs, cpu0, t0 = 0, time.process_time(), time.perf_counter()
        with store.connect() as conn:
            for _ in range(rounds):
                for name in names:
                    loaded = registry[name]

                    def prepare(loaded=loaded):
                        ctx = AgentContext(now=datetime.now(UTC), market=make_market(settings.market,
                                                                                     consumer=loaded.name),
                                           params=loaded.spec.params, run_id="plain-loop")
                        return ctx, settings.reward

                    run_and_record(loaded, prepare, run_id="plain-loop", source="cli",
                                   record=lambda e: append_event(store, e, conn=conn))
                    runs += 1
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        out[label] = {"runs": runs, "per_minute": runs / wall * 60, "cpu_per_run": cpu / runs}
    return out


# -- the dagster dev session ----------------------------------------------------------------------------------------
def _session_cpu_s(sid: int) -> float:
    """User + system CPU of every live process of session ``sid``, with what their reaped children used."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 (session), counted after the ")" that ends the command name
            total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


RUN_STATUS = "query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }"


def old_path(dev, single_runs: int, all_runs: int) -> dict:
    from agent_pipeline.store import read_events
    from agent_pipeline_tests.dagster_dev import graphql

    out = {}
    for label, job, count, per_run in (("agent__fast_00", "agent__fast_00", single_runs, 1),
                                       ("agent_runs", "agent_runs", all_runs, len(FAST + SLOW))):
        if not count:
            continue
        t0 = time.perf_counter()
        ids = [dev.launch("__repository__", job) for _ in range(count)]
        while True:
            statuses = [graphql(dev.port, RUN_STATUS, {"runId": i})["runOrError"]["status"] for i in ids]
            if all(s in ("SUCCESS", "FAILURE", "CANCELED") for s in statuses):
                break
            time.sleep(1)
        wall = time.perf_counter() - t0
        events = read_events(_store(), read_only=True, timeout_s=30)
        runs = int(events["run_id"].isin(ids).sum())
        out[label] = {"runs": runs, "expected": count * per_run, "failed_runs": statuses.count("FAILURE"),
                      "per_minute": runs / wall * 60, "wall_s": wall}
    return out


def _store():
    from agent_pipeline.pipeline_settings import Settings
    from agent_pipeline.store import Store

    return Store(Settings.load().store_path)


def _decide_zero() -> None:
    """Quotas of 0 in force until the boundary: the bootstrap schedule steps aside, the tick launches nothing."""
    from agent_pipeline.allocation import Allocation
    from agent_pipeline.allocation.decision import period_start_for
    from agent_pipeline.allocation.tables import ALLOCATION, write_decision

    names = FAST + SLOW
    period = period_start_for(datetime.now(UTC), PERIOD_MINUTES)
    store = _store()
    with store.connect(timeout_s=60) as conn:
        ALLOCATION.ensure(store, conn)
        write_decision(conn, period, period, Allocation(quotas=dict.fromkeys(names, 0),
                                                        scores=dict.fromkeys(names, 0.0), policy="benchmark"),
                       {a: ("signal", a) for a in names}, {"seed": None})


def _allocate() -> dict[str, int]:
    """The allocator's real decision for the period now starting (what its cron does at the boundary)."""
    import dagster as dg

    from agent_pipeline.definitions import build_location
    from agent_pipeline.pipeline_settings import Settings

    defs = build_location(Settings.load())
    result = defs.resolve_job_def("allocator_quotas_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    with _store().connect(read_only=True, timeout_s=60) as conn:
        from agent_pipeline.allocation.tables import period_in_force

        _period, rows = period_in_force(conn)
    return {r.agent: int(r.quota) for r in rows}


def tick_path(dev, minutes: float, quotas_per_minute: int, warmup_s: float) -> dict:
    from agent_pipeline.allocation.decision import period_start_for
    from agent_pipeline.allocation.schedule import slot_time
    from agent_pipeline.allocation.tick import slot_event_id, slot_key
    from agent_pipeline.store import read_events

    now = datetime.now(UTC)
    boundary = period_start_for(now, PERIOD_MINUTES) + timedelta(minutes=PERIOD_MINUTES)
    time.sleep(max(0.0, (boundary - datetime.now(UTC)).total_seconds()) + 0.5)
    quotas = _allocate()
    assert set(quotas.values()) == {quotas_per_minute * PERIOD_MINUTES}, quotas
    start = boundary + timedelta(seconds=warmup_s)  # the first ticks' runs are starting meanwhile
    time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()))
    cpu0, t0 = _session_cpu_s(dev.proc.pid), datetime.now(UTC)
    end = start + timedelta(minutes=minutes)
    time.sleep(max(0.0, (end - datetime.now(UTC)).total_seconds()))
    cpu = _session_cpu_s(dev.proc.pid) - cpu0
    t1 = datetime.now(UTC)
    time.sleep(45)  # let the ticks in flight commit before reading
    dev.alive()
    events = read_events(_store(), since=boundary - timedelta(minutes=1), read_only=True, timeout_s=60)
    period = boundary
    due = {}
    for agent, quota in quotas.items():
        for index in range(quota):
            at = slot_time(period, PERIOD_MINUTES, quota, index)
            if at < end:
                due[slot_event_id(slot_key(agent, period, index))] = (agent, at)
    by_id = events.set_index("event_id")
    due = {i: v for i, v in due.items() if v[1] >= start}  # slots due from the window's start
    ran = [i for i in due if i in by_id.index]
    live = events[events["source"] == "dagster"]
    in_window = live[(live["started_at"] >= t0) & (live["started_at"] <= t1)]  # every run started in the window
    lags = [(by_id.loc[i, "started_at"].to_pydatetime() - due[i][1]).total_seconds() for i in ran]
    late_cut = end - timedelta(seconds=45)  # slots due at the very end may ride the tick after the window
    missing = [i for i, (_a, at) in due.items() if at < late_cut and i not in by_id.index]
    window_min = (t1 - t0).total_seconds() / 60
    runs_summary = _tick_runs(Path(os.environ["DAGSTER_HOME"]), t0, t1)
    fast = int(in_window["agent"].isin(FAST).sum())
    return {"offered_per_minute": quotas_per_minute * len(quotas), "runs": len(in_window),
            "per_minute": len(in_window) / window_min, "trivial_per_minute": fast / window_min,
            "waiting_per_minute": (len(in_window) - fast) / window_min,
            "lag_p50_s": statistics.median(lags) if lags else float("nan"), "lag_p95_s": _pct(lags, 0.95),
            "lag_max_s": max(lags) if lags else float("nan"), "missing_slots": len(missing),
            "errors": int(events.loc[events["event_id"].isin(ran), "error"].notna().sum()),
            "cpu_per_run": cpu / max(1, len(in_window)), "window_minutes": window_min, **runs_summary}


def _tick_runs(dagster_home: Path, t0: datetime, t1: datetime) -> dict:
    """The agent_tick runs that started in the window: how many, their outcome and wall time (start to end)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        records = instance.get_run_records(dg.RunsFilter(job_name="agent_tick"))
    started = [r for r in records if r.start_time and t0.timestamp() <= r.start_time <= t1.timestamp()]
    walls = [r.end_time - r.start_time for r in started if r.end_time]
    return {"tick_runs": len(started), "tick_runs_failed": sum(r.dagster_run.status.value == "FAILURE"
                                                               for r in started),
            "tick_run_wall_p50_s": statistics.median(walls) if walls else float("nan"),
            "tick_run_slots_mean": statistics.mean(int(r.dagster_run.tags.get("allocation/slots", 0))
                                                   for r in started) if started else float("nan")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0, help="tick measurement window")
    parser.add_argument("--per-minute", type=int, default=18, help="quota per agent per minute (x20 agents)")
    parser.add_argument("--rounds", type=int, default=5, help="plain-loop rounds over the agents")
    parser.add_argument("--single-runs", type=int, default=10, help="agent__fast_00 runs of the old path")
    parser.add_argument("--all-runs", type=int, default=3, help="agent_runs runs of the old path")
    parser.add_argument("--warmup", type=float, default=60.0, help="seconds after the boundary before measuring")
    parser.add_argument("--keep", action="store_true", help="keep the homes and the dagster dev log")
    args = parser.parse_args(argv if argv is not None else (sys.argv[1:] if __name__ == "__main__" else []))

    from agent_pipeline_tests.dagster_dev import running_dagster_dev

    workdir = Path(tempfile.mkdtemp(prefix="tick_bench_"))
    home, code = _setup(workdir, args.per_minute)
    os.environ["AGENT_PIPELINE_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(workdir / "dagster_home")  # what running_dagster_dev uses
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(code), os.environ.get("PYTHONPATH", "")])
    sys.path[:0] = [str(code)]
    load0 = os.getloadavg()
    print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; {os.cpu_count()} cores", flush=True)

    plain = plain_loop(args.rounds)
    for label, r in plain.items():
        print(f"plain loop, {label}: {r['runs']} runs, {r['per_minute']:.0f} runs/min, "
              f"{r['cpu_per_run'] * 1000:.1f} ms CPU/run", flush=True)
    _decide_zero()
    with running_dagster_dev(workdir, home) as dev:
        old = old_path(dev, args.single_runs, args.all_runs)
        for label, r in old.items():
            print(f"old path, {label}: {r['runs']}/{r['expected']} agent runs in {r['wall_s']:.0f} s "
                  f"({r['failed_runs']} failed runs), {r['per_minute']:.1f} runs/min", flush=True)
        tick = tick_path(dev, args.minutes, args.per_minute, args.warmup)
    load1 = os.getloadavg()
    print(f"quota tick over {tick['window_minutes']:.1f} min (offered {tick['offered_per_minute']}/min): "
          f"{tick['runs']} runs, {tick['per_minute']:.0f} runs/min (trivial {tick['trivial_per_minute']:.0f}, "
          f"waiting {tick['waiting_per_minute']:.0f}); lag p50 {tick['lag_p50_s']:.1f} s, p95 "
          f"{tick['lag_p95_s']:.1f} s, max {tick['lag_max_s']:.1f} s; {tick['missing_slots']} due slots not run; "
          f"{tick['errors']} failed runs; {tick['cpu_per_run'] * 1000:.0f} ms CPU/run (whole session); "
          f"{tick['tick_runs']} tick runs ({tick['tick_runs_failed']} failed), {tick['tick_run_slots_mean']:.0f} "
          f"slots each, {tick['tick_run_wall_p50_s']:.1f} s each (p50)", flush=True)
    print(f"tick / plain loop (mix): {tick['per_minute'] / plain['mix']['per_minute']:.2f}; "
          f"load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}", flush=True)
    if args.keep:
        print(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
