"""The web UI's Python tab, driven in headless Chromium like a person would use it.

The server runs with `ENABLE_WEB_INTERFACE=true`; Debian's Chromium is installed by
`scripts/install-chromium.sh` when missing, and Playwright drives it (no browser
download: `executable_path` points at the system Chromium). A screenshot of each page
after the test is saved in `$PYTHON_ENV_ARTIFACTS` (or the test's temp dir).

Visitors are separate browser contexts (separate cookies and storage, like separate
people): each must play in an environment of their own, whose kernel (a sandbox
process of the server) ends when their page goes or after the idle timeout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from python_env.server.launcher import Server, descendants, run_server

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
IDLE_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def chromium() -> str:
    if not shutil.which(CHROMIUM):
        script = ROOT / "scripts" / "install-chromium.sh"
        done = subprocess.run(["bash", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"install-chromium.sh failed:\n{done.stderr[-3000:]}"
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is not installed"
    return CHROMIUM


@pytest.fixture(scope="module")
def web_process() -> Iterator[Server]:
    with run_server(
        ENABLE_WEB_INTERFACE="true", PYTHON_ENV_TIMEOUT_S="10", MAX_CONCURRENT_ENVS="8"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def web_server(web_process: Server) -> str:
    return web_process.url


@pytest.fixture(scope="module")
def one_seat_server() -> Iterator[Server]:
    """Room for one web visitor at a time, who is dropped after IDLE_TIMEOUT_S idle."""
    with run_server(
        ENABLE_WEB_INTERFACE="true",
        MAX_CONCURRENT_ENVS="1",
        SESSION_TIMEOUT_S=str(IDLE_TIMEOUT_S),
    ) as server:
        yield server


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


@pytest.fixture()
def visitors(chromium: str, tmp_path: Path, request: pytest.FixtureRequest):
    """`visitors(label)` opens a page in a browser context of its own (a new person)."""
    from playwright.sync_api import expect, sync_playwright

    out = Path(os.environ.get("PYTHON_ENV_ARTIFACTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        pages: dict[str, object] = {}

        def visitor(label: str):
            context = browser.new_context(viewport={"width": 1360, "height": 1000})
            page = context.new_page()
            page.set_default_timeout(STEP_TIMEOUT_MS)
            pages[label] = page

            def shoot(tag: str) -> None:
                shot = out / f"{request.node.name}-{label}-{tag}.png"
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot: {shot}")

            page.shoot = shoot  # type: ignore[attr-defined]
            return page

        expect.set_options(timeout=STEP_TIMEOUT_MS)
        try:
            yield visitor
        finally:
            for page in pages.values():
                if not page.is_closed():  # type: ignore[attr-defined]
                    page.shoot("end")  # type: ignore[attr-defined]
            browser.close()


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    return int(raw[raw.rfind(")") + 2 :].split()[1])


def _kernel_pids(server: Server) -> set[int]:
    """The server's kernels: sandbox processes below its zygotes (which start lazily, one
    per worker slot, as children of the server)."""
    return {p for p in descendants(server.pid) if _parent(p) not in (server.pid, None)}


def _ended(server: Server, pids: set[int], within_s: float) -> None:
    """Wait (bounded) until none of these kernels of the server is alive."""
    start = time.monotonic()
    while alive := pids & _kernel_pids(server):
        assert time.monotonic() < start + within_s, f"kernels {alive} outlived their session"
        time.sleep(0.5)
    print(f"session ended {time.monotonic() - start:.1f} s later")


def _run(page, code: str, stdout: str) -> None:
    from playwright.sync_api import expect

    _set_editor(page, code)
    page.locator("#pe-run").click()
    expect(page.locator("#pe-stdout")).to_have_text(stdout)


def _free_sandbox(page, url: str) -> None:
    _open(page, url)
    page.locator("#pe-mode").get_by_text("free sandbox").click()
    page.locator("#pe-reset").click()


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


def test_review_findings_are_submitted(page, web_server: str, bank) -> None:
    from playwright.sync_api import expect

    task = next(t for t in sorted(bank, key=lambda t: t.id) if t.family == "review")
    _open(page, web_server)
    _choose_task(page, task.id)
    page.locator("#pe-reset").click()
    expect(page.locator("#pe-statement")).to_contain_text(task.id)
    findings = page.locator("#pe-findings textarea")
    expect(findings).to_be_visible()

    findings.fill("first line is wrong")  # not LINE CATEGORY: refused, nothing spent
    page.locator("#pe-submit").click()
    expect(page.locator("#pe-status")).to_contain_text("LINE CATEGORY")
    _log_entries(page, 1)

    findings.fill("\n".join(f"{d.line} {d.category}" for d in task.defects))
    page.locator("#pe-submit").click()
    _log_entries(page, 2)
    expect(page.locator("#pe-score")).to_contain_text("1.000")
    expect(page.locator("#pe-status")).to_contain_text("episode over")
    page.shoot("submitted")


def test_each_visitor_plays_their_own_episode(visitors, web_process: Server, bank) -> None:
    from playwright.sync_api import expect

    task = next(t for t in sorted(bank, key=lambda t: t.id) if t.family == "implement")
    alice, bob = visitors("alice"), visitors("bob")
    _open(alice, web_process.url)
    _choose_task(alice, task.id)
    alice.locator("#pe-reset").click()
    expect(alice.locator("#pe-statement")).to_contain_text(task.id)
    expect(alice.locator("#pe-findings")).to_be_hidden()  # for review tasks only
    _free_sandbox(bob, web_process.url)  # with one shared environment, this ends Alice's task
    expect(bob.locator("#pe-statement")).to_contain_text("Free sandbox")

    before = _kernel_pids(web_process)
    _run(alice, 'secret = "alice"\nprint("alice ran")\n', "alice ran\n")
    alice_kernel = _kernel_pids(web_process) - before
    assert alice_kernel, "Alice's persistent run should have started her kernel"
    before = _kernel_pids(web_process)
    _run(bob, 'mine = "bob"\nprint(globals().get("secret"))\n', "None\n")  # not Alice's
    bob_kernel = _kernel_pids(web_process) - before
    assert bob_kernel and not bob_kernel & alice_kernel

    # Alice's episode is still her task: her Test saves her editor, then runs its tests.
    alice.locator("#pe-test").click()
    _log_entries(alice, 4)  # reset, run, edit, test
    expect(alice.locator("#pe-tests-box")).to_contain_text("visible tests passed")
    expect(alice.locator("#pe-statement")).to_contain_text(task.id)
    expect(alice.locator("#pe-log")).not_to_contain_text("free sandbox")
    steps_left = alice.locator("#pe-stats div").filter(has_text="steps left")
    expect(steps_left).to_contain_text(str(task.max_steps - 3))
    _log_entries(bob, 2)  # reset, run: none of Alice's steps
    expect(bob.locator("#pe-log")).not_to_contain_text(task.id)
    alice.shoot("playing")
    bob.shoot("playing")

    # Alice leaves: her session ends and her kernel with it; Bob's lives on.
    alice.context.close()
    _ended(web_process, alice_kernel, within_s=120)
    assert bob_kernel <= _kernel_pids(web_process)
    _run(bob, "print(mine)\n", "bob\n")


def test_idle_visitor_is_dropped_and_seats_are_bounded(visitors, one_seat_server: Server) -> None:
    from playwright.sync_api import expect

    first, second = visitors("first"), visitors("second")
    _free_sandbox(first, one_seat_server.url)
    expect(first.locator("#pe-statement")).to_contain_text("Free sandbox")
    before = _kernel_pids(one_seat_server)
    _run(first, "kept = 1\nprint(kept)\n", "1\n")
    first_kernel = _kernel_pids(one_seat_server) - before
    assert first_kernel

    _free_sandbox(second, one_seat_server.url)  # the one seat is taken
    expect(second.locator("#pe-status")).to_contain_text("CAPACITY_REACHED")
    expect(second.locator("#pe-statement")).to_contain_text("No episode yet")
    second.shoot("refused")

    # The first visitor stays on the page but does nothing: the session ends on its own.
    _ended(one_seat_server, first_kernel, within_s=IDLE_TIMEOUT_S + 120)
    first.locator("#pe-run").click()
    expect(first.locator("#pe-status")).to_contain_text("press Reset")
    expect(first.locator("#pe-statement")).to_contain_text("No episode yet")

    second.locator("#pe-reset").click()  # the seat is free again
    expect(second.locator("#pe-statement")).to_contain_text("Free sandbox")
    _run(second, "print(globals().get('kept'))\n", "None\n")
