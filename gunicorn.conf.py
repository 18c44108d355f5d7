"""gunicorn's settings for the portal, read automatically when gunicorn starts in this directory.

Only what makes several worker processes one server for Prometheus: prometheus-client's
multiprocess mode, so that a scrape of ``/metrics`` (answered by any one worker) counts the
requests of all of them. Every other gunicorn option stays on the command line.
"""

import os
from pathlib import Path
from typing import Any

# Set before any worker imports prometheus-client, which reads it once, at import. It lives under
# PORTAL_VAR_DIR like everything else the portal writes (the default mirrors portal/settings.py).
_var_dir = Path(os.environ.get("PORTAL_VAR_DIR") or Path(__file__).resolve().parent / "var")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_var_dir / "prometheus"))


def on_starting(server: Any) -> None:
    """Start from zero: samples left by a previous run's processes would be added to this run's."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def child_exit(server: Any, worker: Any) -> None:
    """A worker that exits (restarted, or killed by the timeout) keeps its counts; its live gauges go."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
