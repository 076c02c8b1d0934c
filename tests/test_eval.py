"""The evaluation runner (`python -m python_env.eval`) end to end, against the real server,
in-process, and with the openai policy talking HTTP to a scripted OpenAI-compatible server."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from python_env.eval import parse_reply, select_tasks
from python_env.eval.__main__ import _seeds, main
from python_env.eval.prompts import ReplyError
from python_env.eval.runner import EvalError
from python_env.server.launcher import free_port

START = re.compile(r"^\[START\] task=(\S+) env=python_env model=(\S+)$")
STEP = re.compile(
    r"^\[STEP\] step=(\d+) action=(run|edit|test|submit|invalid) reward=(-?\d+\.\d\d) "
    r"done=(true|false) error=(.+)$"
)
END = re.compile(
    r"^\[END\] success=(true|false) steps=(\d+) score=(\d\.\d\d\d) rewards=((-?\d+\.\d\d)(,-?\d+\.\d\d)*)?$"
)
EPISODE_FIELDS = {
    "task_id",
    "family",
    "difficulty",
    "score",
    "reward",
    "steps",
    "passed",
    "error",
    "policy",
    "seed",
}


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "python_env.eval", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_inline(monkeypatch, capsys, *args: str, env: dict[str, str] | None = None):
    """`main(args)` in this process (faster than a subprocess), with `env` applied."""
    for key, value in (env or {}).items():
        if value:
            monkeypatch.setenv(key, value)
        else:
            monkeypatch.delenv(key, raising=False)
    code = main(list(args))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, captured.out, captured.err)


def log_blocks(stdout: str) -> list[list[str]]:
    """The [START]..[END] blocks of the log, checking every line's exact format."""
    blocks: list[list[str]] = []
    for line in stdout.splitlines():
        if line.startswith("[START]"):
            assert START.match(line), line
            blocks.append([line])
        elif line.startswith("[STEP]"):
            assert STEP.match(line), line
            blocks[-1].append(line)
        elif line.startswith("[END]"):
            assert END.match(line), line
            blocks[-1].append(line)
    for block in blocks:
        assert block[0].startswith("[START]") and block[-1].startswith("[END]")
        steps = [b for b in block if b.startswith("[STEP]")]
        assert [int(STEP.match(s).group(1)) for s in steps] == list(range(1, len(steps) + 1))
        assert int(END.match(block[-1]).group(2)) == len(steps)
    return blocks


def read_report(out: Path) -> dict[str, Any]:
    data = json.loads((out / "report.json").read_text())
    for episode in data["episodes"]:
        assert EPISODE_FIELDS <= set(episode), episode
        assert 0.0 <= episode["score"] <= 1.0
        assert episode["steps"] >= 1 or episode["error"]
    return data


@pytest.fixture(scope="module")
def catalog(server) -> list[dict[str, Any]]:
    return httpx.get(f"{server.url}/tasks", timeout=60).json()


# -- parsing, selection, arguments (no server) ---------------------------------------------


def test_parse_reply_accepts_the_documented_forms():
    assert parse_reply('```json\n{"action": "test"}\n```').kind == "test"
    edit = parse_reply(
        'Plan.\n```json\n{"action": "edit"}\n```\n```python\ndef f():\n    return 1\n```'
    )
    assert edit.kind == "edit" and edit.code == "def f():\n    return 1\n"
    assert parse_reply("```python\nprint(1)\n```").kind == "edit"
    run = parse_reply('{"action": "run", "code": "print(2)", "stdin": "x"}')
    assert (run.kind, run.code, run.stdin) == ("run", "print(2)", "x")
    review = parse_reply(
        '```json\n{"action": "submit", "findings": [{"line": 3, "category": "off-by-one"}]}\n```'
    )
    assert review.kind == "submit" and review.findings[0].line == 3


