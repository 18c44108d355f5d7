"""The benchmarks' load generator (wrk) and CPU meter, run for real against a tiny local server."""

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.wrk import CpuMeter, wrk_path, wrk_run, wrk_script, wrk_script_bodies


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: set[tuple[str, str, str | None]] = set()
    posted: list[tuple[str, str | None, str]] = []

    def do_GET(self) -> None:
        type(self).seen.add((self.command, self.path, self.headers.get("X-Bench")))
        status = 200 if self.path in ("/a", "/b") else 404
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        type(self).posted.append((self.path, self.headers.get("X-Bench"), body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.seen = set()
    _Handler.posted = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_wrk_is_there_or_installed() -> None:
    assert Path(wrk_path()).is_file()


def test_wrk_sends_the_scripts_paths_and_headers_and_reports_what_came_back(server: str, tmp_path: Path) -> None:
    script = wrk_script(tmp_path / "ok.lua", paths=["/a", "/b"], headers={"X-Bench": "yes"})

    result = wrk_run(server, script=script, seconds=1, connections=2)

    assert result.requests > 10
    assert result.errors == 0
    assert 0.5 < result.seconds < 5
    assert result.rate == pytest.approx(result.requests / result.seconds)
    assert 0 < result.p50_ms <= result.p95_ms <= result.p99_ms
    assert _Handler.seen == {("GET", "/a", "yes"), ("GET", "/b", "yes")}


def test_wrk_counts_answers_outside_2xx_as_errors(server: str, tmp_path: Path) -> None:
    script = wrk_script(tmp_path / "missing.lua", paths=["/missing"])

    result = wrk_run(server, script=script, seconds=1, connections=1)

    assert result.requests > 0
    assert result.errors == result.requests


def test_a_bodies_script_posts_each_body_in_turn_as_it_is(server: str, tmp_path: Path) -> None:
    bodies = [f'{{"n": {n}, "text": "quotes \\" and brackets ]] and 50%"}}' for n in range(500)]
    script = wrk_script_bodies(tmp_path / "bodies.lua", url_path="/ingest", bodies=bodies, headers={"X-Bench": "b"})

    result = wrk_run(server, script=script, seconds=1, connections=1)

    assert result.errors == 0
    sent = [body for _path, _header, body in _Handler.posted]
    # wrk builds one request to check the script before it starts, and stops with one in flight.
    assert sent
    assert abs(len(sent) - result.requests) <= 1
    first = bodies.index(sent[0])
    assert first <= 1
    assert sent == [bodies[(first + n) % len(bodies)] for n in range(len(sent))]
    assert {(path, header) for path, header, _body in _Handler.posted} == {("/ingest", "b")}


def test_a_script_needs_a_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least one path"):
        wrk_script(tmp_path / "none.lua", paths=[])


_SPINNER = """
import os, sys, time
child = os.fork()  # the meter counts a process's descendants too: the child does the work
if child:
    os.waitpid(child, 0)
    time.sleep(60)
else:
    print("ready", flush=True)
    sys.stdin.readline()
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
    print("done", flush=True)
    time.sleep(60)
"""


def test_cpu_meter_counts_the_cpu_of_a_process_tree_between_two_readings() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", _SPINNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdin is not None
    assert process.stdout is not None
    try:
        assert process.stdout.readline().strip() == "ready"
        meter = CpuMeter([process.pid])
        meter.start()
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "done"
        use = meter.stop()
    finally:
        process.kill()
        process.wait()

    assert 0.3 <= use.web_seconds <= 2.0
    assert use.database_seconds == 0


def test_cpu_meter_must_start_before_it_stops() -> None:
    with pytest.raises(RuntimeError):
        CpuMeter([1]).stop()
