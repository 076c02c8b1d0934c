"""Train a model on python_env with TRL's GRPO trainer (OpenEnv integration).

Start a server first (`python -m python_env.server.app --port 8000`), then:

    pip install torch "trl==1.16.*" transformers accelerate datasets
    # (or, on CPU here: bash scripts/grpo-tier.sh --install, then .venv-grpo/bin/python)
    python examples/trl_grpo.py --base-url http://127.0.0.1:8000 --mode tools
    python examples/trl_grpo.py --base-url http://127.0.0.1:8000 --mode text --family fix-syntax

Two ways to connect the trainer, both from `python_env.eval.trl_adapter`:

- `--mode tools` (TRL's `environment_factory`, the recommended pattern): every rollout
  gets a `PythonEnvTools` instance, a python_env session whose methods `run_code`,
  `edit_solution`, `run_tests` and `submit` the model calls as tools; the reward is the
  episode's environment reward (`get_reward`). Needs a chat template with tool calling
  (Qwen3 has one) and transformers >= 5.2.
- `--mode text` (TRL's `rollout_func`): the adapter plays whole episodes with the JSON
  action protocol of the evaluation runner, generating each turn with the trainer's
  model (`transformers.generate` here; swap in vLLM for speed), and returns the token
  ids, logprobs, an `env_mask` (model tokens 1, environment feedback 0) and the episode
  reward (`env_reward_func`).

`--tiny` needs no download at all (CPU, seconds per step): a tokenizer trained here on
the server's task texts, with the Qwen2.5 chat template TRL ships (tool calling), and a
two-layer Qwen2 model from a config with random weights. In tools mode it is first
warmed up (`--warmup-steps`, supervised) on a few tool-call transcripts, since random
weights never write a parseable call. `--summary FILE` writes what the run logged (the
per-rollout rewards of every optimizer step, tool-call parse counts) as JSON; the GRPO
test tier (`bash scripts/grpo-tier.sh`) runs `--tiny` for two steps and checks it
against the server's own record of the episodes.

torch / trl are imported inside functions only, so this file imports without them.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from python_env.eval.prompts import SYSTEM_PROMPT, render_task
from python_env.eval.trl_adapter import (
    TOOLS_PROMPT,
    Generation,
    PythonEnvTools,
    env_reward_func,
    make_rollout_func,
    task_dataset_rows,
)
from python_env.models import TaskInfo


def tool_names(cls: type) -> list[str]:
    """The methods TRL exposes as tools, in its order (`inspect.getmembers`: by name), so
    a warm-up renders the prompt exactly as the trainer will."""
    return [
        name
        for name, _ in inspect.getmembers(cls, predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.getenv("PYTHON_ENV_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--mode", choices=("tools", "text"), default="tools")
    parser.add_argument("--model", default="Qwen/Qwen3-0.6B")
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny random model built here (no download)"
    )
    parser.add_argument("--family", default=None)
    parser.add_argument("--difficulty", default=None)
    parser.add_argument("--limit", type=int, default=None, help="use the first N tasks only")
    parser.add_argument("--max-steps", type=int, default=50, help="optimizer steps")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=None, help="rollouts per step")
    parser.add_argument("--max-new-tokens", type=int, default=768, help="per model turn")
    parser.add_argument("--max-tool-calls", type=int, default=None, help="tool rounds per rollout")
    parser.add_argument("--warmup-steps", type=int, default=120, help="--tiny --mode tools only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="grpo-python-env")
    parser.add_argument("--summary", default=None, help="write the run's logged results here")
    return parser.parse_args(argv)


def hf_generate_factory(max_new_tokens: int, temperature: float = 1.0) -> Any:
    """`generate_factory` for `make_rollout_func`: one turn with the trainer's model."""

    def factory(trainer: Any) -> Any:
        import torch

        model = trainer.accelerator.unwrap_model(trainer.model)
        tokenizer = trainer.processing_class

        def generate(messages: list[dict[str, str]]) -> Generation:
            text = tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=False
            )
            prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            inputs = torch.tensor([prompt_ids], device=model.device)
            with torch.no_grad():
                out = model.generate(
                    inputs,
                    attention_mask=torch.ones_like(inputs),
                    max_new_tokens=max_new_tokens,
                    do_sample=True,
                    temperature=temperature,
                    output_scores=True,
                    return_dict_in_generate=True,
                    pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
                )
            completion_ids = out.sequences[0, len(prompt_ids) :].tolist()
            logprobs = model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            )[0].tolist()
            return Generation(
                text=tokenizer.decode(completion_ids, skip_special_tokens=True),
                prompt_ids=list(prompt_ids),
                completion_ids=completion_ids,
                logprobs=logprobs[: len(completion_ids)],
            )

        return generate

    return factory