@pytest.mark.parametrize(
    "reply, reason",
    [
        ("I would fix the loop.", "no ```json"),
        ('```json\n{"action": "test",}\n```', "invalid JSON"),
        ('```json\n["test"]\n```', "object"),
        ('```json\n{"action": "explode"}\n```', "must be one of"),
        ('```json\n{"action": "edit"}\n```', "needs code"),
        (
            '```json\n{"action": "submit", "findings": [{"line": 0, "category": "x"}]}\n```',
            "bad finding",
        ),
        ('```json\n{"action": "run", "code": 5}\n```', "'code' must be a string"),
        ("", "no ```json"),
    ],
)
def test_parse_reply_rejects_malformed_output_with_a_reason(reply, reason):
    with pytest.raises(ReplyError, match=re.escape(reason)):
        parse_reply(reply)


def test_select_tasks_count_is_per_family_and_seeded():
    cat = [
        {"id": f"{f}-{d}-{i}", "family": f, "difficulty": d}
        for f in ("implement", "fix-bug")
        for d in ("easy", "medium", "hard")
        for i in range(3)
    ]
    picked = select_tasks(cat, count=3, seed=1)
    assert len(picked) == 6
    for family in ("implement", "fix-bug"):
        mine = [t for t in picked if t["family"] == family]
        assert {t["difficulty"] for t in mine} == {"easy", "medium", "hard"}
    assert picked == select_tasks(cat, count=3, seed=1)
    assert select_tasks(cat, all_tasks=True, family="fix-bug", difficulty="hard") == cat[15:]
    with pytest.raises(EvalError, match="unknown task id 'nope'"):
        select_tasks(cat, task_ids=["nope"])
    with pytest.raises(EvalError, match="does not match"):
        select_tasks(cat, task_ids=["implement-easy-0"], family="fix-bug")
    with pytest.raises(EvalError, match="no task matches"):
        select_tasks(cat, family="review", all_tasks=True)


