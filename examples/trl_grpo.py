"""Train a model on python_env with TRL's GRPO trainer (OpenEnv integration).

Start a server first (`python -m python_env.server.app --port 8000`), then:

    pip install "trl>=1.0" "transformers>=5.2" datasets jmespath
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

torch / trl are imported inside `main()` only, so this file imports without them.
"""

from __future__ import annotations

import argparse
import inspect
import os
from typing import Any

from python_env.eval.trl_adapter import (
    Generation,
    PythonEnvTools,
    env_reward_func,
    make_rollout_func,
    task_dataset_rows,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default=os.getenv("PYTHON_ENV_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--mode", choices=("tools", "text"), default="tools")
    parser.add_argument("--model", default="Qwen/Qwen3-0.6B")
    parser.add_argument("--family", default=None)
    parser.add_argument("--difficulty", default=None)
    parser.add_argument("--max-steps", type=int, default=50, help="training steps")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=768, help="per model turn")
    parser.add_argument("--output-dir", default="grpo-python-env")
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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from datasets import Dataset  # heavy imports only here
    from trl import GRPOConfig, GRPOTrainer

    rows = task_dataset_rows(
        args.base_url, mode=args.mode, family=args.family, difficulty=args.difficulty
    )
    dataset = Dataset.from_list(rows)
    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        num_generations=args.num_generations,
        per_device_train_batch_size=args.num_generations,
        max_completion_length=args.max_new_tokens * 4,
        logging_steps=1,
        log_completions=True,
        chat_template_kwargs={"enable_thinking": False},
    )
    if args.mode == "tools":
        PythonEnvTools.base_url = args.base_url
        trainer_kwargs: dict[str, Any] = {"environment_factory": PythonEnvTools}
        # TRL >= 1.16 takes the reward from `get_reward`; older versions need a reward func.
        if (
            inspect.signature(GRPOTrainer).parameters["reward_funcs"].default
            is inspect.Parameter.empty
        ):
            trainer_kwargs["reward_funcs"] = env_reward_func
    else:
        trainer_kwargs = {
            "reward_funcs": env_reward_func,
            "rollout_func": make_rollout_func(
                generate_factory=hf_generate_factory(args.max_new_tokens),
                base_url=args.base_url,
            ),
        }
    trainer = GRPOTrainer(model=args.model, args=config, train_dataset=dataset, **trainer_kwargs)
    trainer.train()
    trainer.save_model(args.output_dir)


if __name__ == "__main__":
    main()