# -- the tiny model: no download ----------------------------------------------------------

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Plain added tokens (not special): they survive decoding, so TRL's parser sees them.
MARKUP_TOKENS = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]


def task_texts(base_url: str, task_ids: list[str]) -> dict[str, str]:
    """The task text `PythonEnvTools.reset` appends to a prompt, read from `/tasks/{id}`
    (no episode is started)."""
    url = base_url.rstrip("/")
    out = {}
    for task_id in task_ids:
        info = httpx.get(f"{url}/tasks/{task_id}", timeout=30).json()
        out[task_id] = render_task(TaskInfo.model_validate(info))
    return out


def tool_transcripts(texts: dict[str, str]) -> list[list[dict[str, Any]]]:
    """A few tool-calling episodes to warm a model up on the call format, two per task
    that differ in their first call (the visible tests, or code that raises), so a
    group of rollouts differs in its environment reward and GRPO has an advantage."""

    def call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        fn = {"name": name, "arguments": arguments}
        return {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": fn}],
        }

    first_calls = [
        (call("run_tests", {}), "[test] visible tests: 1/3 passed"),
        (call("run_code", {"code": "print(1 / 0)"}), "[run] ZeroDivisionError: division by zero"),
    ]
    return [
        [
            {"role": "user", "content": TOOLS_PROMPT + "\n\n" + text},
            first,
            {"role": "tool", "name": first["tool_calls"][0]["function"]["name"], "content": reply},
            call("submit", {}),
            {"role": "tool", "name": "submit", "content": "[submit] score 0.000"},
            {"role": "assistant", "content": "Submitted."},
        ]
        for text in texts.values()
        for first, reply in first_calls
    ]


def build_tiny_model(corpus: list[str], seed: int, vocab_size: int = 4000) -> tuple[Any, Any]:
    """A byte-level BPE tokenizer trained on `corpus` with TRL's Qwen2.5 chat template,
    and a two-layer Qwen2 causal LM with random weights (one CPU thread: on a small
    shared machine, a second thread only adds contention)."""
    import torch

    torch.set_num_threads(1)
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
    from trl.chat_template_utils import qwen2_5_chat_template

    bpe = Tokenizer(models.BPE())
    # No word splitting: merges span spaces, so the few texts of a run (tool schemas,
    # instructions, tasks) become few tokens and a tiny model sees short sequences.
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        [*corpus, qwen2_5_chat_template],
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    tokenizer.add_tokens(MARKUP_TOKENS)
    tokenizer.chat_template = qwen2_5_chat_template
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def warm_up(
    model: Any,
    tokenizer: Any,
    transcripts: list[list[dict[str, Any]]],
    tools: list[Any],
    steps: int,
) -> dict[str, Any]:
    """A short supervised step on `transcripts` (loss on the assistant turns only), so
    the model writes tool calls in the chat template's format. `tools` are rendered into
    the prompt exactly as TRL renders them."""
    import torch

    def render(messages: list[dict[str, Any]], **kw: Any) -> list[int]:
        return tokenizer.apply_chat_template(
            messages, tools=tools, tokenize=True, return_dict=False, **kw
        )

    rows = []
    for messages in transcripts:
        ids = render(messages)
        labels = [-100] * len(ids)
        for i, message in enumerate(messages):
            if message["role"] == "assistant":
                start, end = (
                    len(render(messages[:i], add_generation_prompt=True)),
                    len(render(messages[: i + 1])),
                )
                labels[start:end] = ids[start:end]
        rows.append((ids, labels))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows])
    label_ids = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in rows])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows])
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=attention, labels=label_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    return {
        "steps": steps,
        "transcripts": len(rows),
        "tokens": int(attention.sum()),
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
    }


# -- what the trainer logged ---------------------------------------------------------------


def tool_call_counts(completions: list[Any]) -> dict[str, int]:
    """Assistant turns of the logged completions: those with a parsed tool call, and those
    that tried one (`<tool_call>` in the text) that TRL could not parse."""
    turns = parsed = unparsed = 0
    for completion in completions:
        for message in completion if isinstance(completion, list) else []:
            if message.get("role") != "assistant":
                continue
            turns += 1
            if message.get("tool_calls"):
                parsed += 1
            elif "<tool_call>" in str(message.get("content", "")):
                unparsed += 1
    return {"assistant_turns": turns, "parsed_calls": parsed, "unparsed_calls": unparsed}


