"""Run the whole portal in the foreground: web server, Celery worker and beat, and the demo partner.

A child that exits is restarted with backoff (``portal.supervisor``); Ctrl-C (or SIGTERM) stops
every process this command started.
"""

import os
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from portal.supervisor import Supervisor


class Command(BaseCommand):
    help = (
        "Start the web server, a Celery worker, Celery beat and the demo partner together, restarting any that"
        " exits; Ctrl-C stops them all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default=os.environ.get("PORTAL_ADDR", "127.0.0.1:8000"))

    def processes(self, addr: str) -> dict[str, list[str]]:
        python = sys.executable
        celery = [python, "-m", "celery", "-A", "portal"]
        return {
            "web": [python, "manage.py", "runserver", addr, "--noreload"],
            "worker": [
                *celery,
                "worker",
                "-Q",
                "default,delivery,requests",
                "--loglevel",
                "INFO",
                "--concurrency",
                "4",
            ],
            "beat": [*celery, "beat", "--loglevel", "INFO"],
            "partner": [python, "manage.py", "demo_partner"],
        }

    def handle(self, *args: Any, **options: Any) -> None:
        supervisor = Supervisor(self.processes(options["addr"]))

        def request_stop(signum: int, frame: Any) -> None:
            supervisor.request_stop()

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            supervisor.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
