"""The forged optimize score of the shared-channels review, replayed through the real
server: a grading run's inputs carried out over System V shared memory, answered in
one-shot runs, looked up by a submitted O(n^2) starter. With a private IPC namespace
per run (or seccomp refusing System V IPC) nothing crosses, and the starter is graded
as what it is."""

from __future__ import annotations

import json

from websockets.sync.client import connect

TASK = "optimize-has-duplicates"
SHM = """
import ctypes, json
_libc = ctypes.CDLL(None, use_errno=True)
_libc.shmat.restype = ctypes.c_void_p
_libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
KEY, SIZE = 0x5E5511, 64 << 20

def _segment(create):
    sid = _libc.shmget(KEY, SIZE, 0o1666 if create else 0)
    if sid < 0:
        return None
    addr = _libc.shmat(sid, None, 0)
    return None if addr in (None, 2**64 - 1) else addr

def load():
    addr = _segment(False)
    if addr is None:
        return None
    n = ctypes.c_uint64.from_address(addr).value
    return json.loads(ctypes.string_at(addr + 8, n)) if n else {}

def store(obj):
    addr = _segment(True)
    if addr is None:
        return False
    data = json.dumps(obj).encode()
    ctypes.memmove(addr + 8, data, len(data))
    ctypes.c_uint64.from_address(addr).value = len(data)
    return True
"""
SLOW = """
def _slow(items):
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            if items[i] == items[j]:
                return True
    return False
"""
CAPTURE = (  # episode 1: hand every graded input out of the grading run
    SHM + SLOW + "def has_duplicates(items):\n"
    "    st = load() or {}\n"
    "    st.setdefault('inputs', []).append(list(items))\n"
    "    store(st)\n"
    "    return len(set(items)) != len(items)\n"
)
ANSWER = (  # a one-shot run: compute the answers to the captured inputs, store them
    SHM + "st = load()\n"
    "if st is None:\n"
    "    print('no segment')\n"
    "else:\n"
    "    st['answers'] = {str(hash(tuple(x))): len(set(x)) != len(x) for x in st['inputs']}\n"
    "    print('answered', len(st['answers']), store(st))\n"
)
LOOKUP = (  # episode 2: the quadratic starter, plus a table lookup
    SHM + SLOW + "_ANSWERS = (load() or {}).get('answers', {})\n"
    "def has_duplicates(items):\n"
    "    key = str(hash(tuple(items)))\n"
    "    if key in _ANSWERS:\n"
    "        return _ANSWERS[key]\n"
    "    return _slow(items)\n"
)


def _send(ws, message: dict) -> dict:
    ws.send(json.dumps(message))
    return json.loads(ws.recv(timeout=180))


def _submit(ws_url: str, code: str) -> dict:
    with connect(ws_url) as ws:
        _send(ws, {"type": "reset", "data": {"task_id": TASK}})
        _send(ws, {"type": "step", "data": {"kind": "edit", "code": code}})
        return _send(ws, {"type": "step", "data": {"kind": "submit"}})["data"]


def test_the_shared_memory_forgery_of_an_optimize_score_fails(server) -> None:
    _submit(server.ws_url, CAPTURE)
    with connect(server.ws_url) as ws:  # another session, as the attacker used
        _send(ws, {"type": "reset", "data": {}})
        run = _send(ws, {"type": "step", "data": {"code": ANSWER, "persistent": False}})
        assert run["data"]["observation"]["run"]["stdout"] == "no segment\n", run
        run = _send(ws, {"type": "step", "data": {"code": ANSWER}})  # nor its kernel
        assert run["data"]["observation"]["run"]["stdout"] == "no segment\n", run
    grade = _submit(server.ws_url, LOOKUP)["observation"]["grade"]
    assert grade["score"] < 1.0 and not grade["passed"], grade
