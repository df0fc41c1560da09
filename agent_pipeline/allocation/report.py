"""Readable views of a decision: a markdown table and an SVG bar chart of quotas and capital."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from agent_pipeline.allocation.result import Allocation
from agent_pipeline.numbers import finite_number


def _fmt(value: float | None) -> str:
    if finite_number(value) is None:
        return "unexplored"
    return f"{value:.4g}"


def markdown_table(allocation: Allocation, agents: Mapping[str, tuple[str, str]]) -> str:
    lines = ["| agent | kind | strategy | quota | status | capital USD | capital by | score | rewards seen |",
             "|---|---|---|---:|---|---:|---|---:|---:|"]
    for agent in sorted(allocation.quotas, key=lambda a: (-allocation.quotas[a], a)):
        kind, strategy = agents[agent]
        seen = int(allocation.stats.get(agent, {}).get("n", 0))
        status = allocation.explanations.get(agent, {}).get("status", "")
        lines.append(f"| {agent} | {kind} | {strategy} | {allocation.quotas[agent]} | {status} | "
                     f"{allocation.capital.get(agent, 0.0):,.2f} | {allocation.capital_method.get(agent, '')} | "
                     f"{_fmt(allocation.scores.get(agent))} | {seen} |")
    return "\n".join(lines)


# (name, type, description) of each column of the per-agent explanation; types are Dagster TableColumn types.
EXPLANATION_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("agent", "string", "Agent name."),
    ("kind", "string", "signal, watcher or execution-sensitive."),
    ("strategy", "string", "Strategy the agent's caps and capital are counted under."),
    ("status", "string", ("capped: a per-agent or strategy cap stopped it; at minimum: it won nothing beyond its "
                          "minimum (or had nothing to win); held back: the value floor withheld runs it could have "
                          "had; allocated: it won slots on the policy's ranking.")),
    ("quota", "int", "Runs this period."),
    ("min_runs", "int", "Runs it is guaranteed."),
    ("max_runs", "int", "Its per-agent cap."),
    ("slots_won", "int", "Runs won beyond its minimum."),
    ("estimate", "float", "The policy's estimate of its mean reward (empty while unknown)."),
    ("interval_low", "float", "Lower end of the estimate's 90 % interval."),
    ("interval_high", "float", "Upper end of the estimate's 90 % interval."),
    ("p_above_floor", "float", ("The policy's probability that its mean reward is above the value floor (Thompson "
                                "policies with a floor; empty otherwise), on its own rewards. Below floor_probability "
                                "(less once it has gone unrun for long) it gets no leftover slots beside agents "
                                "credibly above the floor.")),
    ("rewards_seen", "int", "Rewards the decision observed for it."),
    ("capital_usd", "float", "Capital it sizes orders with this period."),
)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    number = finite_number(value)
    return None if number is None else round(number, digits)


def explanation_rows(allocation: Allocation, agents: Mapping[str, tuple[str, str]]) -> list[dict[str, object]]:
    """One row per agent (most runs first) with the columns of ``EXPLANATION_COLUMNS``, numbers rounded."""
    rows = []
    for agent in sorted(allocation.quotas, key=lambda a: (-allocation.quotas[a], a)):
        kind, strategy = agents[agent]
        why = allocation.explanations.get(agent, {})
        rows.append({
            "agent": agent, "kind": kind, "strategy": strategy, "status": why.get("status", ""),
            "quota": int(allocation.quotas[agent]), "min_runs": why.get("min_runs"), "max_runs": why.get("max_runs"),
            "slots_won": why.get("slots_won"), "estimate": _rounded(why.get("estimate")),
            "interval_low": _rounded(why.get("low")), "interval_high": _rounded(why.get("high")),
            "p_above_floor": _rounded(why.get("p_above_floor")),
            "rewards_seen": int(allocation.stats.get(agent, {}).get("n", 0)),
            "capital_usd": round(float(allocation.capital.get(agent, 0.0)), 2),
        })
    return rows


def svg_chart(allocation: Allocation) -> str:
    """Two horizontal bar panels (runs, capital) per agent; plain SVG, no plotting library."""
    agents = sorted(allocation.quotas)
    row, label_w, bar_w = 22, 150, 220
    height = row * len(agents) + 40
    max_q = max([allocation.quotas[a] for a in agents] + [1])
    max_c = max([allocation.capital.get(a, 0.0) for a in agents] + [1.0])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + 2 * bar_w + 80}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="{label_w}" y="14" font-weight="bold">runs this period</text>',
             f'<text x="{label_w + bar_w + 40}" y="14" font-weight="bold">capital USD</text>']
    for i, agent in enumerate(agents):
        y = 24 + i * row
        q, c = allocation.quotas[agent], allocation.capital.get(agent, 0.0)
        wq, wc = bar_w * q / max_q, bar_w * c / max_c
        parts += [f'<text x="0" y="{y + 13}">{escape(agent)}</text>',
                  f'<rect x="{label_w}" y="{y}" width="{wq:.1f}" height="16" fill="#4e79a7"/>',
                  f'<text x="{label_w + wq + 3:.1f}" y="{y + 13}">{q}</text>',
                  f'<rect x="{label_w + bar_w + 40}" y="{y}" width="{wc:.1f}" height="16" fill="#59a14f"/>',
                  f'<text x="{label_w + bar_w + 43 + wc:.1f}" y="{y + 13}">{c:,.0f}</text>']
    parts.append("</svg>")
    return "".join(parts)


def chart_markdown(allocation: Allocation) -> str:
    import base64

    data = base64.b64encode(svg_chart(allocation).encode()).decode()
    return f"![quotas and capital](data:image/svg+xml;base64,{data})"
