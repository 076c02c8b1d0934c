"""Train / validation / test splits, paging and export, against the real server (HTTP
and WebSocket on 127.0.0.1): the default bank, and one serving every variant."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from python_env.eval.prompts import SYSTEM_PROMPT, render_task
from python_env.models import TaskInfo
from python_env.server.launcher import Server, run_server
from websockets.sync.client import connect

SPLITS = ("train", "validation", "test")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def variants_server() -> Iterator[Server]:
    """Every source that has variants served as its variants (the 28 built-in sources
    of the procedural repair tasks withheld)."""
    with run_server(PYTHON_ENV_VARIANTS="all", PYTHON_ENV_TIMEOUT_S="5") as s:
        yield s


def tasks(server: Server, **params) -> list[dict]:
    r = httpx.get(f"{server.url}/tasks", params=params, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def metadata(server: Server) -> dict:
    return httpx.get(f"{server.url}/metadata", timeout=60).json()


def reset(ws, **data) -> dict:
    ws.send(json.dumps({"type": "reset", "data": data}))
    return json.loads(ws.recv(timeout=60))


def http_reset(server: Server, **data) -> httpx.Response:
    return httpx.post(f"{server.url}/reset", json=data, timeout=60)


@pytest.mark.parametrize("which", ["server", "variants_server"])
def test_metadata_lists_every_split_with_its_count(which, request) -> None:
    server = request.getfixturevalue(which)
    meta = metadata(server)
    names = [s["name"] for s in httpx.get(f"{server.url}/python_env/splits").json()]
    assert names[:4] == ["all", *SPLITS] and list(meta["splits"]) == names
    for name in names:
        n = httpx.post(f"{server.url}/python_env/num_tasks", json={"split": name}).json()
        assert n["num_tasks"] == meta["splits"][name], name
    every = tasks(server)
    assert meta["splits"]["all"] == len(every) == sum(meta["splits"][s] for s in SPLITS)
    assert all(meta["splits"][split] > 0 for split in SPLITS)
    for split in SPLITS:
        per_family = meta["split_counts"][split]
        assert sum(per_family.values()) == meta["splits"][split]
        listed = [t["family"] for t in every if t["split"] == split]
        assert per_family == {f: listed.count(f) for f in per_family}
    for family, by_difficulty in meta["task_counts"].items():
        assert sum(meta["split_counts"][s][family] for s in SPLITS) == sum(by_difficulty.values())
    assert "sha256" in meta["split_rule"]
    if which == "server":
        assert meta["variants"] == "mixed" and meta["withheld"] == 0
    else:
        assert meta["variants"] == "all" and meta["withheld"] == 28


def test_splits_are_disjoint_and_a_variant_is_on_its_sources_side(variants_server) -> None:
    by_split = {s: tasks(variants_server, split=s) for s in SPLITS}
    ids = {s: {t["id"] for t in rows} for s, rows in by_split.items()}
    assert not ids["train"] & ids["validation"] and not ids["train"] & ids["test"]
    assert not ids["validation"] & ids["test"]
    every = tasks(variants_server)
    assert set().union(*ids.values()) == {t["id"] for t in every}
    roots = {s: {t["base_id"] or t["id"] for t in rows} for s, rows in by_split.items()}
    assert not roots["train"] & roots["validation"] and not roots["train"] & roots["test"]
    assert not roots["validation"] & roots["test"]
    variants = [t for t in every if t["base_id"]]
    assert len(variants) >= 80
    served = {t["id"] for t in every}
    assert not {t["base_id"] for t in variants} & served  # never with its source
    # the same source's split on a server that serves it as itself
    sides = {t["base_id"]: t["split"] for t in variants}
    assert len(sides) == 28 and all(t["split"] == sides[t["base_id"]] for t in variants)


def test_the_default_bank_splits_the_same_tasks_the_same_way(server, variants_server) -> None:
    plain = {t["id"]: t["split"] for t in tasks(server)}
    withheld = {t["base_id"]: t["split"] for t in tasks(variants_server) if t["base_id"]}
    assert set(withheld) <= set(plain)
    assert all(plain[source] == split for source, split in withheld.items())
    shared = set(plain) & {t["id"] for t in tasks(variants_server)}
    assert {plain[i] for i in shared} == set(SPLITS)


def test_reset_by_split_and_index_is_deterministic_over_http_and_websocket(server) -> None:
    for split in SPLITS:
        listing = tasks(server, split=split)
        chosen = [0, len(listing) // 2, len(listing) - 1]
        with connect(server.ws_url) as ws:
            for index in chosen:
                want = listing[index]["id"]
                for _ in range(2):
                    obs = reset(ws, split=split, index=index)["data"]["observation"]
                    assert obs["task"]["task_id"] == want, (split, index)
                over_http = http_reset(server, split=split, index=index).json()
                assert over_http["observation"]["task"]["task_id"] == want
                task = httpx.post(
                    f"{server.url}/python_env/task", json={"split": split, "index": index}
                ).json()["task"]
                assert task["id"] == want and task["split"] == split
            bad = reset(ws, split=split, index=len(listing))
            assert bad["type"] == "error" and bad["data"]["code"] == "BAD_SPLIT"
            drawn = [reset(ws, split=split, seed=7)["data"]["observation"]["task"] for _ in "ab"]
            assert drawn[0]["task_id"] == drawn[1]["task_id"]
            assert drawn[0]["task_id"] in {t["id"] for t in listing}
    r = http_reset(server, split="test", index=10**6)
    assert r.status_code == 404 and r.json()["detail"]["code"] == "BAD_SPLIT"


def test_task_api_ranges_match_the_paged_listing(server) -> None:
    for split in ("all", *SPLITS, "review"):
        r = httpx.post(
            f"{server.url}/python_env/task_range", json={"split": split, "start": 2, "stop": 9}
        )
        ranged = [t["id"] for t in r.json()["tasks"]]
        params = {"offset": 2, "limit": 7}
        if split in SPLITS:
            params["split"] = split
        elif split != "all":
            params["family"] = split
        assert ranged == [t["id"] for t in tasks(server, **params)], split


def test_tasks_pages_and_filters_and_unpaged_is_unchanged(server) -> None:
    every = tasks(server)
    assert len(every) == metadata(server)["splits"]["all"]
    assert set(every[0]) >= {"id", "family", "difficulty", "title", "source"}
    pages, offset = [], 0
    while True:
        r = httpx.get(f"{server.url}/tasks", params={"offset": offset, "limit": 7}, timeout=60)
        assert int(r.headers["x-total-count"]) == len(every)
        if not r.json():
            break
        pages += r.json()
        offset += 7
        assert offset <= len(every) + 7
    assert pages == every
    train_review = tasks(server, split="train", family="review", difficulty="easy")
    assert train_review == [
        t
        for t in every
        if (t["split"], t["family"], t["difficulty"]) == ("train", "review", "easy")
    ]
    assert tasks(server, family="optimize") == [t for t in every if t["family"] == "optimize"]
    assert tasks(server, split="all") == every
    for bad in ({"offset": -1}, {"limit": 0}, {"limit": 10**6}, {"split": "nope"}):
        r = httpx.get(f"{server.url}/tasks", params=bad, timeout=60)
        assert r.status_code == 422, bad


def export(split: str, out: Path, *extra: str, **env: str) -> list[dict]:
    done = subprocess.run(
        [sys.executable, "-m", "python_env.server.export", "--split", split, "--out",
         str(out), *extra],
        capture_output=True, text=True, timeout=300, env={**os.environ, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_export_round_trips_against_the_server(server, tmp_path) -> None:
    for split in ("test", "validation"):
        rows = export(split, tmp_path / f"{split}.jsonl")
        listing = tasks(server, split=split)
        assert [r["task_id"] for r in rows] == [t["id"] for t in listing]
        for row, summary in zip(rows, listing, strict=True):
            for key in ("family", "difficulty", "source", "split", "base_id", "title"):
                assert row[key] == summary[key], key
            info = TaskInfo.model_validate(
                httpx.get(f"{server.url}/tasks/{row['task_id']}", timeout=60).json()
            )
            assert row["prompt"] == [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": render_task(info)},
            ]
            assert row["max_steps"] == info.max_steps
        index = len(rows) - 1
        obs = http_reset(server, split=split, index=index).json()["observation"]
        assert obs["task"]["task_id"] == rows[index]["task_id"]
    review = export("train", tmp_path / "review.jsonl", "--family", "review")
    assert review and {r["family"] for r in review} == {"review"}
    assert {r["split"] for r in review} == {"train"}


def test_export_refuses_an_unknown_split(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "python_env.server.export", "--split", "nope"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2 and "unknown split 'nope'" in done.stderr


DATASETS_PYTHONS = [Path(sys.executable), ROOT / ".venv-grpo" / "bin" / "python"]


def test_to_dataset_builds_the_same_rows(tmp_path) -> None:
    """`to_dataset` where `datasets` is installed: this interpreter, or the GRPO tier's."""
    check = "import datasets"
    python = next(
        (
            p
            for p in DATASETS_PYTHONS
            if p.exists()
            and subprocess.run([str(p), "-c", check], capture_output=True).returncode == 0
        ),
        None,
    )
    if python is None:
        pytest.skip(
            "`datasets` is not installed here nor in .venv-grpo "
            "(bash scripts/grpo-tier.sh --install makes it)"
        )
    rows = export("test", tmp_path / "test.jsonl")
    code = (
        "import json, sys\n"
        "from python_env.server.export import to_dataset\n"
        "ds = to_dataset(split='test')\n"
        "print(json.dumps({'n': ds.num_rows, 'columns': ds.column_names, 'rows': ds.to_list()}))\n"
    )
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["n"] == len(rows) and out["columns"] == list(rows[0])
    assert out["rows"] == rows
