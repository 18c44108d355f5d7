"""Keeps a set of child processes running, for ``manage.py runall`` (development and demos).

Each child runs in its own session (process group), so that the supervisor, not the terminal,
decides how it stops. A child that exits while the supervisor runs is started again after a delay
that doubles with each exit (1 s, 2 s, 4 s, ... at most 30 s) and starts again from 1 s once the
child has run for a minute; every exit and restart is logged. Stopping asks every child to
terminate and kills the process group of any still running after the grace period.

In production a service manager does this job instead (README, "Running in production").
"""

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass
class Child:
    """One supervised program and its current process."""

    name: str
    argv: list[str]
    process: "subprocess.Popen[bytes] | None" = None
    started_at: float = 0.0
    exits: int = 0  # exits since it last ran stable, which set the next delay
    restart_at: float | None = None  # set while it waits to be started again


class Supervisor:
    """Start the programs, restart any that exits (with backoff), and stop them all on request."""

    def __init__(
        self,
        programs: Mapping[str, Sequence[str]],
        *,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
        stop_grace: float = 10.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.children = [Child(name, list(argv)) for name, argv in programs.items()]
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.stop_grace = stop_grace
        self.poll_interval = poll_interval
        self._stopping = threading.Event()

    def run(self) -> None:
        """Start every program and keep them running until ``request_stop()``; then stop them all."""
        try:
            for child in self.children:
                self._spawn(child)
            while not self._stopping.wait(self.poll_interval):
                self.poll()
        finally:
            self.stop()

    def request_stop(self) -> None:
        """Make ``run()`` stop the children and return; safe to call from a signal handler."""
        self._stopping.set()

    def backoff(self, exits: int) -> float:
        """The delay before a restart, after ``exits`` exits since the child last ran stable."""
        return min(self.backoff_max, self.backoff_initial * 2**exits)

    def poll(self) -> None:
        """One round: schedule a restart for each child that exited, and start those that are due."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                continue
            assert child.process is not None
            status = child.process.poll()
            if status is None:
                continue
            ran = now - child.started_at
            if ran >= self.stable_after:
                child.exits = 0
            delay = self.backoff(child.exits)
            child.exits += 1
            child.restart_at = now + delay
            # Whatever it left behind in its group (a Celery pool child, say) goes with it.
            self._kill_group(child.process)
            logger.warning(
                "%s exited with status %s after %.1f s; restarting it in %g s", child.name, status, ran, delay
            )

    def stop(self) -> None:
        """Ask every running child to terminate; kill any group still alive after the grace period."""
        running = [c for c in self.children if c.process is not None and c.process.poll() is None]
        # Ask each leader to shut down gracefully (Celery stops its own pool); only a process
        # group that outlives the grace period is killed outright.
        for child in running:
            assert child.process is not None
            child.process.terminate()
        deadline = time.monotonic() + self.stop_grace
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %g s; killing it", child.name, self.stop_grace)
                self._kill_group(child.process)
                child.process.wait()
            self._kill_group(child.process)  # strays left in the group, if any
            if child in running:
                logger.info("stopped %s", child.name)

    def _spawn(self, child: Child) -> None:
        restart = child.process is not None
        child.process = subprocess.Popen(child.argv, start_new_session=True)
        child.started_at = time.monotonic()
        child.restart_at = None
        logger.info("%s %s (pid %d)", "restarted" if restart else "started", child.name, child.process.pid)

    @staticmethod
    def _kill_group(process: "subprocess.Popen[bytes]") -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
