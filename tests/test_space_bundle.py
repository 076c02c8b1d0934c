"""The Hugging Face Space bundle, staged OFFLINE with `openenv push`'s own staging code.

`openenv push` copies the environment into a staging directory, moves
`server/Dockerfile` to the root, adds `ENV ENABLE_WEB_INTERFACE=true` and makes sure the
README front matter has `base_path: /web`, then uploads. These tests run exactly that
staging (never the login or the upload) on a copy of this repository and check that
what the Space would build is right: a Docker Space on port 8000 whose image serves the
web UI.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

push = pytest.importorskip("openenv.cli.commands.push")

ROOT = Path(__file__).resolve().parents[1]
HF_COLORS = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
LOCAL_ONLY = {
    ".git",
    ".venv",
    ".venv-grpo",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}


def _front_matter(readme: str) -> dict:
    match = re.match(r"\A---\n(.*?)\n---\n", readme, flags=re.S)
    assert match, "README.md must start with a YAML front matter block (--- ... ---)"
    data = yaml.safe_load(match.group(1))
    assert isinstance(data, dict)
    return data


def _instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


@pytest.fixture(scope="module")
def staged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory `openenv push` would upload, staged from a copy of the repo."""
    source = tmp_path_factory.mktemp("env") / "python_env"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*LOCAL_ONLY, "*.egg-info"))
    env_name, manifest = push._validate_openenv_directory(source)
    assert env_name == "python_env"
    assert manifest.get("type") == "space"
    staging = tmp_path_factory.mktemp("staging")
    push._prepare_staging_directory(
        source,
        env_name,
        staging,
        ignore_patterns=push._load_ignore_patterns(source, None),
        base_image=None,
        enable_interface=True,
    )
    return staging


def test_dockerfile_moves_to_the_root(staged: Path) -> None:
    assert (staged / "Dockerfile").is_file()
    assert not (staged / "server" / "Dockerfile").exists()


def test_staged_dockerfile_serves_the_web_interface(staged: Path) -> None:
    steps = _instructions((staged / "Dockerfile").read_text())
    kinds = [k for k, _ in steps]
    last_from = len(kinds) - 1 - kinds[::-1].index("FROM")
    cmd = kinds.index("CMD")
    env_lines = [i for i, (k, a) in enumerate(steps) if k == "ENV" and "ENABLE_WEB_INTERFACE" in a]
    assert env_lines, "staging must add ENV ENABLE_WEB_INTERFACE=true"
    (env_at,) = env_lines
    assert steps[env_at][1] == "ENABLE_WEB_INTERFACE=true"
    assert last_from < env_at < cmd, "the web UI must be enabled in the final stage"
    assert kinds.count("CMD") == 1
    assert "${PORT:-8000}" in steps[cmd][1]


def test_staged_dockerfile_builds_anywhere(staged: Path) -> None:
    text = (staged / "Dockerfile").read_text()
    steps = _instructions(text)
    # Plain syntax for the classic builder: no BuildKit-only features.
    assert not text.lstrip().startswith("# syntax"), "no BuildKit syntax directive"
    assert "--mount" not in text and "<<" not in text, "no RUN --mount, no heredocs"
    (arg,) = [a for k, a in steps if k == "ARG" and a.startswith("BASE_IMAGE=")]
    assert arg.split("=", 1)[1].startswith("ghcr.io/"), "the default base must be public"
    assert all(a.startswith("${BASE_IMAGE}") for k, a in steps if k == "FROM")
    health = [a for k, a in steps if k == "HEALTHCHECK"]
    assert health and "/health" in health[0]
    # Every file the build copies from the context is in the bundle.
    for kind, args in steps:
        if kind == "COPY" and not args.startswith("--from"):
            *sources, _dest = args.split()
            for src in sources:
                assert src == "." or (staged / src).exists(), f"COPY source missing: {src}"
    assert (staged / "uv.lock").is_file(), "the image installs from uv.lock"


def test_staged_readme_is_a_docker_space_on_port_8000(staged: Path) -> None:
    readme = (staged / "README.md").read_text()
    meta = _front_matter(readme)
    assert meta["sdk"] == "docker"
    assert meta["app_port"] == 8000
    assert meta["base_path"] == "/web"
    front = readme.split("\n---\n", 1)[0]
    assert front.count("base_path:") == 1, "staging must not add a second base_path"
    assert "openenv" in meta["tags"]
    assert isinstance(meta["title"], str) and meta["title"].strip()
    assert isinstance(meta.get("emoji"), str) and meta["emoji"].strip()
    assert meta["colorFrom"] in HF_COLORS and meta["colorTo"] in HF_COLORS
    assert isinstance(meta.get("pinned", False), bool)
    if "short_description" in meta:
        assert len(meta["short_description"]) <= 60
    body = readme.split("\n---\n", 1)[1]
    assert body.strip(), "the README keeps its body after the front matter"


def test_repo_readme_already_has_the_space_front_matter() -> None:
    """The Space config lives in the repo, not only in what staging adds."""
    meta = _front_matter((ROOT / "README.md").read_text())
    assert meta["sdk"] == "docker" and meta["app_port"] == 8000
    assert meta["base_path"] == "/web"


def test_bundle_leaves_local_state_behind(staged: Path) -> None:
    names = {p.name for p in staged.rglob("*")}
    assert not names & LOCAL_ONLY
    for needed in ("openenv.yaml", "pyproject.toml", "client.py", "models.py", "__init__.py"):
        assert (staged / needed).is_file(), needed
    assert (staged / "server" / "app.py").is_file()
    assert (staged / "server" / "web_ui.py").is_file()