def test_seed_lists():
    assert _seeds("0,1,2") == [0, 1, 2]
    assert _seeds("0-3,7,2") == [0, 1, 2, 3, 7]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--policy", "nope", "--all"], "argument --policy: invalid choice: 'nope'"),
        (["--family", "poetry", "--all"], "argument --family: invalid choice: 'poetry'"),
        (["--count", "0"], "argument --count: must be at least 1"),
        (["--all", "--count", "2"], "not allowed with argument"),
        (["--seeds", "x", "--all"], "invalid seed list"),
        ([], "choose the tasks"),
        (["--task-id", "no-such-task"], "unknown task id 'no-such-task'"),
        (["--policy", "openai", "--all"], "needs an API key: set HF_TOKEN or OPENAI_API_KEY"),
    ],
)
def test_bad_arguments_fail_with_one_clear_line(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    try:
        code = main([*args, "--output", str(tmp_path)])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert err.strip().splitlines()[-1].startswith("python-env-eval: error:")
    assert not (tmp_path / "report.json").exists()


def test_errors_in_a_real_process_have_no_traceback(tmp_path):
    done = run_cli("--policy", "openai", "--all", env={"HF_TOKEN": "", "OPENAI_API_KEY": ""})
    assert done.returncode == 2
    assert done.stderr == (
        "python-env-eval: error: the openai policy needs an API key: set HF_TOKEN or OPENAI_API_KEY\n"
    )


def test_unreachable_server_is_one_line(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["--base-url", url, "--all", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python-env-eval: error: cannot reach the python_env server at {url}: ")
    assert err.count("\n") == 1
    assert not (tmp_path / "report.json").exists()


# -- against the real server ---------------------------------------------------------------


def test_reference_scores_one_on_every_family(server, catalog, tmp_path, capsys):
    out = tmp_path / "ref"
    code = main(
        [
            "--base-url", server.url, "--policy", "reference", "--count", "2",
            "--concurrency", "2", "--output", str(out), "--no-progress", "--fail-under", "1.0",
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    families = {t["family"] for t in catalog}
    data = read_report(out)
    episodes = data["episodes"]
    assert {e["family"] for e in episodes} == families
    assert len(episodes) == sum(min(2, sum(t["family"] == f for t in catalog)) for f in families)
    for e in episodes:
        assert e["error"] is None, e
        assert e["score"] == 1.0 and e["passed"], e
        assert e["reward"] == pytest.approx(1.0), e
        assert e["policy"] == "reference" and e["seed"] == 0
    assert data["summary"]["reference"]["overall"]["mean_score"] == 1.0

    blocks = log_blocks(captured.out)
    assert sorted(START.match(b[0]).group(1) for b in blocks) == sorted(
        e["task_id"] for e in episodes
    )
    for block in blocks:  # concurrent episodes still print contiguous blocks
        assert START.match(block[0]).group(2) == "reference"
        assert block[-1].startswith("[END] success=true") and "score=1.000" in block[-1]

    summary = (out / "summary.md").read_text()
    assert "Mean score: 1.000" in summary and "Pass rate: 100.0%" in summary
    assert "| family | " in summary and "|---|" in summary
    for family in families:
        assert re.search(rf"^\| {re.escape(family)} \| ", summary, re.M)
    png = (out / "scores.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000


def test_starter_scores_below_threshold(server, catalog, tmp_path, capsys):
    out = tmp_path / "starter"
    code = main(
        ["--base-url", server.url, "--policy", "starter", "--count", "1", "--output", str(out),
         "--no-progress", "--fail-under", "0.99"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 3, captured.err
    assert "below --fail-under" in captured.err
    episodes = read_report(out)["episodes"]
    assert episodes and all(e["error"] is None for e in episodes)
    assert all(not e["passed"] and e["score"] < 1.0 and e["steps"] == 1 for e in episodes)
    for block in log_blocks(captured.out):
        assert block[1].startswith("[STEP] step=1 action=submit ")
        assert "done=true error=null" in block[1]
        assert block[-1].startswith("[END] success=false steps=1 ")


def test_resume_skips_recorded_episodes_and_replays_errors(server, catalog, tmp_path, capsys):
    out = tmp_path / "resume"
    ids = [t["id"] for t in catalog[:3]]
    args = [
        "--base-url",
        server.url,
        "--policy",
        "reference",
        "--output",
        str(out),
        "--no-progress",
    ]
    assert main([*args, "--task-id", ids[0], "--task-id", ids[1]]) == 0
    first = read_report(out)["episodes"]
    capsys.readouterr()

    # Mark one recorded episode as errored: a resumed run must replay it.
    data = json.loads((out / "report.json").read_text())
    data["episodes"][0]["error"] = "connection lost"
    data["episodes"][0]["score"] = 0.0
    (out / "report.json").write_text(json.dumps(data))
    errored = data["episodes"][0]["task_id"]

    assert main([*args, "--resume", *(f"--task-id={i}" for i in ids)]) == 0
    captured = capsys.readouterr()
    played = [START.match(b[0]).group(1) for b in log_blocks(captured.out)]
    assert sorted(played) == sorted([errored, ids[2]])
    assert "2 new episode(s), 1 already recorded" in captured.err
    episodes = read_report(out)["episodes"]
    assert sorted(e["task_id"] for e in episodes) == sorted(ids)
    assert all(e["error"] is None and e["score"] == 1.0 for e in episodes)

    # Everything recorded now: nothing new to play.
    assert main([*args, "--resume", *(f"--task-id={i}" for i in ids)]) == 0
    captured = capsys.readouterr()
    assert "[START]" not in captured.out
    assert "0 new episode(s), 3 already recorded" in captured.err
    assert len(read_report(out)["episodes"]) == 3
    assert {e["task_id"] for e in first} <= {e["task_id"] for e in episodes}


def test_in_process_mode(tmp_path, bank):
    task = next(t for t in bank if t.family == "fix-syntax")
    out = tmp_path / "local"
    done = run_cli(
        "--policy", "reference", "--task-id", task.id, "--seeds", "0,1",
        "--output", str(out), "--no-progress",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    episodes = read_report(out)["episodes"]
    assert [(e["task_id"], e["seed"], e["score"]) for e in episodes] == [
        (task.id, 0, 1.0),
        (task.id, 1, 1.0),
    ]
    assert json.loads((out / "report.json").read_text())["run"]["environment"] == "in-process"
    assert len(log_blocks(done.stdout)) == 2


# -- the openai policy over HTTP -----------------------------------------------------------


class FakeOpenAI:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 replying from a script.

    The reply depends on how many assistant turns the request already holds, so several
    episodes can run at once. Every request is recorded.
    """

    def __init__(self, script: list[str], status: int = 200) -> None:
        self.script = script
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(body)
                fake.headers.append({k.lower(): v for k, v in self.headers.items()})
                if not self.path.endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": "no such route"}})
                if fake.status != 200:
                    return self._send(fake.status, {"error": {"message": "invalid api key"}})
                turn = sum(m["role"] == "assistant" for m in body["messages"])
                content = fake.script[min(turn, len(fake.script) - 1)]
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{len(fake.requests)}",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeOpenAI]:
        thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.httpd.shutdown()
            self.httpd.server_close()


def scripted_replies(reference: str) -> list[str]:
    return [
        "Let me look at the task first.",  # malformed: a wasted step with a hint
        '```json\n{"action": "test"}\n```',
        '```json\n{"action": "run", "code": "print(6 * 7)"}\n```',
        'Fixing it.\n```json\n{"action": "edit"}\n```\n```python\n' + reference + "```",
        '{"action": "submit"}',
    ]


def test_openai_policy_plays_over_http(server, catalog, bank, tmp_path, monkeypatch, capsys):
    task_id = next(t["id"] for t in catalog if t["family"] == "implement")
    reference = bank.get(task_id).reference_solution
    out = tmp_path / "llm"
    with FakeOpenAI(scripted_replies(reference)).running() as fake:
        done = run_inline(
            monkeypatch, capsys, "--base-url", server.url, "--policy", "openai", "--task-id", task_id,
            "--output", str(out), "--no-progress", "--seed", "5",
            env={"API_BASE_URL": fake.url, "MODEL_NAME": "fake/coder-1", "HF_TOKEN": "test-key",
                 "OPENAI_API_KEY": ""},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [episode] = read_report(out)["episodes"]
    assert episode["score"] == 1.0 and episode["passed"] and episode["error"] is None
    assert episode["steps"] == 5 and episode["wasted_steps"] == 1
    assert episode["policy"] == "openai" and episode["model"] == "fake/coder-1"

    [block] = log_blocks(done.stdout)
    assert block[0] == f"[START] task={task_id} env=python_env model=fake/coder-1"
    assert block[1].startswith(
        "[STEP] step=1 action=invalid reward=0.00 done=false error=unparseable reply"
    )
    assert [STEP.match(s).group(2) for s in block[1:-1]] == [
        "invalid",
        "test",
        "run",
        "edit",
        "submit",
    ]
    assert block[-1].startswith("[END] success=true steps=5 score=1.000 rewards=0.00,")

    assert len(fake.requests) == 5
    assert all(h.get("authorization") == "Bearer test-key" for h in fake.headers)
    assert all(r["model"] == "fake/coder-1" and r["seed"] == 5 for r in fake.requests)
    first = fake.requests[0]["messages"]
    assert first[0]["role"] == "system" and '"action": "submit"' in first[0]["content"]
    assert f"Task id: {task_id}" in first[1]["content"]
    # The hint, then the observations, are fed back as user messages.
    assert (
        "could not be used (no ```json action block found)"
        in fake.requests[1]["messages"][-1]["content"]
    )
    assert "[test] visible tests:" in fake.requests[2]["messages"][-1]["content"]
    assert "42" in fake.requests[3]["messages"][-1]["content"]
    assert "[edit]" in fake.requests[4]["messages"][-1]["content"]


def test_openai_policy_wastes_the_budget_then_is_graded(
    server, catalog, tmp_path, monkeypatch, capsys
):
    task_id = next(t["id"] for t in catalog if t["family"] == "implement")
    out = tmp_path / "babble"
    with FakeOpenAI(["no idea"]).running() as fake:
        done = run_inline(
            monkeypatch, capsys, "--base-url", server.url, "--policy", "openai", "--task-id", task_id,
            "--output", str(out), "--no-progress", "--api-base-url", fake.url, "--model", "m",
            env={"HF_TOKEN": "k", "OPENAI_API_KEY": ""},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [episode] = read_report(out)["episodes"]
    budget = next(t for t in catalog if t["id"] == task_id)
    max_steps = httpx.get(f"{server.url}/tasks/{budget['id']}", timeout=60).json()["max_steps"]
    assert episode["wasted_steps"] == max_steps and episode["steps"] == max_steps + 1
    assert episode["error"] is None and not episode["passed"]
    [block] = log_blocks(done.stdout)
    assert STEP.match(block[-2]).group(2) == "submit" and "done=true" in block[-2]


def test_openai_auth_failure_stops_the_run_with_one_line(
    server, catalog, tmp_path, monkeypatch, capsys
):
    ids = [t["id"] for t in catalog[:3]]
    with FakeOpenAI(["x"], status=401).running() as fake:
        done = run_inline(
            monkeypatch, capsys, "--base-url", server.url, "--policy", "openai", *(f"--task-id={i}" for i in ids),
            "--output", str(tmp_path), "--no-progress", "--api-base-url", fake.url,
            env={"OPENAI_API_KEY": "bad", "HF_TOKEN": ""},
        )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert re.search(r"^python-env-eval: error: .*HTTP 401", done.stderr, re.M)
    assert len(fake.requests) == 1  # stopped at the first failure, not once per task
    assert read_report(tmp_path)["episodes"] == []


# -- pass@k and the grading stamp -----------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 2 / 5),  # pass@1 is the pass rate
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (10, 3, 5, 1 - 21 / 252),  # 1 - C(7,5)/C(10,5)
        (4, 0, 2, 0.0),
        (4, 3, 2, 1.0),  # n - c < k
        (1, 1, 1, 1.0),
    ],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    from python_env.eval.report import pass_at_k

    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_refuses_impossible_counts():
    from python_env.eval.report import pass_at_k

    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 4)


def test_samples_give_pass_at_k_in_the_report(server, catalog, tmp_path, capsys):
    """The seeded stochastic policy over 5 samples per task: report.json and summary.md
    carry pass@1 and pass@5 equal to the estimator over the recorded episodes, and the
    grading version and bank hash of the server."""
    from python_env.eval.report import pass_at_k

    out = tmp_path / "mixed"
    ids = [t["id"] for t in catalog if t["family"] in ("implement", "review")][:3]
    args = ["--base-url", server.url, "--policy", "mixed", "--samples", "5", "--output", str(out)]
    code = main([*args, "--no-progress", "--quiet", *(f"--task-id={i}" for i in ids)])
    assert code == 0, capsys.readouterr().err
    data = read_report(out)
    episodes = data["episodes"]
    assert sorted({e["seed"] for e in episodes}) == [0, 1, 2, 3, 4]
    assert len(episodes) == 5 * len(ids) and all(e["error"] is None for e in episodes)
    by_task: dict[str, list[bool]] = {}
    for e in episodes:
        by_task.setdefault(e["task_id"], []).append(e["passed"])
    assert {e["passed"] for e in episodes} == {True, False}  # stochastic across samples
    got = data["summary"]["mixed"]["pass_at_k"]
    assert got["samples_per_task"] == 5 and "pass@10" not in got
    for k in (1, 5):
        want = sum(pass_at_k(5, sum(v), k) for v in by_task.values()) / len(by_task)
        assert got[f"pass@{k}"] == pytest.approx(want, abs=1e-6)
    meta = httpx.get(f"{server.url}/metadata", timeout=30).json()
    assert data["grading_version"] == meta["grading_version"] == "2"
    assert data["bank_hash"] == meta["bank_hash"] and len(meta["bank_hash"]) == 64
    summary = (out / "summary.md").read_text()
    assert "pass@k (unbiased, 5 sample(s) per task): pass@1 " in summary and "pass@5 " in summary

    # the same seeds play the same way
    again = tmp_path / "again"
    assert (
        main([*args[:-1], str(again), "--no-progress", "--quiet", *(f"--task-id={i}" for i in ids)])
        == 0
    )
    key = lambda e: (e["task_id"], e["seed"])  # noqa: E731
    first = sorted((key(e), e["passed"]) for e in episodes)
    assert sorted((key(e), e["passed"]) for e in read_report(again)["episodes"]) == first
