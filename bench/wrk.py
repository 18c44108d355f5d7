"""HTTP load from wrk, and the server's CPU per request read from /proc.

A Python client process takes CPU from the server it measures, and the loop's own cost flatters a
cheap endpoint less than a dear one: measured with Python clients, the SQLite check/ping ratio read
0.81; driven by wrk (Debian's C load generator, ``apt-get install wrk``) it is 0.54-0.64. So the HTTP
benchmarks drive their load with wrk and report, beside requests per second, the CPU milliseconds
the web processes and the database server spent per request — the figure that stays put on a
machine shared with other jobs, where throughput swings with the neighbours.

The database's share is the CPU of the PostgreSQL backends serving the benchmark database (found
through ``pg_stat_activity``); with SQLite the database runs inside the web processes.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_MARK = "WRK-RESULT "

# wrk calls request() for every request and done() once at the end; done() prints one JSON line.
_DONE_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d,'
    .. ' "status": %%d, "timeout": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
_LUA = (
    """
local paths = {%(paths)s}
local headers = {%(headers)s}
local method = %(method)s
local body = %(body)s
local n = 0
math.randomseed(%(seed)d)

request = function()
  n = n + 1
  return wrk.format(method, paths[math.random(#paths)], headers, body)
end
"""
    + _DONE_LUA
)
# Each request POSTs the next of ``bodies`` (then starts over): one wrk thread, so one counter.
_BODIES_LUA = (
    """
local path = %(path)s
local headers = {%(headers)s}
local bodies = {%(bodies)s}
local n = 0

request = function()
  n = n + 1
  return wrk.format("POST", path, headers, bodies[(n - 1) %% #bodies + 1])
end
"""
    + _DONE_LUA
)


def _lua_string(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Lua string literal for these ASCII values


def wrk_path() -> str:
    """The wrk binary; installed from Debian's packages when missing and this process may."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install wrk) ...", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, stdout=subprocess.DEVNULL)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit("wrk is needed for the HTTP benchmarks: apt-get install wrk")


def wrk_script(
    path: Path,
    *,
    paths: Iterable[str],
    headers: dict[str, str] | None = None,
    method: str = "GET",
    body: str | None = None,
    seed: int = 1,
) -> Path:
    """Write a wrk Lua script that sends ``method`` to a random one of ``paths`` with ``headers``."""
    values = list(paths)
    if not values:
        raise ValueError("wrk_script needs at least one path")
    path.write_text(
        _LUA
        % {
            "paths": ", ".join(_lua_string(value) for value in values),
            "headers": ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()),
            "method": _lua_string(method),
            "body": _lua_string(body) if body is not None else "nil",
            "seed": seed,
            "mark": _MARK,
        }
    )
    return path


def wrk_script_bodies(path: Path, *, url_path: str, bodies: list[str], headers: dict[str, str] | None = None) -> Path:
    """Write a wrk Lua script that POSTs each of ``bodies`` to ``url_path`` in turn (run it with one thread).

    For writes that must not repeat (each body carries new ids): give more bodies than the run can
    send, or count what the server stored rather than the requests.
    """
    if not bodies or any("]=====]" in body for body in bodies):
        raise ValueError("wrk_script_bodies needs bodies, none containing ']=====]'")
    path.write_text(
        _BODIES_LUA
        % {
            "path": _lua_string(url_path),
            "headers": ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in (headers or {}).items()),
            # Long brackets: the bodies go in as they are, no escaping.
            "bodies": ",\n".join(f"[=====[{body}]=====]" for body in bodies),
            "mark": _MARK,
        }
    )
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # socket errors, timeouts and answers outside 2xx/3xx
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk_run(url: str, *, script: Path, seconds: float, connections: int, threads: int = 1) -> WrkResult:
    """Run wrk against ``url`` (scheme, host and port; the script picks the paths) for ``seconds``."""
    completed = subprocess.run(
        [
            wrk_path(),
            "--threads",
            str(threads),
            "--connections",
            str(max(connections, threads)),
            "--duration",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "--script",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    for line in completed.stdout.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line.removeprefix(_MARK))
            return WrkResult(
                requests=raw["requests"],
                seconds=raw["duration_us"] / 1e6,
                errors=raw["connect"] + raw["read"] + raw["write"] + raw["status"] + raw["timeout"],
                p50_ms=raw["p50_us"] / 1000,
                p95_ms=raw["p95_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
            )
    raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")


def process_cpu() -> tuple[dict[int, int], dict[int, float]]:
    """Every process's parent and user + system CPU seconds (Linux /proc)."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    return parents, times


def with_descendants(roots: Iterable[int], parents: dict[int, int]) -> set[int]:
    wanted = set(roots)
    while children := {pid for pid, parent in parents.items() if parent in wanted} - wanted:
        wanted |= children
    return wanted


def postgres_backends(database_url: str) -> Callable[[], set[int]]:
    """A function listing the server processes now connected to the database of ``database_url``.

    Run on the database server's host (the benchmarks start everything on one machine).
    """
    import psycopg

    def backends() -> set[int]:
        with psycopg.connect(database_url, autocommit=True) as connection:
            rows = connection.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        return {row[0] for row in rows}

    return backends


@dataclass(frozen=True)
class CpuUse:
    web_seconds: float
    database_seconds: float


class CpuMeter:
    """CPU spent by the web server's process tree and the database's backends between two readings.

    Backends are listed at each reading (persistent connections keep them), and only the CPU of
    processes present at both readings counts, so a process that came or went does not add its
    whole lifetime.
    """

    def __init__(self, web_root_pids: list[int], database_pids: Callable[[], set[int]] | None = None) -> None:
        self.web_root_pids = web_root_pids
        self.database_pids = database_pids
        self._start: tuple[set[int], set[int], dict[int, float]] | None = None

    def _reading(self) -> tuple[set[int], set[int], dict[int, float]]:
        database = self.database_pids() if self.database_pids else set()
        parents, times = process_cpu()
        return with_descendants(self.web_root_pids, parents), database, times

    def start(self) -> None:
        self._start = self._reading()

    def stop(self) -> CpuUse:
        if self._start is None:
            raise RuntimeError("CpuMeter.stop() before start()")
        web_before, database_before, before = self._start
        web_after, database_after, after = self._reading()
        self._start = None

        def spent(pids: set[int]) -> float:
            return sum(after[pid] - before[pid] for pid in pids if pid in before and pid in after)

        return CpuUse(spent(web_before & web_after), spent(database_before & database_after))


@dataclass(frozen=True)
class Phase:
    """One endpoint under wrk for one phase: throughput, latency and the server's CPU per request."""

    result: WrkResult
    cpu: CpuUse

    @property
    def web_ms(self) -> float:
        return self.cpu.web_seconds * 1000 / max(self.result.requests, 1)

    @property
    def database_ms(self) -> float:
        return self.cpu.database_seconds * 1000 / max(self.result.requests, 1)

    @property
    def cpu_ms(self) -> float:
        return self.web_ms + self.database_ms


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_start(env: dict[str, str], port: int, *, workers: int = 2) -> subprocess.Popen:
    """gunicorn (sync workers) serving the portal on ``port`` with ``env``; returns once it answers."""
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "portal.wsgi",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/v1/ping")
            if conn.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    sys.exit("gunicorn did not start")
