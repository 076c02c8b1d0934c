"""Code that runs inside the sandboxed child, after isolation, around candidate code.

Channels (fixed fd numbers set up by the zygote): 0/1/2 the candidate's stdio
(capped by the parent), 3 results child->parent (one JSON object per line), 4
requests parent->child (serve/tests). The result channel carries only plain data: the
verifier compares it with expected outputs that never enter this process.
"""

from __future__ import annotations

import ast
import builtins
import io
import json
import linecache
import os
import sys
import traceback
import types
from typing import Any

from . import caps, pytest_shim
from .plain import Unserializable, decode, dumps, encode, to_plain

RESULT_FD, REQUEST_FD = 3, 4
MAX_LINE = caps.RESULT_LINE
MAX_MSG = caps.MESSAGE
_HERE = os.path.dirname(os.path.abspath(__file__))


def emit(obj: dict[str, Any], fd: int = RESULT_FD) -> None:
    data = (dumps(obj) + "\n").encode()
    while data:
        n = os.write(fd, data)
        data = data[n:]


def fmt_exc(e: BaseException) -> str:
    msg = str(e)
    text = f"{type(e).__name__}: {msg}" if msg else type(e).__name__
    return text[:MAX_MSG]


def setup_stdio() -> None:
    sys.stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)),
        encoding="utf-8",
        errors="surrogateescape",
    )
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
        encoding="utf-8",
        errors="backslashreplace",
    )
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )
    for name in ("stdin", "stdout", "stderr"):
        setattr(sys, f"__{name}__", getattr(sys, name))


def flush_stdio() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except BaseException:  # noqa: BLE001 - a broken pipe must not hide the verdict
            pass


def register_source(filename: str, source: str) -> None:
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


def print_traceback(e: BaseException) -> None:
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(_HERE):
        tb = tb.tb_next
    try:
        sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)))
    except BaseException:  # noqa: BLE001
        pass


def write_files(files: dict[str, str]) -> None:
    for name, text in files.items():
        d = os.path.dirname(name)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(name, "w", encoding="utf-8") as f:
            f.write(text)


def exit_code_of(e: SystemExit) -> int:
    code = e.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    try:
        sys.stderr.write(f"{code}\n")
    except BaseException:  # noqa: BLE001
        pass
    return 1


def new_main_module(name: str = "__main__", filename: str = "<main>") -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__dict__.update(__builtins__=builtins, __file__=filename)
    sys.modules[name] = mod
    return mod


def finish(code: int) -> None:
    flush_stdio()
    # wait for threads like a normal exit; the zygote never imports threading (its
    # at-fork hook alone costs each child ~120 copy-on-write faults), so a run that
    # started none has none to wait for
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException:  # noqa: BLE001
            pass
    flush_stdio()
    os._exit(code)


# ---------------------------------------------------------------- one-shot program
def run_program(payload: dict[str, Any]) -> None:
    code = 0
    try:
        setup_stdio()
        write_files(payload.get("files") or {})
        sys.argv = ["main.py"]
        sys.path.insert(0, os.getcwd())
        source = payload["code"]
        register_source("<main>", source)
        mod = new_main_module()
        try:
            compiled = compile(source, "<main>", "exec")
        except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
            emit({"exc": type(e).__name__, "msg": str(e)[:MAX_MSG], "phase": "compile"})
            print_traceback(e)
            code = 1
        else:
            exec(compiled, mod.__dict__)
    except SystemExit as e:
        code = exit_code_of(e)
    except BaseException as e:  # noqa: BLE001 - report, like the interpreter would
        print_traceback(e)
        try:
            emit({"exc": type(e).__name__, "msg": str(e)[:MAX_MSG]})
        except BaseException:  # noqa: BLE001
            pass
        code = 1
    finally:
        finish(code)


def await_code(fd: int) -> dict[str, Any]:
    """A spare child's wait for its run: one message on socket `fd`, b"I" + JSON payload
    or b"M" with the payload in the first fd passed; a stdin fd (if any) comes last.
    EOF (the server dropped the spare): exit quietly."""
    import array
    import socket

    sock = socket.socket(fileno=fd)
    msg, anc, _, _ = sock.recvmsg(caps.CODE_INLINE + 64, socket.CMSG_LEN(8))
    sock.close()
    if not msg:
        os._exit(0)
    got = array.array("i")
    for _level, _kind, data in anc:  # SCM_RIGHTS only: nothing else is sent on it
        got.frombytes(data[: len(data) - len(data) % got.itemsize])
    fds = list(got)
    if msg[:1] == b"M":
        data = os.pread(fds[0], os.fstat(fds[0]).st_size, 0)
        os.close(fds.pop(0))
    else:
        data = msg[1:]
    if fds:
        os.dup2(fds[0], 0)
        os.close(fds[0])
    payload: dict[str, Any] = json.loads(data)
    return payload


