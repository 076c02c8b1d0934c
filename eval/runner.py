"""The evaluation runner: pick tasks, play episodes (in parallel sessions), record results.

An episode: `reset(task_id, seed)`, then the policy's agent acts until the episode is
done. Every reply of the agent is one turn of the task's step budget; a reply it could
not turn into an action is a wasted turn (nothing reaches the environment). If the
turns run out before the environment ended the episode (possible only after wasted
turns), the runner submits the current solution so that every episode is graded.

Episodes run either against servers (`PoolSession`: one WebSocket session per worker,
placed by a `SessionPool` over one or more replicas) or in this process
(`LocalSession`: one `PythonEnvironment` per worker). An episode whose replica was lost
(`ReplicaLost`) is played again from its reset, on a live replica, up to `max_retries`
times, and recorded once with its retry count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TextIO

import httpx

from ..errors import ReplicaLost, retrying
from ..models import DIFFICULTIES, FAMILIES, PythonAction, PythonObservation
from .policies import FatalPolicyError, Policy

ENV_NAME = "python_env"
REPORT_FILE = "report.json"
REPLAY_BACKOFF_S = 0.5
"""Pause before replaying an episode whose replica was lost (times the attempt)."""


class EvalError(Exception):
    """A problem with the run's setup (bad selection, unreachable server): one line, exit 2."""


# -- sessions ----------------------------------------------------------------------------


class Session(Protocol):
    def reset(self, task_id: str, seed: int) -> PythonObservation: ...

    def step(self, action: PythonAction) -> PythonObservation: ...

    def close(self) -> None: ...


class LocalSession:
    """An in-process `PythonEnvironment` (no server)."""

    def __init__(self) -> None:
        from ..server.python_env_environment import PythonEnvironment

        self._env = PythonEnvironment()

    def reset(self, task_id: str, seed: int) -> PythonObservation:
        return self._env.reset(task_id=task_id, seed=seed)

    def step(self, action: PythonAction) -> PythonObservation:
        return self._env.step(action)

    def close(self) -> None:
        self._env.close()


class RemoteSession:
    """A WebSocket session with a python_env server."""

    def __init__(self, base_url: str, message_timeout_s: float = 300.0) -> None:
        from ..client import PythonEnv

        self._client = PythonEnv(base_url=base_url, message_timeout_s=message_timeout_s)

    def reset(self, task_id: str, seed: int) -> PythonObservation:
        return self._client.reset(task_id=task_id, seed=seed).observation

    def step(self, action: PythonAction) -> PythonObservation:
        return self._client.step(action).observation

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # noqa: BLE001 - closing a broken session is best effort
            pass


class PoolSession:
    """A session of a `SessionPool`: placed on a replica at each reset, which it names
    (`replica`, `node`) for the episode's record."""

    def __init__(self, pool: Any) -> None:
        self._env = pool.session()

    @property
    def replica(self) -> str | None:
        return self._env.replica

    @property
    def node(self) -> str | None:
        return self._env.node

    def reset(self, task_id: str, seed: int) -> PythonObservation:
        return self._env.reset(task_id=task_id, seed=seed).observation

    def step(self, action: PythonAction) -> PythonObservation:
        return self._env.step(action).observation

    def close(self) -> None:
        try:
            self._env.close()
        except Exception:  # noqa: BLE001 - closing a broken session is best effort
            pass


