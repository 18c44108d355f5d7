"""Smoke test of ``bench/load.py`` and its locustfile, without starting the run or any network.

Both run in child processes: importing locust monkey-patches the standard library with gevent,
which must not happen inside the test process.
"""

import subprocess
import sys

from tests.conftest import ROOT

USER_CLASSES = """
from locust import FastHttpUser

from bench import load_locustfile as m

for name, count in (("ConsumerUser", 50), ("PartnerUser", 4)):
    cls = getattr(m, name)
    assert issubclass(cls, FastHttpUser), name
    assert cls.fixed_count == count, (name, cls.fixed_count)
    assert [t.__name__ for t in cls.tasks], name
print(sorted(t.__name__ for t in m.ConsumerUser.tasks), sorted(t.__name__ for t in m.PartnerUser.tasks))
"""


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_locustfile_user_classes_import() -> None:
    result = _run("-c", USER_CLASSES)

    assert result.returncode == 0, result.stderr
    consumer_tasks, partner_tasks = result.stdout.splitlines()[-1].split("] [")
    for name in ("change_consent", "consents", "dashboard", "access", "activity", "receipts"):
        assert f"'{name}'" in consumer_tasks
    for name in ("consent_check", "ingest", "feed"):
        assert f"'{name}'" in partner_tasks


def test_load_help_lists_the_flags() -> None:
    result = _run("bench/load.py", "--help")

    assert result.returncode == 0, result.stderr
    for flag in ("--duration", "--consumers", "--partners", "--url", "--spawn-rate"):
        assert flag in result.stdout
    assert "--prepare-into" not in result.stdout