# ---------------------------------------------------------------- function cases
def load_solution(source: str, entry_point: str | None) -> tuple[types.ModuleType, Any]:
    register_source("solution.py", source)
    mod = new_main_module("solution", "solution.py")
    exec(compile(source, "solution.py", "exec"), mod.__dict__)
    if entry_point is None:
        return mod, None
    if entry_point not in mod.__dict__:
        raise NameError(f"entry point {entry_point!r} is not defined")
    fn = mod.__dict__[entry_point]
    if not callable(fn):
        raise TypeError(f"entry point {entry_point!r} is not callable")
    return mod, fn


def run_cases(payload: dict[str, Any]) -> None:
    setup_stdio()
    sys.path.insert(0, os.getcwd())
    try:
        _, fn = load_solution(payload["source"], payload["entry_point"])
    except BaseException as e:  # noqa: BLE001 - includes SystemExit at import time
        print_traceback(e)
        emit({"load_error": fmt_exc(e)})
        finish(1)
    emit({"loaded": True})
    for i, (args, kwargs) in enumerate(payload["cases"]):
        try:
            value = fn(*decode(args), **decode(kwargs))
        except Exception as e:  # noqa: BLE001
            emit({"i": i, "s": "error", "e": fmt_exc(e)})
            continue
        except BaseException as e:  # noqa: BLE001 - exit/abort: the rest are failures
            emit({"i": i, "s": "error", "e": fmt_exc(e)})
            finish(1)
        try:
            line = dumps({"i": i, "s": "ok", "o": to_plain(value)})
            if len(line) > MAX_LINE:
                raise Unserializable(f"output too large ({len(line)} bytes)")
        except (Unserializable, ValueError, RecursionError, MemoryError) as e:
            emit({"i": i, "s": "unserializable", "e": fmt_exc(e)})
            continue
        except BaseException as e:  # noqa: BLE001 - e.g. a __hash__ that exits
            emit({"i": i, "s": "unserializable", "e": fmt_exc(e)})
            finish(1)
        os.write(RESULT_FD, (line + "\n").encode())
    finish(0)


# ---------------------------------------------------------------- run_assertions
def serve_calls(payload: dict[str, Any]) -> None:
    """Candidate side: answer calls (plain args in, plain result out) until EOF."""
    setup_stdio()
    sys.path.insert(0, os.getcwd())
    load_error = None
    mod: types.ModuleType | None = None
    try:
        mod, _ = load_solution(payload["source"], payload["entry_point"])
    except BaseException as e:  # noqa: BLE001
        print_traceback(e)
        load_error = fmt_exc(e)
    emit({"load_error": load_error} if load_error else {"loaded": True})
    requests = os.fdopen(REQUEST_FD, "rb", buffering=1 << 16)
    for raw in requests:
        req = json.loads(raw)
        cid = req.get("id")
        if load_error is not None or mod is None:
            emit(
                {"id": cid, "exc": "RuntimeError", "msg": f"solution failed to load: {load_error}"}
            )
            continue
        fn = mod.__dict__.get(req["fn"])
        if not callable(fn):
            emit({"id": cid, "exc": "NameError", "msg": f"name {req['fn']!r} is not defined"})
            continue
        try:
            value = fn(*decode(req["a"]), **decode(req["k"]))
        except Exception as e:  # noqa: BLE001
            emit({"id": cid, "exc": type(e).__name__, "msg": str(e)[:MAX_MSG]})
            continue
        except BaseException as e:  # noqa: BLE001
            emit({"id": cid, "exc": type(e).__name__, "msg": str(e)[:MAX_MSG], "fatal": True})
            finish(1)
        try:
            emit({"id": cid, "ok": encode(value)})
        except (Unserializable, RecursionError, ValueError) as e:
            emit({"id": cid, "exc": "TypeError", "msg": f"return value: {e}"})
    finish(0)


class CandidateError(Exception):
    """The candidate raised an exception that is not a builtin type."""


class _Proxy:
    """Stands in for a candidate function inside the test process."""

    def __init__(self, conn: _Conn, name: str) -> None:
        self._conn, self.__name__ = conn, name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._conn.call(self.__name__, args, kwargs)

    def __repr__(self) -> str:
        return f"<sandboxed candidate function {self.__name__}>"


class _Conn:
    def __init__(self) -> None:
        self.next_id = 0
        self.replies = os.fdopen(REQUEST_FD, "rb", buffering=1 << 16)

    def call(self, name: str, args: tuple, kwargs: dict) -> Any:
        try:
            a, k = encode(args), encode(kwargs)
        except Unserializable as e:
            raise TypeError(f"test passed a non-plain argument to the candidate: {e}") from None
        self.next_id += 1
        emit({"call": {"id": self.next_id, "fn": name, "a": a, "k": k}})
        raw = self.replies.readline()
        if not raw:
            raise RuntimeError("lost connection to the candidate")
        rep = json.loads(raw)
        if "ok" in rep:
            return decode(rep["ok"])
        exc_name, msg = str(rep.get("exc", "RuntimeError")), str(rep.get("msg", ""))
        exc_type = getattr(builtins, exc_name, None)
        if (
            isinstance(exc_type, type)
            and issubclass(exc_type, Exception)
            and exc_type.__module__ == "builtins"
        ):
            try:
                exc = exc_type(msg)
            except Exception:  # noqa: BLE001 - e.g. UnicodeDecodeError needs 5 args
                exc = None
            if exc is not None:
                raise exc
        raise CandidateError(f"{exc_name}: {msg}" if msg else exc_name)