def check_server(base_url: str, timeout_s: float = 10.0) -> None:
    """Raise `EvalError` unless `base_url` answers `/health`."""
    url = base_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise EvalError(f"--base-url must start with http:// or https://, got {base_url!r}")
    try:
        response = httpx.get(f"{url}/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise EvalError(f"cannot reach the python_env server at {url}: {_one_line(exc)}") from None
    if response.status_code != 200:
        raise EvalError(
            f"{url}/health answered HTTP {response.status_code}: is it a python_env server?"
        )


def _get_json(base_url: str, path: str, failing: str, timeout_s: float) -> Any:
    """GET a route of the server as JSON; an EvalError saying what `failing` was if not."""
    url = f"{base_url.rstrip('/')}{path}"
    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise EvalError(f"cannot {failing} at {url}: {_one_line(exc)}") from None


def remote_catalog(base_url: str, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """The server's task listing (`GET /tasks`): id, family, difficulty, title."""
    tasks = _get_json(base_url, "/tasks", "list tasks", timeout_s)
    return [t for t in tasks if isinstance(t, dict) and "id" in t]


def remote_grading(base_url: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The server's grading version and bank hash (`GET /metadata`), for report.json."""
    data = _get_json(base_url, "/metadata", "read the metadata", timeout_s)
    return {k: data.get(k) for k in ("grading_version", "bank_hash")}


def local_grading() -> dict[str, Any]:
    """The grading version and bank hash of this process's bank."""
    from ..server.grading import GRADING_VERSION
    from ..server.runtime import served_bank

    return {"grading_version": GRADING_VERSION, "bank_hash": served_bank().digest()}


def local_catalog() -> list[dict[str, Any]]:
    """The task listing of the bank in this process."""
    from ..server.runtime import served_bank

    return served_bank().summaries()


# -- selecting episodes ------------------------------------------------------------------


@dataclass(frozen=True)
class EpisodeSpec:
    task_id: str
    family: str
    difficulty: str
    seed: int


def select_tasks(
    catalog: Sequence[dict[str, Any]],
    *,
    task_ids: Sequence[str] = (),
    family: str | None = None,
    difficulty: str | None = None,
    count: int | None = None,
    all_tasks: bool = False,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The tasks to play, in catalog order.

    `task_ids` names tasks; `all_tasks` takes every task matching the family/difficulty
    filters; `count` takes that many per family (a seeded sample, spread over the
    difficulties). Raises `EvalError` for unknown ids or an empty selection.
    """
    if family is not None and family not in FAMILIES:
        raise EvalError(f"unknown family {family!r}: expected one of {', '.join(FAMILIES)}")
    if difficulty is not None and difficulty not in DIFFICULTIES:
        raise EvalError(
            f"unknown difficulty {difficulty!r}: expected one of {', '.join(DIFFICULTIES)}"
        )
    by_id = {t["id"]: t for t in catalog}
    if task_ids:
        unknown = [t for t in task_ids if t not in by_id]
        if unknown:
            raise EvalError(
                f"unknown task id {unknown[0]!r} ({len(by_id)} tasks available; "
                "list them with GET /tasks)"
            )
        chosen = [by_id[t] for t in dict.fromkeys(task_ids)]
        mismatch = [
            t["id"]
            for t in chosen
            if (family and t["family"] != family) or (difficulty and t["difficulty"] != difficulty)
        ]
        if mismatch:
            raise EvalError(f"task {mismatch[0]!r} does not match --family/--difficulty")
        return chosen
    pool = [
        t
        for t in catalog
        if (family is None or t["family"] == family)
        and (difficulty is None or t["difficulty"] == difficulty)
    ]
    if not pool:
        raise EvalError(f"no task matches family={family!r} difficulty={difficulty!r}")
    if all_tasks:
        return pool
    if count is None:
        raise EvalError("choose the tasks: --all, --count N or --task-id ID")
    if count < 1:
        raise EvalError("--count must be at least 1")
    rng = random.Random(seed)
    picked: set[str] = set()
    for k, fam in enumerate(FAMILIES):
        # Round-robin over the difficulties (each lane shuffled by the seed), starting at a
        # different difficulty per family so that small counts still cover all of them.
        lanes = []
        for diff in DIFFICULTIES:
            lane = sorted(t["id"] for t in pool if t["family"] == fam and t["difficulty"] == diff)
            rng.shuffle(lane)
            lanes.append(lane)
        shift = (k + seed) % len(lanes)
        lanes = lanes[shift:] + lanes[:shift]
        taken = 0
        while taken < count and any(lanes):
            for lane in lanes:
                if lane and taken < count:
                    picked.add(lane.pop(0))
                    taken += 1
    return [t for t in pool if t["id"] in picked]


def episode_specs(tasks: Iterable[dict[str, Any]], seeds: Sequence[int]) -> list[EpisodeSpec]:
    return [
        EpisodeSpec(t["id"], str(t.get("family", "")), str(t.get("difficulty", "")), s)
        for t in tasks
        for s in seeds
    ]


# -- records and logs --------------------------------------------------------------------


@dataclass
class EpisodeRecord:
    """One played episode, as written to report.json."""

    task_id: str
    family: str
    difficulty: str
    policy: str
    model: str
    seed: int
    score: float = 0.0
    reward: float = 0.0
    steps: int = 0
    passed: bool = False
    error: str | None = None
    rewards: list[float] = field(default_factory=list)
    wasted_steps: int = 0
    cases_passed: int = 0
    cases_total: int = 0
    feedback: str = ""
    wall_s: float = 0.0
    replica: str | None = None
    """The server (URL) that played it; None in process."""
    node: str | None = None
    """That server's Ray node id, when on Ray."""
    retries: int = 0
    """Times it was replayed from its reset after its replica was lost."""

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.task_id, self.seed, self.policy)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EpisodeRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class EpisodeLog:
    """The OpenEnv hackathon baseline log lines of one episode ([START]/[STEP]/[END]).

    Lines go to `stream` at once (`live`), or are held and written together at the end
    so that episodes running in parallel do not interleave.
    """

    def __init__(self, stream: TextIO | None, lock: threading.Lock, live: bool) -> None:
        self._stream = stream
        self._lock = lock
        self._live = live
        self._held: list[str] = []

    def start(self, task: str, model: str) -> None:
        self._emit(f"[START] task={task} env={ENV_NAME} model={model}")

    def step(self, step: int, action: str, reward: float, done: bool, error: str | None) -> None:
        self._emit(
            f"[STEP] step={step} action={action} reward={reward:.2f} "
            f"done={str(done).lower()} error={_one_line(error) if error else 'null'}"
        )

    def end(self, success: bool, steps: int, score: float, rewards: Sequence[float]) -> None:
        rewards_text = ",".join(f"{r:.2f}" for r in rewards)
        self._emit(
            f"[END] success={str(success).lower()} steps={steps} score={score:.3f} "
            f"rewards={rewards_text}"
        )
        self.flush()

    def _emit(self, line: str) -> None:
        if self._stream is None:
            return
        if self._live:
            with self._lock:
                print(line, file=self._stream, flush=True)
        else:
            self._held.append(line)

    def flush(self) -> None:
        if self._stream is not None and self._held:
            with self._lock:
                print("\n".join(self._held), file=self._stream, flush=True)
            self._held.clear()


def play_episode(
    session: Session, policy: Policy, spec: EpisodeSpec, log: EpisodeLog, max_retries: int = 0
) -> EpisodeRecord:
    """Play one episode; environment or policy failures become `record.error`.

    An episode whose replica was lost (`ReplicaLost`: its steps there are gone, and a
    step in flight is never resent) is played again from its reset, with a fresh agent,
    up to `max_retries` times; each attempt logs its own [START]..[END] lines, the record
    is the last attempt's with its `retries`. `FatalPolicyError` propagates (after the
    [END] line): the run should stop.
    """
    attempt = 0
    while True:
        record, lost = _attempt(session, policy, spec, log)
        record.retries = attempt
        if not lost or attempt >= max_retries:
            return record
        attempt += 1
        time.sleep(REPLAY_BACKOFF_S * attempt)  # a replica restarting, or every one down


def _attempt(
    session: Session, policy: Policy, spec: EpisodeSpec, log: EpisodeLog
) -> tuple[EpisodeRecord, bool]:
    """One attempt at an episode, and whether it ended because its replica was lost."""
    lost = False
    record = EpisodeRecord(
        task_id=spec.task_id,
        family=spec.family,
        difficulty=spec.difficulty,
        policy=policy.name,
        model=policy.label,
        seed=spec.seed,
    )
    started = time.monotonic()
    log.start(spec.task_id, policy.label)
    try:
        obs = session.reset(spec.task_id, spec.seed)
        record.replica = getattr(session, "replica", None)
        record.node = getattr(session, "node", None)
        task = obs.task
        if task is None:
            raise RuntimeError(f"reset(task_id={spec.task_id!r}) started no task")
        record.family, record.difficulty = task.family, task.difficulty
        agent = policy.start(task, spec.seed)
        budget = max(1, obs.max_steps or task.max_steps)
        pending: PythonObservation | None = obs
        done = obs.done
        while not done:
            turn = record.steps + 1
            if turn > budget:  # only after wasted turns: grade what there is
                action: PythonAction | None = PythonAction(kind="submit")
                error = None
            else:
                decision = agent.act(pending, turns_left=budget - record.steps)
                action, error = decision.action, decision.error
            record.steps = turn
            if action is None:
                record.wasted_steps += 1
                record.rewards.append(0.0)
                log.step(turn, "invalid", 0.0, False, error or "no action")
                pending = None
                continue
            # SANDBOX_UNAVAILABLE is retried, then raised: the episode is an error, not a 0
            obs = retrying(partial(session.step, action))
            reward = float(obs.reward or 0.0)
            record.rewards.append(reward)
            done = bool(obs.done)
            log.step(turn, action.kind, reward, done, None)
            if obs.grade is not None:
                record.score = obs.grade.score
                record.passed = obs.grade.passed
                record.cases_passed = obs.grade.cases_passed
                record.cases_total = obs.grade.cases_total
                record.feedback = obs.grade.feedback
            pending = obs
    except FatalPolicyError as exc:
        record.error = _one_line(exc)
        raise
    except ReplicaLost as exc:
        record.error = _one_line(exc)
        lost = True
    except Exception as exc:  # noqa: BLE001 - one episode's failure must not end the run
        record.error = _one_line(exc) or type(exc).__name__
    finally:
        record.reward = round(sum(record.rewards), 6)
        record.wall_s = round(time.monotonic() - started, 3)
        log.end(record.passed and record.error is None, record.steps, record.score, record.rewards)
    return record, lost


# -- the run -----------------------------------------------------------------------------


@dataclass
class RunResult:
    records: list[EpisodeRecord]
    new_episodes: int
    skipped: int
    fatal: str | None = None
    interrupted: bool = False


def load_records(path: Path) -> list[EpisodeRecord]:
    """Episodes recorded in an existing report.json (empty when there is none)."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text())
        episodes = data["episodes"] if isinstance(data, dict) else data
        return [EpisodeRecord.from_json(e) for e in episodes]
    except (ValueError, KeyError, TypeError) as exc:
        raise EvalError(f"cannot resume: {path} is not a report.json ({_one_line(exc)})") from None


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


class Runner:
    """Plays episode specs with `concurrency` parallel sessions and keeps report.json current."""

    def __init__(
        self,
        policy: Policy,
        session_factory: Callable[[], Session],
        *,
        output: Path,
        concurrency: int = 1,
        resume: bool = False,
        log_stream: TextIO | None = sys.stdout,
        progress: bool = True,
        meta: dict[str, Any] | None = None,
        max_retries: int = 0,
    ) -> None:
        self.policy = policy
        self.max_retries = max(0, max_retries)
        self.session_factory = session_factory
        self.output = Path(output)
        self.concurrency = max(1, concurrency)
        self.resume = resume
        self.log_stream = log_stream
        self.progress = progress
        self.meta = dict(meta or {})
        self._lock = threading.Lock()
        self._log_lock = threading.Lock()
        self._sessions: queue.LifoQueue[Session] = queue.LifoQueue()
        self._all_sessions: list[Session] = []
        self._stop = threading.Event()

    @property
    def report_path(self) -> Path:
        return self.output / REPORT_FILE

    def run(self, specs: Sequence[EpisodeSpec]) -> RunResult:
        self.output.mkdir(parents=True, exist_ok=True)
        previous = load_records(self.report_path) if self.resume else []
        done_keys = {r.key for r in previous if r.error is None}
        todo = [s for s in specs if (s.task_id, s.seed, self.policy.name) not in done_keys]
        todo_keys = {(s.task_id, s.seed, self.policy.name) for s in todo}
        # Keep every earlier record except those about to be replayed (errored ones).
        kept = [r for r in previous if r.key not in todo_keys]
        self._records: list[EpisodeRecord] = list(kept)
        result = RunResult(self._records, 0, len(specs) - len(todo))
        self._save()
        bar = _progress_bar(len(todo), self.progress, desc=self.policy.label)
        live = self.concurrency == 1
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="episode") as pool:
                futures: set[Future[EpisodeRecord | None]] = set()
                pending = list(todo)
                try:
                    while pending or futures:
                        while (
                            pending
                            and len(futures) < self.concurrency * 2
                            and not self._stop.is_set()
                        ):
                            futures.add(pool.submit(self._play, pending.pop(0), live))
                        if not futures:
                            break
                        finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                        for future in finished:
                            try:
                                record = future.result()
                            except FatalPolicyError as exc:
                                result.fatal = result.fatal or _one_line(exc)
                                self._stop.set()
                                continue
                            if record is not None and bar is not None:
                                bar.update(1)
                        if self._stop.is_set():
                            pending.clear()
                except KeyboardInterrupt:
                    result.interrupted = True
                    self._stop.set()
                    pending.clear()
                    for future in futures:
                        future.cancel()
                    raise
        except KeyboardInterrupt:
            pass
        finally:
            if bar is not None:
                bar.close()
            for session in self._all_sessions:
                session.close()
            self._save()
        result.new_episodes = len(self._records) - len(kept)
        return result

    def _play(self, spec: EpisodeSpec, live: bool) -> EpisodeRecord | None:
        if self._stop.is_set():
            return None
        try:
            session = self._sessions.get_nowait()
        except queue.Empty:
            session = self.session_factory()
            with self._lock:
                self._all_sessions.append(session)
        log = EpisodeLog(self.log_stream, self._log_lock, live)
        broken = False
        try:
            record = play_episode(session, self.policy, spec, log, self.max_retries)
            broken = record.error is not None
        except FatalPolicyError:
            self._stop.set()  # before this worker (or another) picks up the next episode
            self._sessions.put(session)
            raise
        if broken:  # a session that failed mid-episode may be desynchronised: replace it
            session.close()
            with self._lock:
                self._all_sessions.remove(session)
        else:
            self._sessions.put(session)
        with self._lock:
            self._records.append(record)
            self._save_locked()
        return record

    def _save(self) -> None:
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        from .report import report_document

        write_json_atomic(self.report_path, report_document(self._records, self.meta))


def _progress_bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled or total == 0:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="episode", file=sys.stderr, dynamic_ncols=True)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
