"""The web UI's Python tab, driven in headless Chromium like a person would use it.

The server runs with `ENABLE_WEB_INTERFACE=true`; Debian's Chromium is installed by
`scripts/install-chromium.sh` when missing, and Playwright drives it (no browser
download: `executable_path` points at the system Chromium). A screenshot of the page
after the episode is saved in `$PYTHON_ENV_ARTIFACTS` (or the test's temp dir).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_env.server.launcher import run_server

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]


ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
STEP_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def chromium() -> str:
    if not shutil.which(CHROMIUM):
        script = ROOT / "scripts" / "install-chromium.sh"
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"install-chromium.sh failed:\n{done.stderr[-3000:]}"
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is not installed"
    return CHROMIUM


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    with run_server(
        ENABLE_WEB_INTERFACE="true", PYTHON_ENV_TIMEOUT_S="10", MAX_CONCURRENT_ENVS="8"
    ) as server:
        yield server.url


@pytest.fixture()
def page(chromium: str, tmp_path: Path, request: pytest.FixtureRequest):
    from playwright.sync_api import expect, sync_playwright

    profile = tmp_path / "profile"
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 1000},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        expect.set_options(timeout=STEP_TIMEOUT_MS)
        out = Path(os.environ.get("PYTHON_ENV_ARTIFACTS") or tmp_path)
        out.mkdir(parents=True, exist_ok=True)

        def shoot(label: str = "end") -> None:
            shot = out / f"{request.node.name}-{label}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")

        page.shoot = shoot  # type: ignore[attr-defined]
        try:
            yield page
        finally:
            shoot()
            context.close()


def _open(page, url: str) -> None:
    page.goto(f"{url}/web/", wait_until="domcontentloaded")
    page.locator("#pe-reset").wait_for()


def _choose_task(page, task_id: str) -> None:
    box = page.locator("#pe-task input")
    box.click()
    box.fill(task_id)
    page.get_by_role("option", name=task_id).first.click()


def _set_editor(page, code: str) -> None:
    editor = page.locator("#pe-editor .cm-content")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # insert_text types no keys, so the editor's auto-indent leaves the code as it is.
    page.keyboard.insert_text(code)


def _log_entries(page, n: int) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#pe-log li")).to_have_count(n)


def test_play_a_task_in_the_browser(page, web_server: str, bank) -> None:
    from playwright.sync_api import expect

    task = next(t for t in sorted(bank, key=lambda t: t.id) if t.family == "implement")
    _open(page, web_server)

    _choose_task(page, task.id)
    page.locator("#pe-reset").click()
    expect(page.locator("#pe-statement")).to_contain_text(task.title)
    expect(page.locator("#pe-statement")).to_contain_text(task.id)
    _log_entries(page, 1)
    expect(page.locator("#pe-editor .cm-content")).to_contain_text(
        task.starter_code.strip().splitlines()[0].strip()
    )

    page.locator("#pe-test").click()  # the starter code: some visible tests fail
    _log_entries(page, 2)
    expect(page.locator("#pe-tests")).to_contain_text("failed")

    _set_editor(page, task.reference_solution)
    page.locator("#pe-test").click()  # an edit step, then the test step
    _log_entries(page, 4)
    rows = page.locator("#pe-tests tbody tr")
    n = rows.count()
    assert n > 0
    expect(page.locator("#pe-tests-box")).to_contain_text(f"{n} of {n} visible tests passed")
    for i in range(n):
        expect(rows.nth(i)).to_contain_text("passed")
    expect(page.locator("#pe-log")).to_contain_text("edit")

    page.locator("#pe-submit").click()
    _log_entries(page, 5)
    expect(page.locator("#pe-score")).to_contain_text("1.000")
    expect(page.locator("#pe-score")).to_contain_text("passed")
    expect(page.locator("#pe-status")).to_contain_text("episode over")
    expect(page.locator("#pe-reward")).to_be_visible()
    steps_left = page.locator("#pe-stats div").filter(has_text="steps left")
    expect(steps_left).to_contain_text(str(task.max_steps - 4))
    page.shoot("submitted")

    # The episode is over: further actions are refused on the page, not sent.
    page.locator("#pe-test").click()
    expect(page.locator("#pe-status")).to_contain_text("press Reset")
    _log_entries(page, 5)


def test_free_sandbox_runs_code(page, web_server: str) -> None:
    from playwright.sync_api import expect

    _open(page, web_server)
    page.locator("#pe-mode").get_by_text("free sandbox").click()
    page.locator("#pe-reset").click()
    expect(page.locator("#pe-statement")).to_contain_text("Free sandbox")
    _set_editor(page, "import sys\nprint('hi', 6 * 7)\nprint('oops', file=sys.stderr)\n")
    page.locator("#pe-run").click()
    expect(page.locator("#pe-stdout")).to_have_text("hi 42\n")
    expect(page.locator("#pe-stderr")).to_contain_text("oops")
    expect(page.locator("#pe-output-box")).to_contain_text("exit code 0")
    # A test step in a free sandbox is refused by the server and shown as an error.
    page.locator("#pe-test").click()
    expect(page.locator("#pe-status")).to_contain_text("NO_TASK")
