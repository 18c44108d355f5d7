"""The run command's supervisor, with real (tiny) child processes."""

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from django.core.management import call_command

from portal.management.commands.runall import Command
from portal.supervisor import Supervisor

PY = sys.executable


def program(code: str) -> list[str]:
    return [PY, "-c", code]


def crasher(log: Path) -> list[str]:
    """Writes the time it started to ``log``, then exits with status 1."""
    return program(f"import sys, time; open({str(log)!r}, 'a').write(f'{{time.time()}}\\n'); sys.exit(1)")


def starts(log: Path) -> list[float]:
    return [float(line) for line in log.read_text().split()] if log.exists() else []


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class Running:
    """A supervisor running in a thread, stopped (and its children with it) on exit."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        self.thread = threading.Thread(target=supervisor.run)

    def __enter__(self) -> Supervisor:
        self.thread.start()
        wait_until(lambda: all(child.process is not None for child in self.supervisor.children))
        return self.supervisor

    def __exit__(self, *exc: object) -> None:
        self.supervisor.request_stop()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive()


def test_the_backoff_doubles_from_one_second_up_to_thirty():
    supervisor = Supervisor({})
    assert [supervisor.backoff(n) for n in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_crashed_child_is_restarted_with_growing_delays_up_to_the_maximum(tmp_path, caplog):
    log = tmp_path / "starts"
    supervisor = Supervisor(
        {"crashy": crasher(log), "steady": program("import time; time.sleep(60)")},
        backoff_initial=0.2,
        backoff_max=0.8,
        poll_interval=0.02,
    )
    with caplog.at_level(logging.INFO, logger="portal.supervisor"), Running(supervisor):
        steady_pid = supervisor.children[1].process.pid
        wait_until(lambda: len(starts(log)) >= 6, timeout=20)
        assert supervisor.children[1].process.pid == steady_pid, "the others are left alone"

    gaps = [b - a for a, b in zip(starts(log), starts(log)[1:], strict=False)]
    # Each gap is the backoff plus the time the child takes to start and exit again.
    for gap, delay in zip(gaps, [0.2, 0.4, 0.8, 0.8, 0.8], strict=False):
        assert delay <= gap <= delay + 1.5, gaps
    exits = [r.getMessage() for r in caplog.records if "exited" in r.getMessage()]
    assert all(m.startswith("crashy exited with status 1 after ") for m in exits)
    assert [m.rsplit(" ", 2)[1] for m in exits[:4]] == ["0.2", "0.4", "0.8", "0.8"]
    restarted = [r for r in caplog.records if r.getMessage().startswith("restarted crashy (pid ")]
    assert len(restarted) >= 5
    assert all(r.levelno == logging.INFO for r in restarted)
    assert all(r.levelno == logging.WARNING for r in caplog.records if "exited" in r.getMessage())


def test_a_child_that_ran_stable_is_restarted_after_the_initial_delay_again(tmp_path, caplog):
    log = tmp_path / "starts"
    slow_crasher = program(
        f"import sys, time; open({str(log)!r}, 'a').write(f'{{time.time()}}\\n'); time.sleep(0.6); sys.exit(3)"
    )
    supervisor = Supervisor(
        {"slow": slow_crasher}, backoff_initial=0.1, backoff_max=5, stable_after=0.5, poll_interval=0.02
    )
    with caplog.at_level(logging.INFO, logger="portal.supervisor"), Running(supervisor):
        wait_until(lambda: len(starts(log)) >= 4, timeout=20)

    delays = [r.getMessage().rsplit(" in ", 1)[1] for r in caplog.records if "exited with status 3" in r.getMessage()]
    assert delays[:3] == ["0.1 s", "0.1 s", "0.1 s"]
    assert supervisor.children[0].exits == 1


def test_stopping_terminates_every_child_and_kills_the_stubborn_and_their_strays(tmp_path, caplog):
    stray_pid_file = tmp_path / "stray"
    stubborn = program("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")
    with_stray = program(
        "import subprocess, sys, time;"
        f" p = subprocess.Popen([{PY!r}, '-c', 'import time; time.sleep(60)']);"
        f" open({str(stray_pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    supervisor = Supervisor(
        {"polite": program("import time; time.sleep(60)"), "stubborn": stubborn, "parent": with_stray},
        stop_grace=1.0,
        poll_interval=0.02,
    )
    with caplog.at_level(logging.INFO, logger="portal.supervisor"):
        with Running(supervisor):
            wait_until(stray_pid_file.exists)
            wait_until(lambda: stray_pid_file.read_text() != "")
            time.sleep(0.3)  # the stubborn child has installed its handler
        stopped_at = time.monotonic()

    assert all(child.process.poll() is not None for child in supervisor.children)
    stubborn_status = supervisor.children[1].process.returncode
    assert stubborn_status == -signal.SIGKILL
    assert supervisor.children[0].process.returncode == -signal.SIGTERM
    wait_until(lambda: not alive(int(stray_pid_file.read_text())), timeout=5)
    messages = [r.getMessage() for r in caplog.records]
    assert "stubborn did not stop within 1 s; killing it" in messages
    assert {"stopped polite", "stopped stubborn", "stopped parent"} <= set(messages)
    assert not any("restart" in m for m in messages)
    assert time.monotonic() - stopped_at < 5


def test_runall_restarts_a_crashed_child_and_stops_everything_on_sigterm(tmp_path, monkeypatch, caplog):
    log = tmp_path / "starts"
    steady = program("import time; time.sleep(60)")
    monkeypatch.setattr(Command, "processes", lambda self, addr: {"worker": crasher(log), "web": steady})
    timer = threading.Timer(3.5, os.kill, (os.getpid(), signal.SIGTERM))
    handler_before = signal.getsignal(signal.SIGTERM)

    timer.start()
    try:
        with caplog.at_level(logging.INFO, logger="portal.supervisor"):
            call_command("runall")
    finally:
        timer.cancel()

    assert len(starts(log)) == 2, "started, crashed, restarted after 1 s, crashed again"
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("restarted worker (pid ") for m in messages)
    assert "stopped web" in messages
    assert signal.getsignal(signal.SIGTERM) is handler_before


@pytest.mark.parametrize("name", ["web", "worker", "beat", "partner"])
def test_runall_supervises_the_whole_portal(name):
    assert name in Command().processes("127.0.0.1:8000")
