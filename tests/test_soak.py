"""The session-lifecycle accounting test: a randomized, bounded soak of the real server
(sessions that connect, run, leave mid-cell, reset, time out and close in random order),
after which the server has exactly its idle processes, no working directories, its idle
open files (the same ones) and memory within 10 % of its idle figure, "idle" being after a
warm-up at the soak's own concurrency (see benchmarks/soak.py), while every well-behaved
session got every step answered. `python benchmarks/soak.py --seconds 3600` is the long one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)
SOAK_S = 40.0


def _soak_module():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"
    spec = importlib.util.spec_from_file_location("python_env_soak", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_after_a_random_soak_the_server_holds_exactly_what_it_held_idle() -> None:
    out = _soak_module().run(SOAK_S, chaos=8, good=2, seed=1234, rounds=2)
    idle, after, tally = out["idle"], out["after"], out["tally"]
    figures = ("processes", "fds", "pss", "server_pss")
    print({"cold": out["cold"], "idle": {k: idle[k] for k in figures}, "rounds": out["rounds"]})
    print({"tally": tally})
    assert tally["good_steps"] > 50 and tally["good_errors"] == [], tally["good_errors"][:3]
    assert tally["departures"] > 0 and tally["idles"] > 0 and tally["closes"] > 0, tally
    assert after["workdirs"] == [], after["workdirs"][:10]
    assert after["processes"] == idle["processes"], (after, idle, out["log"])
    assert after["fds"] <= idle["fds"], (after["fds"], idle["fds"], out["files_changed"])
    assert out["files_changed"]["added"] == [], out["files_changed"]
    assert after["pss"] <= idle["pss"] * 1.10, (after["pss"], idle["pss"], out["rounds"])
