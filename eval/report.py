"""Reports of a run: report.json (every episode), summary.md (tables), scores.png (a chart)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path
from statistics import fmean
from typing import Any, Protocol

from ..models import DIFFICULTIES, FAMILIES


class EpisodeRecord(Protocol):
    """What a report reads of an episode (the runner's `EpisodeRecord`); a protocol, so
    this module does not import the runner that imports it."""

    task_id: str
    family: str
    difficulty: str
    policy: str
    model: str
    seed: int
    score: float
    reward: float
    passed: bool
    error: str | None

    def to_json(self) -> dict[str, Any]: ...


REPORT_VERSION = 2
PASS_AT = (1, 5, 10, 100)
"""The k of pass@k reported, where every task has at least k samples."""


def pass_at_k(n: int, c: int, k: int) -> float:
    """The unbiased pass@k estimator of Chen et al. (2021) for one task: n samples, c of
    them passed: 1 - C(n - c, k) / C(n, k), computed as a stable product."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@{k} needs 0 <= c <= n and 1 <= k <= n (n={n}, c={c})")
    if n - c < k:
        return 1.0
    result = 1.0
    for i in range(n - c + 1, n + 1):
        result *= 1.0 - k / i
    return 1.0 - result


def pass_at(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """pass@k over tasks (the mean of the per-task estimates), for every k in PASS_AT
    that every task reaches. Episodes that errored are not samples (an infrastructure
    fault is not a failed attempt)."""
    samples: dict[str, list[bool]] = {}
    for r in records:
        if r.error is None:
            samples.setdefault(r.task_id, []).append(bool(r.passed))
    if not samples:
        return {"tasks": 0, "samples_per_task": 0}
    n_min = min(len(v) for v in samples.values())
    out: dict[str, Any] = {"tasks": len(samples), "samples_per_task": n_min}
    for k in PASS_AT:
        if k <= n_min:
            estimates = [pass_at_k(len(v), sum(v), k) for v in samples.values()]
            out[f"pass@{k}"] = round(fmean(estimates), 6)
    return out


def _stats(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    if not records:
        return {
            "episodes": 0,
            "mean_score": None,
            "pass_rate": None,
            "mean_reward": None,
            "errors": 0,
        }
    # An errored episode (an infrastructure fault, a lost session) has no score: it is
    # counted under "errors", never averaged in as a 0.
    scored = [r for r in records if r.error is None]
    return {
        "episodes": len(records),
        "mean_score": round(fmean(r.score for r in scored), 4) if scored else None,
        "pass_rate": round(sum(r.passed for r in scored) / len(scored), 4) if scored else None,
        "mean_reward": round(fmean(r.reward for r in scored), 4) if scored else None,
        "errors": len(records) - len(scored),
    }


def summarize(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """Per policy: overall figures and a family x difficulty grid."""
    out: dict[str, Any] = {}
    for policy in sorted({r.policy for r in records}):
        mine = [r for r in records if r.policy == policy]
        grid: dict[str, dict[str, Any]] = {}
        for family in _present(FAMILIES, {r.family for r in mine}):
            row = {}
            for difficulty in _present(DIFFICULTIES, {r.difficulty for r in mine}):
                cell = [r for r in mine if r.family == family and r.difficulty == difficulty]
                row[difficulty] = _stats(cell)
            row["all"] = _stats([r for r in mine if r.family == family])
            grid[family] = row
        out[policy] = {
            "models": sorted({r.model for r in mine}),
            "overall": _stats(mine),
            "pass_at_k": pass_at(mine),
            "by_difficulty": {
                d: _stats([r for r in mine if r.difficulty == d])
                for d in _present(DIFFICULTIES, {r.difficulty for r in mine})
            },
            "by_family_difficulty": grid,
        }
    return out


def by_replica(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    """Per server (URL) that played episodes: its Ray node, the episodes recorded on it
    and how many of them were replays after another server was lost."""
    out: dict[str, Any] = {}
    for r in records:
        url = getattr(r, "replica", None)
        if url is None:
            continue
        row = out.setdefault(url, {"node": getattr(r, "node", None), "episodes": 0, "retried": 0})
        row["episodes"] += 1
        row["retried"] += bool(getattr(r, "retries", 0))
    return dict(sorted(out.items()))


def report_document(records: Sequence[EpisodeRecord], meta: dict[str, Any]) -> dict[str, Any]:
    """The content of report.json."""
    ordered = sorted(records, key=lambda r: (r.policy, r.family, r.difficulty, r.task_id, r.seed))
    document = {
        "version": REPORT_VERSION,
        "env": "python_env",
        "grading_version": meta.get("grading_version"),
        "bank_hash": meta.get("bank_hash"),
        "updated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "run": meta,
        "summary": summarize(ordered),
        "episodes": [r.to_json() for r in ordered],
    }
    replicas = by_replica(ordered)
    if replicas:
        document["replicas"] = replicas
    return document


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def summary_markdown(records: Sequence[EpisodeRecord]) -> str:
    """summary.md: overall mean score and pass rate, then a family x difficulty table."""
    lines = ["# python_env evaluation", ""]
    if not records:
        return "\n".join([*lines, "No episodes were recorded.", ""])
    for policy, data in summarize(records).items():
        overall = data["overall"]
        models = ", ".join(data["models"])
        title = policy if models in ("", policy) else f"{policy} ({models})"
        lines += [
            f"## Policy: {title}",
            "",
            f"- Episodes: {overall['episodes']}",
            f"- Mean score: {_num(overall['mean_score'])}",
            f"- Pass rate: {_pct(overall['pass_rate'])}",
            f"- Mean episode reward: {_num(overall['mean_reward'])}",
            f"- Errors: {overall['errors']}",
            f"- {_pass_line(data['pass_at_k'])}",
            "",
            "Mean score (pass rate, episodes) by family and difficulty:",
            "",
        ]
        grid = data["by_family_difficulty"]
        columns = [d for d in DIFFICULTIES if any(d in row for row in grid.values())]
        lines.append("| family | " + " | ".join([*columns, "all"]) + " |")
        lines.append("|---|" + "---|" * (len(columns) + 1))
        for family, row in grid.items():
            cells = [_cell(row.get(d)) for d in [*columns, "all"]]
            lines.append(f"| {family} | " + " | ".join(cells) + " |")
        totals = [_cell(data["by_difficulty"].get(d)) for d in columns] + [_cell(overall)]
        lines.append("| **all** | " + " | ".join(totals) + " |")
        lines.append("")
        errored = [r for r in records if r.policy == policy and r.error]
        if errored:
            lines += ["Episodes with errors:", ""]
            lines += [f"- `{r.task_id}` (seed {r.seed}): {r.error}" for r in errored[:50]]
            if len(errored) > 50:
                lines.append(f"- ... and {len(errored) - 50} more (see report.json)")
            lines.append("")
    return "\n".join(lines)


def _pass_line(p: dict[str, Any]) -> str:
    ks = [key for key in p if key.startswith("pass@")]
    figures = ", ".join(f"{key} {_pct(p[key])}" for key in ks) or "-"
    return f"pass@k (unbiased, {p['samples_per_task']} sample(s) per task): {figures}"


def _cell(stats: dict[str, Any] | None) -> str:
    if not stats or not stats["episodes"]:
        return "-"
    if stats["mean_score"] is None:  # every episode errored
        return f"- ({stats['errors']} errors)"
    return f"{stats['mean_score']:.3f} ({_pct(stats['pass_rate'])}, n={stats['episodes']})"


def write_chart(records: Sequence[EpisodeRecord], path: Path) -> bool:
    """scores.png: mean score by family, one bar per difficulty, one panel per policy.

    Returns False (and writes nothing) when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    summary = summarize(records)
    policies = list(summary) or ["(none)"]
    fig, axes = plt.subplots(
        len(policies), 1, figsize=(9, 3.6 * len(policies)), squeeze=False, constrained_layout=True
    )
    colors = {"easy": "#4caf50", "medium": "#ff9800", "hard": "#e53935"}
    for ax, policy in zip(axes[:, 0], policies, strict=True):
        grid = summary.get(policy, {}).get("by_family_difficulty", {})
        families = list(grid)
        present = [d for d in DIFFICULTIES if any(d in row for row in grid.values())]
        width = 0.8 / max(1, len(present))
        for i, difficulty in enumerate(present):
            xs, heights = [], []
            for j, family in enumerate(families):
                stats = grid[family].get(difficulty)
                if stats and stats["mean_score"] is not None:
                    xs.append(j + (i - (len(present) - 1) / 2) * width)
                    heights.append(stats["mean_score"])
            bars = ax.bar(xs, heights, width, label=difficulty, color=colors.get(difficulty))
            ax.bar_label(bars, labels=[f"{h:.2f}" for h in heights], fontsize="x-small")
        ax.set_xticks(range(len(families)))
        ax.set_xticklabels(families)
        ax.set_xlim(-0.5, max(1, len(families)) - 0.5)
        ax.set_ylim(0, 1.12)
        ax.set_ylabel("mean score")
        overall = summary.get(policy, {}).get("overall", {})
        mean = overall.get("mean_score")
        ax.set_title(
            f"python_env - {policy}"
            + (
                f": mean score {mean:.3f}, pass rate {_pct(overall.get('pass_rate'))}"
                if mean is not None
                else ""
            )
        )
        if present:
            ax.legend(
                title="difficulty", loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small"
            )
        ax.grid(axis="y", alpha=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_reports(records: Sequence[EpisodeRecord], output: Path) -> list[Path]:
    """Write summary.md and scores.png next to report.json; return the files written."""
    written = []
    summary_path = output / "summary.md"
    summary_path.write_text(summary_markdown(records))
    written.append(summary_path)
    chart = output / "scores.png"
    if write_chart(records, chart):
        written.append(chart)
    return written


def _present(order: Sequence[str], seen: set[str]) -> list[str]:
    """`order` filtered to what was seen, then anything unexpected, sorted."""
    return [x for x in order if x in seen] + sorted(seen - set(order))
