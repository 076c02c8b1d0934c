"""The TRL adapter against the real server, with scripted policies standing in for a model
(no torch, trl or weights needed): the `environment_factory` class as TRL drives it, and
the `rollout_func` path from prompts to token ids and environment rewards."""

from __future__ import annotations

import inspect
import sys

import httpx
import pytest
from python_env.eval.prompts import task_id_from_prompt
from python_env.eval.trl_adapter import (
    Generation,
    PythonEnvTools,
    env_reward_func,
    make_rollout_func,
    task_dataset_rows,
)


@pytest.fixture(scope="module")
def implement_task(server, bank):
    task_id = httpx.get(f"{server.url}/tasks", params={"family": "implement"}, timeout=60).json()[
        0
    ]["id"]
    return bank.get(task_id)


def tool_methods(cls: type) -> dict[str, object]:
    """The methods TRL's GRPOTrainer exposes as tools (its own selection rule)."""
    return {
        name: fn
        for name, fn in inspect.getmembers(cls, predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    }


def test_tools_are_what_trl_would_expose():
    tools = tool_methods(PythonEnvTools)
    assert set(tools) == {"run_code", "edit_solution", "run_tests", "submit"}
    for name, fn in tools.items():
        doc = inspect.getdoc(fn) or ""
        params = [p for p in inspect.signature(fn).parameters if p != "self"]
        assert "Returns:" in doc, name
        for param in params:  # Google-style docstrings: every argument described
            assert f"{param}:" in doc.split("Args:")[-1], (name, param)
        hints = inspect.get_annotations(fn, eval_str=True)
        assert all(p in hints for p in params) and "return" in hints
    if "transformers" in sys.modules or _has("transformers"):
        from transformers.utils import get_json_schema

        for fn in tools.values():
            assert get_json_schema(fn)["name"]


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_environment_factory_episode(server, implement_task):
    PythonEnvTools.base_url = server.url
    env = PythonEnvTools()
    try:
        # TRL passes the whole dataset row to reset().
        text = env.reset(prompt=[{"role": "user", "content": "solve"}], task_id=implement_task.id)
        assert text is not None and task_id_from_prompt(text) == implement_task.id
        assert implement_task.statement.strip()[:40] in text
        assert "42" in env.run_code("print(6 * 7)")
        assert "visible tests:" in env.run_tests()
        assert "solution.py updated" in env.edit_solution(implement_task.reference_solution)
        graded = env.submit()
        assert "score 1.000" in graded
        assert env.get_reward() >= 1.0
        assert env.run_code("print(1)").startswith("error: the episode is over")
        assert env_reward_func(["c"], environments=[env]) == [env.get_reward()]

        # A rollout that never submits is graded when TRL asks for the reward.
        env.reset(task_id=implement_task.id, seed=3)
        env.edit_solution(implement_task.reference_solution)
        assert env.get_reward() == pytest.approx(1.0)
        assert env.submit(findings=["not a finding"]).startswith("error:")
    finally:
        env._close()
        PythonEnvTools.base_url = None


class FakeTokenizer:
    """Character-level 'tokens' with a prefix-consistent chat template, like real ones:
    prompt = turns + '<assistant>'; a completion ends with '</>'."""

    @staticmethod
    def encode(text: str) -> list[int]:
        return [ord(c) for c in text]

    def prompt(self, messages: list[dict[str, str]]) -> str:
        return "".join(f"<{m['role']}>{m['content']}</>" for m in messages) + "<assistant>"


def scripted_generate(replies: list[str], calls: list[list[dict[str, str]]]):
    tok = FakeTokenizer()

    def generate(messages: list[dict[str, str]]) -> Generation:
        calls.append([dict(m) for m in messages])
        turn = sum(m["role"] == "assistant" for m in messages)
        text = replies[min(turn, len(replies) - 1)]
        completion = tok.encode(text + "</>")
        return Generation(
            text=text,
            prompt_ids=tok.encode(tok.prompt(messages)),
            completion_ids=completion,
            logprobs=[-0.5] * len(completion),
        )

    return generate


def test_rollout_func_plays_episodes_and_returns_trl_fields(server, implement_task):
    replies = [
        "hmm",  # wasted
        '```json\n{"action": "test"}\n```',
        '```json\n{"action": "edit"}\n```\n```python\n' + implement_task.reference_solution + "```",
        '```json\n{"action": "submit"}\n```',
    ]
    calls: list[list[dict[str, str]]] = []
    rollout = make_rollout_func(scripted_generate(replies, calls), base_url=server.url, seed=10)
    rows = task_dataset_rows(server.url, mode="text", family="implement")
    row = next(r for r in rows if r["task_id"] == implement_task.id)

    class Trainer:  # what the adapter may read of TRL's trainer: nothing here
        num_generations = 2

    # TRL's RepeatSampler hands each prompt num_generations times: one episode per element.
    out = rollout([row["prompt"]] * Trainer.num_generations, Trainer())
    assert set(out) >= {"prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward"}
    assert len(out["completion_ids"]) == 2 and out["task_id"] == [implement_task.id] * 2
    assert out["env_score"] == [1.0, 1.0]
    assert all(r >= 1.0 for r in out["env_reward"])
    assert env_reward_func(["a", "b"], env_reward=out["env_reward"]) == out["env_reward"]
    assert len(calls) == 8

    # The stitched sequence is exactly the final conversation's tokens; model tokens masked 1.
    tok = FakeTokenizer()
    prompt_ids, completion_ids = out["prompt_ids"][0], out["completion_ids"][0]
    mask, logprobs = out["env_mask"][0], out["logprobs"][0]
    last_call = calls[3]
    full = tok.encode(tok.prompt(last_call)) + tok.encode(replies[3] + "</>")
    assert prompt_ids + completion_ids == full
    assert len(mask) == len(completion_ids) == len(logprobs)
    model_tokens = sum(len(tok.encode(r + "</>")) for r in replies)
    assert sum(mask) == model_tokens
    assert all((lp == -0.5) == bool(m) for lp, m in zip(logprobs, mask, strict=True))
    # The hint after the wasted reply, then observations, are environment tokens.
    assert "could not be used" in calls[1][-1]["content"]
    assert "[test] visible tests:" in calls[2][-1]["content"]


def test_dataset_rows_for_tools_mode(server):
    rows = task_dataset_rows(server.url, mode="tools", family="fix-syntax")
    assert rows and all(r["prompt"][0]["role"] == "user" and r["task_id"] for r in rows)
    with pytest.raises(ValueError):
        task_dataset_rows(server.url, mode="nope")
