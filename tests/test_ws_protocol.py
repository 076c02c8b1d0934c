"""The WebSocket session as a raw client sees it: episodes, typed errors, recovery."""

from __future__ import annotations

import json
import socket

from websockets.sync.client import connect


def send(ws, message: dict) -> dict:
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=60))


def step(ws, **action) -> dict:
    return send(ws, {"type": "step", "data": action})


def test_free_sandbox_episode(server):
    with connect(server.ws_url) as ws:
        reply = send(ws, {"type": "reset", "data": {}})
        assert reply["type"] == "observation"
        assert reply["data"]["observation"]["task"] is None

        reply = step(ws, kind="run", code="x = 6 * 7\nprint(x)")
        run = reply["data"]["observation"]["run"]
        assert run["stdout"] == "42\n" and run["exit_code"] == 0
        assert run["wall_time_ms"] > 0

        reply = step(ws, kind="run", code="print(x + 1)")
        assert reply["data"]["observation"]["run"]["stdout"] == "43\n"

        reply = step(ws, kind="run", code="1/0")
        run = reply["data"]["observation"]["run"]
        assert run["exception_type"] == "ZeroDivisionError"
        assert "ZeroDivisionError" in run["stderr"]
        assert reply["data"]["reward"] < 0

        state = send(ws, {"type": "state"})
        assert state["type"] == "state"
        assert state["data"]["mode"] == "free" and state["data"]["step_count"] == 3


def test_one_shot_run_does_not_share_kernel_state(server):
    with connect(server.ws_url) as ws:
        send(ws, {"type": "reset", "data": {}})
        step(ws, kind="run", code="secret = 1")
        reply = step(ws, kind="run", code="print(secret)", persistent=False)
        assert reply["data"]["observation"]["run"]["exception_type"] == "NameError"
        reply = step(
            ws, kind="run", code="import sys; print(sys.stdin.read().upper())", stdin="abc"
        )
        assert reply["data"]["observation"]["run"]["stdout"] == "ABC\n"


def test_edit_makes_solution_importable(server):
    with connect(server.ws_url) as ws:
        send(ws, {"type": "reset", "data": {}})
        reply = step(ws, kind="edit", code="def double(n):\n    return 2 * n\n")
        assert reply["data"]["observation"]["kind"] == "edit"
        reply = step(ws, kind="run", code="from solution import double\nprint(double(21))")
        assert reply["data"]["observation"]["run"]["stdout"] == "42\n"


def test_protocol_errors_are_typed_and_lose_nothing(server):
    with connect(server.ws_url) as ws:
        reply = step(ws, kind="run", code="print(1)")
        assert reply["type"] == "error" and reply["data"]["code"] == "NO_EPISODE"

        send(ws, {"type": "reset", "data": {}})
        step(ws, kind="run", code="kept = 'still here'")

        ws.send("{this is not json")
        reply = json.loads(ws.recv(timeout=30))
        assert reply["type"] == "error" and reply["data"]["code"] == "INVALID_JSON"

        reply = send(ws, {"type": "dance"})
        assert reply["data"]["code"] == "UNKNOWN_TYPE"

        for bad in ({"kind": "fly"}, {"code": 3}, {"coed": "x"}, {"code": "y" * 1_000_001}):
            reply = step(ws, **bad)
            assert reply["type"] == "error" and reply["data"]["code"] == "VALIDATION_ERROR", bad

        for kind in ("test", "submit"):
            reply = step(ws, kind=kind)
            assert reply["type"] == "error" and reply["data"]["code"] == "NO_TASK"

        reply = send(ws, {"type": "reset", "data": {"task_id": "does-not-exist"}})
        assert reply["type"] == "error" and reply["data"]["code"] == "UNKNOWN_TASK"

        # Nothing was lost: the free episode, its kernel and its step count are intact.
        state = send(ws, {"type": "state"})["data"]
        assert state["mode"] == "free" and state["step_count"] == 1
        reply = step(ws, kind="run", code="print(kept)")
        assert reply["data"]["observation"]["run"]["stdout"] == "still here\n"


