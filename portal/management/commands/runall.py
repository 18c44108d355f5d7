"""Run the whole portal in the foreground: web server, Celery worker and beat, and the demo partner.

Ctrl-C (or SIGTERM) stops every process this command started.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

STOP_GRACE_SECONDS = 10


class Command(BaseCommand):
    help = "Start the web server, a Celery worker, Celery beat and the demo partner together; Ctrl-C stops them all."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default=os.environ.get("PORTAL_ADDR", "127.0.0.1:8000"))

    def processes(self, addr: str) -> dict[str, list[str]]:
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "portal"]
        return {
            "web": [python, "manage.py", "runserver", addr, "--noreload"],
            "worker": [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"],
            "beat": [*celery, "beat", "--loglevel", "INFO"],
            "partner": [python, "manage.py", "demo_partner"],
        }

    def handle(self, *args: Any, **options: Any) -> None:
        children: dict[str, subprocess.Popen[bytes]] = {}
        stopping = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        try:
            for name, argv in self.processes(options["addr"]).items():
                # Each child gets its own session so that we, not the terminal, decide how it stops.
                children[name] = subprocess.Popen(argv, start_new_session=True)
                self.stdout.write(f"started {name} (pid {children[name].pid})")
            while not stopping:
                for name, child in children.items():
                    if child.poll() is not None:
                        self.stderr.write(f"{name} exited with status {child.returncode}; stopping the rest")
                        stopping = True
                time.sleep(0.5)
        finally:
            self.stop_all(children)

    def stop_all(self, children: dict[str, "subprocess.Popen[bytes]"]) -> None:
        # Ask each leader to shut down gracefully (Celery stops its own pool); only a process
        # group that outlives the grace period is killed outright.
        for child in children.values():
            if child.poll() is None:
                child.terminate()
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, child in children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)  # strays left in the group, if any
            self.stdout.write(f"stopped {name}")
