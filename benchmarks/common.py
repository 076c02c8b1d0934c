"""Shared parts of the benchmarks: a raw WebSocket session, a /proc process-tree
monitor, statistics, the machine description and result writing (the server is started
by the package's own launcher).

Everything talks to 127.0.0.1 only. The server runs in its own process: the benchmarks
measure it as a user sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_env.server.launcher import descendants

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- a raw WebSocket session (OpenEnv's /ws protocol, minimal client overhead) ----------


class WSError(RuntimeError):
    """The server answered with an error message (or not at all in time)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"[{code}] {message}")
        self.code = code


class Session:
    """One OpenEnv WebSocket session: JSON in, JSON out, nothing parsed into models."""

    def __init__(self, ws_url: str, timeout_s: float = 60.0):
        self.ws_url = ws_url
        self.timeout_s = timeout_s
        self.ws: Any = None

    async def open(self) -> Session:
        from websockets.asyncio.client import connect

        self.ws = await asyncio.wait_for(
            connect(
                self.ws_url,
                max_size=64 * 1024 * 1024,
                ping_interval=None,  # no keepalive traffic in the measurements
                open_timeout=self.timeout_s,
                compression=None,
            ),
            timeout=self.timeout_s,
        )
        return self

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(json.dumps(message))
        raw = await asyncio.wait_for(self.ws.recv(), timeout=self.timeout_s)
        reply = json.loads(raw)
        if reply.get("type") == "error":
            data = reply.get("data") or {}
            raise WSError(str(data.get("code")), str(data.get("message"))[:500])
        return reply["data"]

    async def reset(self, **options: Any) -> dict[str, Any]:
        return await self.request({"type": "reset", "data": options})

    async def step(self, **action: Any) -> dict[str, Any]:
        """Returns {"observation": {...}, "reward": r, "done": d}."""
        return await self.request({"type": "step", "data": action})

    async def state(self) -> dict[str, Any]:
        return await self.request({"type": "state"})

    async def close(self) -> None:
        if self.ws is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.send(json.dumps({"type": "close"})), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), timeout=5)
        self.ws = None

    async def __aenter__(self) -> Session:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def open_sessions(
    ws_url: str, n: int, parallel: int = 32, timeout_s: float = 60.0
) -> list[Session]:
    """Open `n` sessions, at most `parallel` handshakes at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one() -> Session:
        async with gate:
            return await Session(ws_url, timeout_s).open()

    results = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    sessions = [r for r in results if isinstance(r, Session)]
    errors = [r for r in results if not isinstance(r, Session)]
    if errors:
        await asyncio.gather(*(s.close() for s in sessions))
        raise RuntimeError(f"{len(errors)}/{n} sessions failed to open: {errors[0]!r}")
    return sessions


# -- /proc: the server's process tree ---------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    return raw[raw.rfind(")") + 2 :].split()


def tree(pid: int) -> list[int]:
    return [pid, *descendants(pid)]


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime+stime of each process plus the times of its children it has waited for."""
    ticks = 0
    for pid in pids:
        f = _stat_fields(pid)
        if f:  # fields after ')': state=0 ... utime=11 stime=12 cutime=13 cstime=14
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def cpu_split(root: int) -> dict[str, float]:
    """CPU seconds so far, split: the root process itself, its live descendants
    themselves (zygotes, kernels), and the exited processes they have waited for (the
    one-shot/grading children, closed kernels)."""
    out = {"server": 0.0, "descendants": 0.0, "reaped_children": 0.0}
    for pid in tree(root):
        f = _stat_fields(pid)
        if not f:
            continue
        own, reaped = int(f[11]) + int(f[12]), int(f[13]) + int(f[14])
        if pid == root:
            out["server"] += own / CLK_TCK
            out["reaped_children"] += reaped / CLK_TCK
        else:
            out["descendants"] += own / CLK_TCK
            out["reaped_children"] += reaped / CLK_TCK
    return out


def rss_bytes(pids: Sequence[int]) -> int:
    total = 0
    for pid in pids:
        f = _stat_fields(pid)
        if f:
            total += int(f[21]) * PAGE  # rss in pages
    return total