def make_recorder(trainer: Any) -> Any:
    """A callback noting, at every log (one per optimizer step), the step's per-rollout
    rewards and completions as the trainer logged them."""
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self) -> None:
            self.steps: list[dict[str, Any]] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or "reward" not in logs:
                return
            rewards = {name: list(v) for name, v in trainer._logs["rewards"].items()}
            self.steps.append(
                {
                    "step": state.global_step,
                    "reward": logs["reward"],
                    "rewards": rewards,
                    "tool_calls": tool_call_counts(list(trainer._logs["completion"])),
                    "completions": [str(c)[:300] for c in trainer._logs["completion"]],
                    "logs": {k: v for k, v in logs.items() if isinstance(v, int | float)},
                }
            )

    return Recorder()


def summarize(args: argparse.Namespace, trainer: Any, recorder: Any, extra: dict) -> dict:
    out: dict[str, Any] = {
        "mode": args.mode,
        "optimizer_steps": trainer.state.global_step,
        "rollouts_per_step": trainer.args.generation_batch_size,
        "steps": recorder.steps,
    }
    if args.mode == "tools":
        counts = {"assistant_turns": 0, "parsed_calls": 0, "unparsed_calls": 0}
        for step in recorder.steps:
            for key in counts:
                counts[key] += step["tool_calls"][key]
        attempted = counts["parsed_calls"] + counts["unparsed_calls"]
        turns = counts["assistant_turns"]
        out["tool_calls"] = {
            **counts,
            "parse_fraction": counts["parsed_calls"] / attempted if attempted else None,
            "call_turn_fraction": counts["parsed_calls"] / turns if turns else None,
        }
    return {**out, **extra}


# -- the run -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from datasets import Dataset  # heavy imports only here
    from trl import GRPOConfig, GRPOTrainer

    started = time.monotonic()
    rows = task_dataset_rows(
        args.base_url, mode=args.mode, family=args.family, difficulty=args.difficulty
    )[: args.limit]
    extra: dict[str, Any] = {"tasks": [r["task_id"] for r in rows]}
    model: Any = args.model
    tokenizer = None
    PythonEnvTools.base_url = args.base_url
    if args.tiny:
        texts = task_texts(args.base_url, [r["task_id"] for r in rows])
        transcripts = tool_transcripts(texts)
        corpus = [SYSTEM_PROMPT, TOOLS_PROMPT, *texts.values(), *map(json.dumps, transcripts)]
        model, tokenizer = build_tiny_model(corpus, args.seed)
        extra["model"] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "vocab": len(tokenizer),
        }
        if args.mode == "tools" and args.warmup_steps > 0:
            probe = PythonEnvTools()  # bound methods, as TRL passes them (no session opened)
            tools = [getattr(probe, name) for name in tool_names(PythonEnvTools)]
            extra["warmup"] = warm_up(model, tokenizer, transcripts, tools, args.warmup_steps)
            probe._close()
    batch = args.batch_size or args.num_generations
    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        num_generations=args.num_generations,
        per_device_train_batch_size=batch,
        max_completion_length=args.max_new_tokens * 4,
        max_tool_calling_iterations=args.max_tool_calls,
        logging_steps=1,
        log_completions=not args.tiny,
        chat_template_kwargs={"enable_thinking": False},
        seed=args.seed,
        report_to="none",
        save_strategy="no",
        use_cpu=args.tiny,
    )
    if args.mode == "tools":
        trainer_kwargs: dict[str, Any] = {"environment_factory": PythonEnvTools}
    else:
        trainer_kwargs = {
            "reward_funcs": env_reward_func,
            "rollout_func": make_rollout_func(
                generate_factory=hf_generate_factory(args.max_new_tokens),
                base_url=args.base_url,
            ),
        }
    trainer = GRPOTrainer(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        **trainer_kwargs,
    )
    recorder = make_recorder(trainer)
    trainer.add_callback(recorder)
    trained = time.monotonic()
    trainer.train()
    extra["seconds"] = {
        "setup": round(trained - started, 1),
        "train": round(time.monotonic() - trained, 1),
    }
    if args.summary:
        summary = summarize(args, trainer, recorder, extra)
        Path(args.summary).write_text(json.dumps(summary, indent=1))
    if not args.tiny:
        trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
