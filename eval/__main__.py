"""`python -m python_env.eval` / `python-env-eval`: evaluate a policy on python_env tasks.

Examples:

    python -m python_env.eval --base-url http://127.0.0.1:8000 --policy reference --all \\
        --output results/
    python -m python_env.eval --policy starter --count 2 --output results/starter   # in-process
    python -m python_env.eval --base-url http://10.0.0.1:8000 --base-url http://10.0.0.2:8000 \
        --policy reference --all --concurrency 8      # episodes spread over two servers
    python -m python_env.eval --ray 10.0.0.1:6379 --policy reference --all --concurrency 8
    MODEL_NAME=Qwen/Qwen2.5-7B-Instruct HF_TOKEN=... python -m python_env.eval \\
        --base-url http://127.0.0.1:8000 --policy openai --family fix-bug --count 5

Exit status: 0 when every episode ran, 1 when some episode recorded an error or the run
stopped early, 2 for bad arguments or setup (unreachable server, unknown task, missing
API key), 3 when the mean score is below --fail-under.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .policies import POLICIES, Policy, PolicyError, make_policy
from .runner import (
    DIFFICULTIES,
    FAMILIES,
    EvalError,
    LocalSession,
    PoolSession,
    Runner,
    Session,
    check_server,
    episode_specs,
    local_catalog,
    local_grading,
    remote_catalog,
    remote_grading,
    select_tasks,
)

PROG = "python-env-eval"


_SEED_PART = re.compile(r"^(-?\d+)(?:-(-?\d+))?$")


def _seeds(text: str) -> list[int]:
    """`0,1,2` or `0-4` (inclusive) or a mix: `0-2,7`."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        match = _SEED_PART.match(part)
        if not match:
            raise argparse.ArgumentTypeError(f"invalid seed list {text!r}: use e.g. 0,1,2 or 0-4")
        lo = int(match.group(1))
        hi = int(match.group(2)) if match.group(2) is not None else lo
        if hi < lo:
            raise argparse.ArgumentTypeError(f"invalid seed range {part!r}")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise argparse.ArgumentTypeError("empty seed list")
    return list(dict.fromkeys(seeds))


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid integer {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Evaluate a policy on python_env tasks, against a server (--base-url) or an "
            "in-process environment. Writes report.json, summary.md and scores.png to "
            "--output and prints [START]/[STEP]/[END] log lines to stdout."
        ),
        epilog=(
            "The reference policy reads reference solutions from the task bank installed "
            "in this process (never from the server): use the same package version and "
            "task env vars (PYTHON_ENV_TASKS, PYTHON_ENV_HUMANEVAL) as the server. "
            "The openai policy reads API_BASE_URL, MODEL_NAME and HF_TOKEN or OPENAI_API_KEY."
        ),
    )
    where = parser.add_argument_group("environment")
    servers = where.add_mutually_exclusive_group()
    servers.add_argument(
        "--base-url",
        action="append",
        default=[],
        metavar="URL",
        help="python_env server, e.g. http://127.0.0.1:8000; repeat it to spread the "
        "episodes over several (default: run in-process)",
    )
    servers.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="a Ray cluster (e.g. 10.0.0.1:6379, or auto): use the python_env replicas "
        "running on it, or start one per node for this run (needs the ray extra)",
    )
    where.add_argument(
        "--replicas",
        type=_positive,
        metavar="N",
        help="with --ray, when none runs yet: start N replicas (default: one per node)",
    )
    where.add_argument(
        "--max-retries",
        type=int,
        default=2,
        metavar="N",
        help="replay an episode whose server was lost up to N times on another (default 2)",
    )
    parser.add_argument(
        "--policy", default="reference", choices=POLICIES, help="policy to run (default: reference)"
    )

    tasks = parser.add_argument_group("task selection")
    pick = tasks.add_mutually_exclusive_group()
    pick.add_argument("--all", action="store_true", help="every task matching the filters")
    pick.add_argument(
        "--count", type=_positive, metavar="N", help="N tasks per family (seeded sample)"
    )
    pick.add_argument(
        "--task-id",
        action="append",
        default=[],
        metavar="ID",
        help="a task by id (repeatable)",
    )
    tasks.add_argument("--family", choices=FAMILIES, help="only this family")
    tasks.add_argument("--difficulty", choices=DIFFICULTIES, help="only this difficulty")
    seeds = tasks.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=None, help="episode seed (default 0)")
    seeds.add_argument(
        "--seeds",
        type=_seeds,
        metavar="LIST",
        help="play every task once per seed: e.g. 0,1,2 or 0-4",
    )
    seeds.add_argument(
        "--samples",
        type=_positive,
        metavar="N",
        help="play every task N times (seeds 0..N-1) and report pass@k",
    )

    run = parser.add_argument_group("run")
    run.add_argument(
        "--concurrency", type=_positive, default=1, metavar="N", help="parallel episodes/sessions"
    )
    run.add_argument(
        "--output", type=Path, default=Path("results"), metavar="DIR", help="report directory"
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="keep DIR/report.json and skip episodes it already holds (task_id+seed+policy)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    run.add_argument("--quiet", action="store_true", help="no [START]/[STEP]/[END] lines")
    run.add_argument(
        "--fail-under",
        type=float,
        metavar="SCORE",
        help="exit with status 3 when the mean score is below SCORE",
    )

    llm = parser.add_argument_group("openai policy")
    llm.add_argument("--model", help="model name (default: $MODEL_NAME)")
    llm.add_argument("--api-base-url", metavar="URL", help="endpoint (default: $API_BASE_URL)")
    llm.add_argument("--temperature", type=float, help="sampling temperature (default 0.2)")
    llm.add_argument("--max-tokens", type=_positive, help="tokens per reply (default 2048)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (EvalError, PolicyError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    if not (args.all or args.count or args.task_id):
        raise EvalError("choose the tasks: --all, --count N or --task-id ID (repeatable)")
    seeds = args.seeds or [args.seed if args.seed is not None else 0]
    if args.samples:
        seeds = list(range(args.samples))

    options: dict[str, Any] = {}
    if args.policy == "openai":
        options = {
            "model": args.model,
            "base_url": args.api_base_url,
            "temperature": args.temperature,
            "max_tokens": args.max_tokens,
        }

    policy = make_policy(args.policy, **options)  # configuration errors first
    try:
        return _evaluate(args, policy, seeds)
    finally:
        policy.close()


def _evaluate(args: argparse.Namespace, policy: Policy, seeds: list[int]) -> int:
    if args.replicas and not args.ray:
        raise EvalError("--replicas starts replicas on a Ray cluster: give --ray ADDRESS too")
    if args.ray:
        from .ray_replicas import RayError, ensure_replicas

        try:
            fleet = ensure_replicas(args.ray, count=args.replicas)
        except RayError as exc:
            raise EvalError(str(exc)) from None
        try:
            nodes = {r.url: r.node_id for r in fleet.replicas}
            return _evaluate_on(args, policy, seeds, list(nodes), nodes, f"ray:{args.ray}")
        finally:
            fleet.close()
    if args.base_url:
        urls = list(dict.fromkeys(u.rstrip("/") for u in args.base_url))
        return _evaluate_on(args, policy, seeds, urls, {}, " ".join(urls))
    return _evaluate_on(args, policy, seeds, [], {}, "in-process")


def _evaluate_on(
    args: argparse.Namespace,
    policy: Policy,
    seeds: list[int],
    urls: list[str],
    nodes: Mapping[str, str | None],
    where: str,
) -> int:
    """The run against the servers `urls` (a session pool over them), or in process."""
    from ..pool import SessionPool
    from .report import write_reports

    pool: SessionPool | None = None
    if urls:
        for url in urls:
            check_server(url)
        catalog = remote_catalog(urls[0])
        grading = remote_grading(urls[0])
        for url in urls[1:]:
            if remote_grading(url) != grading:
                raise EvalError(
                    f"{url} serves another task bank or grading version than {urls[0]}: "
                    "spread episodes only over identical servers"
                )
        pool = SessionPool(urls, nodes=nodes, message_timeout_s=300.0)

        def session_factory() -> Session:
            return PoolSession(pool)

    else:
        catalog = local_catalog()
        session_factory = LocalSession
        grading = local_grading()

    chosen = select_tasks(
        catalog,
        task_ids=args.task_id,
        family=args.family,
        difficulty=args.difficulty,
        count=args.count,
        all_tasks=args.all,
        seed=seeds[0],
    )
    specs = episode_specs(chosen, seeds)
    meta = {
        "policy": policy.name,
        "model": policy.label,
        "environment": where,
        "selection": {
            "all": args.all,
            "count": args.count,
            "task_ids": args.task_id,
            "family": args.family,
            "difficulty": args.difficulty,
            "seeds": seeds,
        },
        "concurrency": args.concurrency,
        **({"replicas": [{"url": u, "node": nodes.get(u)} for u in urls]} if urls else {}),
        **grading,
    }
    runner = Runner(
        policy,
        session_factory,
        output=args.output,
        concurrency=args.concurrency,
        resume=args.resume,
        log_stream=None if args.quiet else sys.stdout,
        progress=not args.no_progress,
        meta=meta,
        max_retries=max(0, args.max_retries) if pool is not None else 0,
    )
    try:
        result = runner.run(specs)
    finally:
        if pool is not None:
            pool.close()
    write_reports(result.records, args.output)

    wanted = {(s.task_id, s.seed, policy.name) for s in specs}
    ran = [r for r in result.records if r.key in wanted]
    errors = sum(r.error is not None for r in ran)
    mean = sum(r.score for r in ran) / len(ran) if ran else 0.0
    print(
        f"{PROG}: {result.new_episodes} new episode(s), {result.skipped} already recorded; "
        f"{policy.name}: mean score {mean:.3f} over {len(ran)} episode(s), {errors} error(s); "
        f"reports in {args.output}",
        file=sys.stderr,
    )
    if result.fatal:
        print(f"{PROG}: error: {result.fatal}", file=sys.stderr)
        return 2
    if result.interrupted:
        print(f"{PROG}: interrupted; rerun with --resume to finish", file=sys.stderr)
        return 1
    if errors:
        return 1
    if args.fail_under is not None and mean < args.fail_under:
        print(
            f"{PROG}: mean score {mean:.3f} is below --fail-under {args.fail_under}",
            file=sys.stderr,
        )
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
