import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT

# Queued tasks and beat entries name tasks by these strings: renaming one strands its messages.
TASK_NAMES = {
    "audit.tasks.access_event_partitions_maintain",
    "audit.tasks.audit_chains_verify",
    "consents.tasks.app_grants_expire_due",
    "consents.tasks.consents_expire_due",
    "consents.tasks.consents_remind_expiring",
    "consents.tasks.flagged_access_notify",
    "consents.tasks.material_change_notify",
    "consents.tasks.material_change_notify_sweep",
    "consents.tasks.flagged_access_notify_sweep",
    "consents.tasks.monthly_digests_send",
    "consents.tasks.publication_run_process",
    "consents.tasks.publication_runs_resume",
    "consents.tasks_delivery.outbox_event_deliver",
    "consents.tasks_delivery.outbox_events_deliver",
    "consents.tasks_delivery.outbox_relay",
    "consents.tasks_delivery.partner_webhook_disabled_notify",
    "portal.requests.tasks.consent_proofs_purge_expired",
    "portal.requests.tasks.privacy_deletion_execute",
    "portal.requests.tasks.privacy_export_build",
    "portal.requests.tasks.privacy_exports_purge_expired",
    "portal.requests.tasks.privacy_requests_tick",
    "portal.tasks.sessions_clear_expired",
    "privacy_requests.tasks.agent_request_dispatch",
    "privacy_requests.tasks.agent_requests_dispatch_pending",
}


def test_task_names_are_pinned_and_the_beat_schedule_names_only_known_tasks(db):
    # Loading the task modules the way a worker does runs Django's system checks, which read the database.
    from portal.celery import app

    app.loader.import_default_modules()
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours >= TASK_NAMES
    assert {entry["task"] for entry in app.conf.beat_schedule.values()} <= TASK_NAMES


def _tree(top: Path) -> set[Path]:
    return {path.relative_to(top) for path in top.rglob("*")}


@pytest.mark.worker
def test_a_task_run_in_development_writes_nothing_outside_var(tmp_path):
    """The file broker keeps its queue, control and result files under var/, not in the working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    var = tmp_path / "var"
    marker = var / "task-ran"
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(PORTAL_ENV="development", PORTAL_VAR_DIR=str(var), PYTHONPATH=str(ROOT))
    checkout_before = _tree(ROOT / "portal")
    send = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'portal.settings'; django.setup(); "
        "from tests.portal.celery_tasks import file_touch; "
        f"file_touch.delay({str(marker)!r})"
    )
    subprocess.run([sys.executable, "-c", send], cwd=cwd, env=env, check=True, timeout=60)
    worker = subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool", "solo", "--loglevel", "WARNING"),
            *("--include", "tests.portal.celery_tasks", "--without-heartbeat", "--without-gossip", "--without-mingle"),
        ],
        cwd=cwd,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            assert worker.poll() is None, "the worker died"
            time.sleep(0.2)
        assert marker.exists(), "the worker did not run the task"
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert list(cwd.iterdir()) == []
    assert {path.name for path in tmp_path.iterdir()} == {"cwd", "var"}
    assert (var / "broker" / "control").is_dir()
    assert _tree(ROOT / "portal") == checkout_before
    assert not (ROOT / "control").exists()
