"""The per-machine store: content-addressed, atomic, and never trusted over recomputing."""

from __future__ import annotations

import math
import stat
import threading
from pathlib import Path

import pytest
from python_env.server.config import Settings
from python_env.server.tasks.cache import Store, content_key


def test_values_round_trip_by_content_key(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key = content_key("def f(x): return x", [1, 2, 3], "cpython-3.11")
    assert store.get("expected", key) is None
    value = {"outputs": [1, "two", None, [3.5, True]], "nan": math.inf}
    assert store.put("expected", key, value)
    assert store.get("expected", key) == value
    # namespaces are separate
    assert store.get("inputs", key) is None


def test_a_changed_input_is_a_different_key() -> None:
    base = content_key("code", {"seed": 1, "n": 2})
    assert base == content_key("code", {"n": 2, "seed": 1})  # canonical: key order ignored
    assert base != content_key("code ", {"seed": 1, "n": 2})
    assert base != content_key("code", {"seed": 2, "n": 2})
    assert base != content_key("code", {"seed": 1, "n": 2}, "another runtime")


@pytest.mark.parametrize(
    "content",
    [b"", b'{"key": "', b"\xff\xfe garbage", b"[1, 2]", b'{"value": 1}', b"null"],
)
def test_a_corrupt_entry_reads_as_missing_and_is_rewritten(tmp_path: Path, content: bytes) -> None:
    store = Store(tmp_path)
    key = content_key("x")
    path = store.path("expected", key)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert store.get("expected", key) is None
    assert store.put("expected", key, [1])
    assert store.get("expected", key) == [1]


def test_an_entry_moved_under_another_key_is_not_read(tmp_path: Path) -> None:
    store = Store(tmp_path)
    a, b = content_key("a"), content_key("b")
    store.put("expected", a, "value of a")
    target = store.path("expected", b)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(store.path("expected", a).read_bytes())
    assert store.get("expected", b) is None


def test_an_unreadable_entry_reads_as_missing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key = content_key("dir")
    store.path("expected", key).mkdir(parents=True)  # a directory where the file should be
    assert store.get("expected", key) is None


def test_an_unwritable_store_loses_the_write_not_the_caller(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = Store(blocker)
    key = content_key("y")
    assert store.put("expected", key, 1) is False
    assert store.get("expected", key) is None


def test_writes_are_atomic_and_private(tmp_path: Path) -> None:
    store = Store(tmp_path / "root")
    key = content_key("z")
    store.put("expected", key, list(range(10)))
    path = store.path("expected", key)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (store.root, path.parent.parent, path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700


def test_concurrent_writers_never_show_a_partial_entry(tmp_path: Path) -> None:
    store = Store(tmp_path)
    key = content_key("shared")
    values = [list(range(n, n + 20_000)) for n in range(4)]
    seen: list[object] = []

    def write(value: list[int]) -> None:
        for _ in range(25):
            store.put("expected", key, value)

    def read() -> None:
        for _ in range(200):
            seen.append(store.get("expected", key))

    threads = [threading.Thread(target=write, args=(v,)) for v in values]
    threads.append(threading.Thread(target=read))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(v is None or v in values for v in seen)
    assert store.get("expected", key) in values
    assert len(list(store.path("expected", key).parent.iterdir())) == 1


def test_keys_and_namespaces_are_checked(tmp_path: Path) -> None:
    store = Store(tmp_path)
    with pytest.raises(ValueError):
        store.get("expected", "../../etc/passwd")
    with pytest.raises(ValueError):
        store.put("../up", content_key("k"), 1)
    with pytest.raises(TypeError):
        store.put("expected", content_key("k"), object())


def test_the_store_directory_setting(tmp_path: Path) -> None:
    assert Settings().cache_path == Path.home() / ".cache" / "python_env"
    assert Settings.from_env({}).cache_path == Settings().cache_path
    xdg = Settings.from_env({"XDG_CACHE_HOME": str(tmp_path)})
    assert xdg.cache_path == tmp_path / "python_env"
    explicit = {"XDG_CACHE_HOME": str(tmp_path), "PYTHON_ENV_CACHE_DIR": str(tmp_path / "c")}
    assert Settings.from_env(explicit).cache_path == tmp_path / "c"