def _assert_message(e: BaseException, filename: str) -> str:
    text = fmt_exc(e)
    if isinstance(e, AssertionError) and not str(e):
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == filename]
        if frames and frames[-1].line:
            text = f"AssertionError: {frames[-1].line.strip()}"[:MAX_MSG]
    return text


def run_tests(payload: dict[str, Any]) -> None:
    """Test side: the candidate exists here only as proxies; verdicts go to fd 3."""
    setup_stdio()
    conn = _Conn()
    entry = payload["entry_point"]
    solution = types.ModuleType("solution")
    solution.__getattr__ = lambda name: _Proxy(conn, name)  # type: ignore[method-assign]
    sys.modules["solution"] = solution
    sys.modules["pytest"] = pytest_shim.module()
    filename = "test_solution.py"
    source = payload["test_code"]
    register_source(filename, source)
    mod = new_main_module("test_solution", filename)
    proxy = _Proxy(conn, entry)
    mod.__dict__.update({entry: proxy, "candidate": proxy})
    try:
        exec(compile(source, filename, "exec"), mod.__dict__)
    except BaseException as e:  # noqa: BLE001
        print_traceback(e)
        emit({"load_error": f"test code: {fmt_exc(e)}"})
        finish(1)
    ns = mod.__dict__
    names = [
        n
        for n, v in ns.items()
        if n.startswith("test")
        and isinstance(v, types.FunctionType)
        and v.__module__ == "test_solution"
    ]
    tests: list[tuple[str, Any]] = [(n, ns[n]) for n in names]
    if not tests and isinstance(ns.get("check"), types.FunctionType):
        tests = [("check", lambda: ns["check"](proxy))]
    emit({"tests": [n for n, _ in tests]})
    for name, fn in tests:
        try:
            if name != "check" and fn.__code__.co_argcount:
                raise TypeError("test functions with arguments (fixtures) are not supported")
            fn()
        except BaseException as e:  # noqa: BLE001 - skip/exit/anything: not passed
            emit({"t": name, "p": False, "m": _assert_message(e, filename)})
        else:
            emit({"t": name, "p": True, "m": ""})
    finish(0)


# ---------------------------------------------------------------- persistent kernel
def _exec_cell(source: str, ns: dict[str, Any]) -> None:
    tree = ast.parse(source, "<cell>", "exec")
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    exec(compile(tree, "<cell>", "exec"), ns)
    if last is not None:
        value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), ns)
        if value is not None:
            ns["_"] = value
            print(repr(value))


def kernel_loop(ctl_fd: int) -> None:
    """REPL semantics: one namespace; each message = one cell with its own stdio fds."""
    import socket

    ctl = socket.socket(fileno=ctl_fd)
    ns: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
    sys.modules["__main__"] = types.ModuleType("__main__")
    sys.modules["__main__"].__dict__.update(ns)
    ns = sys.modules["__main__"].__dict__
    sys.path.insert(0, os.getcwd())
    devnull = os.open(os.devnull, os.O_RDWR)
    while True:
        # b"I" + the JSON payload, or b"M" with it in a memfd first; then stdin, stdout, stderr
        msg, fds, _, _ = socket.recv_fds(ctl, caps.CODE_INLINE + 64, 4)
        inline = msg[:1] == b"I"
        if not msg or len(fds) != (3 if inline else 4):
            os._exit(0)
        if inline:
            payload = json.loads(msg[1:])
        else:
            payload = json.loads(os.pread(fds[0], os.fstat(fds[0]).st_size, 0))
            os.close(fds.pop(0))
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
            os.close(fd)
        setup_stdio()
        reply: dict[str, Any] = {"exit": 0}
        try:
            write_files(payload.get("files") or {})
            register_source("<cell>", payload["code"])
            _exec_cell(payload["code"], ns)
        except SystemExit as e:
            reply["exit"] = exit_code_of(e)
        except BaseException as e:  # noqa: BLE001
            print_traceback(e)
            reply = {"exit": 1, "exc": type(e).__name__, "msg": str(e)[:MAX_MSG]}
        flush_stdio()
        for target in (0, 1, 2):
            os.dup2(devnull, target)
        ctl.send(dumps(reply).encode())


KINDS = {"run": run_program, "cases": run_cases, "serve": serve_calls, "tests": run_tests}