def pss_bytes(pids: Sequence[int]) -> int:
    """Proportional set size (shared pages split between sharers): the honest sum."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def vm_hwm_bytes(pid: int) -> int:
    """Peak RSS of one process (VmHWM)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class TreeStats:
    wall_s: float
    cpu_s: float
    cpu_cores: float
    rss_peak_mb: float
    pss_peak_mb: float
    procs_peak: int
    procs_end: int
    server_hwm_mb: float
    client_cpu_s: float
    cpu_split_s: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if isinstance(v, dict):
                v = {kk: round(vv, 3) for kk, vv in v.items()}
            out[k] = round(v, 3) if isinstance(v, float) else v
        return out


class TreeMonitor:
    """Samples the server's process tree in a thread: process count, summed RSS and PSS.

    CPU is the difference of (utime+stime+cutime+cstime) summed over the tree between
    start and stop: processes that exited in between were waited for by a parent in the
    tree, so their time is in that parent's cutime/cstime.
    """

    def __init__(self, pid: int, interval_s: float = 0.5, pss_every: int = 2):
        self.pid = pid
        self.interval_s = interval_s
        self.pss_every = pss_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rss_peak = 0
        self.pss_peak = 0
        self.procs_peak = 0

    def _sample(self, n: int) -> None:
        pids = tree(self.pid)
        self.procs_peak = max(self.procs_peak, len(pids))
        self.rss_peak = max(self.rss_peak, rss_bytes(pids))
        if n % self.pss_every == 0:
            self.pss_peak = max(self.pss_peak, pss_bytes(pids))

    def _loop(self) -> None:
        n = 0
        while not self._stop.wait(self.interval_s):
            n += 1
            self._sample(n)

    def start(self) -> TreeMonitor:
        self._t0 = time.perf_counter()
        self._cpu0 = cpu_seconds(tree(self.pid))
        self._split0 = cpu_split(self.pid)
        self._client0 = _self_cpu()
        self._sample(0)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> TreeStats:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._sample(0)
        pids = tree(self.pid)
        wall = time.perf_counter() - self._t0
        cpu = cpu_seconds(pids) - self._cpu0
        split1 = cpu_split(self.pid)
        split = {k: split1[k] - self._split0[k] for k in split1}
        return TreeStats(
            wall_s=wall,
            cpu_s=cpu,
            cpu_cores=cpu / wall if wall > 0 else 0.0,
            rss_peak_mb=self.rss_peak / 2**20,
            pss_peak_mb=self.pss_peak / 2**20,
            procs_peak=self.procs_peak,
            procs_end=len(pids),
            server_hwm_mb=vm_hwm_bytes(self.pid) / 2**20,
            client_cpu_s=_self_cpu() - self._client0,
            cpu_split_s=split,
        )


def _self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- statistics and reporting -----------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank-interpolated percentile (q in [0, 100])."""
    if not values:
        return float("nan")
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summarize_ms(samples_s: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000.0 for s in samples_s]
    if not ms:
        return {"n": 0}
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
        "min_ms": round(min(ms), 3),
        "max_ms": round(max(ms), 3),
    }


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return {
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_gb": round(mem_gb, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
    return path


def run_and_record(
    name: str, quick: bool, run: Callable[[], Any], chart: Callable[[dict, Path], None]
) -> tuple[dict[str, Any], Path, Path]:
    """Run a benchmark coroutine, stamp its time and the load at the end, and write
    `results/<name>[_quick].json` and its PNG chart."""
    t0 = time.perf_counter()
    result = asyncio.run(run())
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    result["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    path = write_json(f"{name}{'_quick' if quick else ''}.json", result)
    png = path.with_suffix(".png")
    chart(result, png)
    return result, path, png


def pyplot():
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class Deadline:
    """A time budget: `left()` seconds remain, `over()` once it is spent."""

    seconds: float
    t0: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.t0)

    def over(self) -> bool:
        return self.left() <= 0