def test_step_after_done_is_an_error_then_reset_works(server):
    with connect(server.ws_url) as ws:
        reply = send(ws, {"type": "reset", "data": {"family": "implement", "seed": 1}})
        assert reply["data"]["observation"]["task"]["family"] == "implement"
        reply = step(ws, kind="submit")
        assert reply["data"]["done"] is True
        assert reply["data"]["observation"]["grade"]["score"] < 1.0
        score = send(ws, {"type": "state"})["data"]["score"]

        reply = step(ws, kind="run", code="print(1)")
        assert reply["type"] == "error" and reply["data"]["code"] == "EPISODE_DONE"
        state = send(ws, {"type": "state"})["data"]
        assert state["done"] is True and state["score"] == score

        reply = send(ws, {"type": "reset", "data": {}})
        assert reply["type"] == "observation" and reply["data"]["done"] is False


def test_hostile_code_through_the_server_leaves_it_serving(server):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    hostile = {
        "while True: pass": lambda r: r["timed_out"],
        "import os; os.kill(os.getppid(), 9)": lambda r: True,  # the server must survive
        "import os; os.kill(-1, 9)": lambda r: True,
        "x = bytearray(8 * 1024**3)": lambda r: r["memory_exceeded"],
        "print('A' * (200 * 1024**2))": lambda r: r["stdout_truncated"],
        "import ctypes; ctypes.string_at(0)": lambda r: r["signal"] == 11,
        f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2); "
        "print('connected')": lambda r: r["exception_type"] and "connected" not in r["stdout"],
    }
    try:
        with connect(server.ws_url) as ws:
            send(ws, {"type": "reset", "data": {}})
            for code, contained in hostile.items():
                reply = step(ws, kind="run", code=code, persistent=False)
                assert reply["type"] == "observation", (code, reply)
                assert contained(reply["data"]["observation"]["run"]), (code, reply)
            reply = step(ws, kind="run", code="print('alive')")
            assert reply["data"]["observation"]["run"]["stdout"] == "alive\n"
    finally:
        listener.close()


BAD_FRAMES = {
    # frame -> the code it must get; each once killed the session or was untyped
    '{"type": "step", "data": {"kind": "run", "stdin": "\\ud800"}}': "INVALID_JSON",
    '{"type": "reset", "data": {"seed": ' + "9" * 5000 + "}}": "INVALID_JSON",
    "[" * 5000 + "]" * 5000: "INVALID_JSON",
    '{"type": "reset", "data": ' + "[" * 100 + "]" * 100 + "}": "INVALID_JSON",
    "[1, 2]": "VALIDATION_ERROR",
    '"reset"': "VALIDATION_ERROR",
    "null": "VALIDATION_ERROR",
    '{"type": "step", "data": [1]}': "VALIDATION_ERROR",
    '{"type": "reset", "data": {"split": {"a": 1}, "index": 0}}': "BAD_RESET",
    '{"type": "reset", "data": {"seed": false}}': "BAD_RESET",
    '{"type": "reset", "data": {"seed": 99999999999999999999999}}': "BAD_RESET",
    '{"type": "reset", "data": {"split": "all", "index": 100000}}': "BAD_SPLIT",
    '{"type": "reset", "data": {"split": "juggling"}}': "BAD_SPLIT",
    '{"type": "reset", "data": {"__python_env_connection__": 1, "x": 2}}': "BAD_RESET",
}


def test_bad_input_gets_a_typed_error_and_the_session_answers_the_next_step(server):
    with connect(server.ws_url) as ws:
        send(ws, {"type": "reset", "data": {}})
        step(ws, kind="run", code="kept = 41")
        for frame, code in BAD_FRAMES.items():
            ws.send(frame)
            reply = json.loads(ws.recv(timeout=60))
            assert reply["type"] == "error" and reply["data"]["code"] == code, (frame[:60], reply)
            reply = step(ws, kind="run", code="kept += 1; print(kept)")
            assert reply["type"] == "observation", (frame[:60], reply)
        ws.send(b'{"type": "state"}')  # a binary frame is read as UTF-8 text
        state = json.loads(ws.recv(timeout=60))["data"]
        assert state["mode"] == "free" and state["step_count"] == 1 + len(BAD_FRAMES)
        assert reply["data"]["observation"]["run"]["stdout"] == f"{41 + len(BAD_FRAMES)}\n"


def test_step_options_are_refused_not_ignored(server):
    with connect(server.ws_url) as ws:
        send(ws, {"type": "reset", "data": {}})
        reply = send(ws, {"type": "step", "data": {"kind": "run", "timeout_s": 1}})
        assert reply["type"] == "error" and reply["data"]["code"] == "VALIDATION_ERROR"
