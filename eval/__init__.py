"""The evaluation runner of python_env: `python -m python_env.eval` (or `python-env-eval`).

Plays a policy (`reference`, `starter`, `openai`) over a selection of tasks against a
server or an in-process environment and writes report.json, summary.md and scores.png.
The TRL adapter (`python_env.eval.trl_adapter`) reuses the same prompts and parser.
"""

from .policies import (
    POLICIES,
    Agent,
    Decision,
    OpenAIPolicy,
    OpenAISettings,
    Policy,
    ReferencePolicy,
    StarterPolicy,
    make_policy,
)
from .prompts import SYSTEM_PROMPT, ReplyError, parse_reply, render_observation, render_task
from .runner import EpisodeRecord, EpisodeSpec, EvalError, Runner, play_episode, select_tasks

__all__ = [
    "POLICIES",
    "SYSTEM_PROMPT",
    "Agent",
    "Decision",
    "EpisodeRecord",
    "EpisodeSpec",
    "EvalError",
    "OpenAIPolicy",
    "OpenAISettings",
    "Policy",
    "ReferencePolicy",
    "ReplyError",
    "Runner",
    "StarterPolicy",
    "make_policy",
    "parse_reply",
    "play_episode",
    "render_observation",
    "render_task",
    "select_tasks",
]
