"""The process-level fault scenarios of ``bench/faults.py`` in quick mode, on PostgreSQL and Redis.

Each test runs one scenario in its own ``bench/faults.py`` process (real gunicorn, Celery worker and
beat, its own redis-server, a receiving partner) against the PostgreSQL server of ``DATABASE_URL``,
where it creates and drops its own ``faults_*`` databases. They need the PostgreSQL run of the suite
(``.ci/test`` sets ``DATABASE_URL`` and ``REDIS_URL`` for it) and are deselected with ``--clock``.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.worker,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(
        not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")),
        reason="the fault scenarios run on PostgreSQL only (DATABASE_URL=postgres://...)",
    ),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="the fault scenarios run with Redis only (REDIS_URL)"),
]

# How long after the fault every event must have reached the partner.
RECOVERY_TARGET_S = 30.0


@functools.cache
def _quick_run() -> dict[str, dict[str, Any]]:
    """Run every process scenario of bench/faults.py in quick mode, in one process (once per test session).

    One process migrates the template database once for all of them.
    """
    from bench.faults import SCENARIOS

    with tempfile.TemporaryDirectory(prefix="faults-") as var_dir:
        out = Path(var_dir) / "result.json"
        inherited = {"PATH", "HOME", "LANG", "TZ"}
        env = {k: v for k, v in os.environ.items() if k in inherited} | {
            "DATABASE_URL": os.environ["DATABASE_URL"],
            "PORTAL_VAR_DIR": var_dir,
        }
        chosen = [arg for name in SCENARIOS for arg in ("--scenario", name)]
        completed = subprocess.run(
            [sys.executable, "bench/faults.py", "--quick", *chosen, "--json", str(out)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1500,
        )
        # 1 means something was lost or applied twice: the tests' assertions say what.
        assert completed.returncode in {0, 1}, completed.stdout[-3000:] + completed.stderr[-5000:]
        results = {result["scenario"]: result for result in json.loads(out.read_text())}
    print(completed.stdout)
    return results


def scenario(name: str) -> dict[str, Any]:
    """One scenario's result from the quick run."""
    results = _quick_run()
    assert name in results, f"{name} did not finish: {sorted(results)}"
    return results[name]


def test_a_web_process_killed_between_commit_and_enqueue_loses_nothing():
    result = scenario("crash_after_commit")
    assert result["faults"] == result["load"], "every withdrawal killed its web process"
    assert result["lost"] == 0, result
    assert result["duplicates_applied"] == 0, result
    assert result["recovery_s"] <= RECOVERY_TARGET_S, result


def test_a_broker_outage_loses_nothing_and_consumers_still_succeed():
    result = scenario("broker_outage")
    assert result["lost"] == 0, result
    assert result["duplicates_applied"] == 0, result
    assert result["web_errors"] == 0, result
    assert result["recovery_s"] <= RECOVERY_TARGET_S, result


def test_the_partner_api_keeps_answering_while_the_broker_is_down():
    result = scenario("broker_outage")
    assert result["api_calls"] > 0
    assert result["api_errors"] == {}, result


def test_killed_workers_lose_nothing_and_the_partner_applies_each_event_once():
    result = scenario("worker_kill")
    assert result["faults"] >= 3, result
    assert result["lost"] == 0, result
    assert result["duplicates_applied"] == 0, result
    # A killed worker's claimed event waits out the claim lease, then the relay sends it again.
    assert result["recovery_s"] <= result["lease_s"] + RECOVERY_TARGET_S, result


def test_a_database_restart_answers_503_while_down_recovers_and_loses_nothing():
    result = scenario("database_restart")
    assert result["bad_down_answers"] == 0, result
    assert any(key.endswith("-503") for key in result["down_answers"]), result
    assert result["lost"] == 0, result
    assert result["duplicates_applied"] == 0, result
    assert result["recovery_s"] <= RECOVERY_TARGET_S, result
