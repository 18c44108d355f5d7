import time
import uuid

import pytest
import redis
from django.conf import settings

from tests.portal.celery_tasks import flaky_ping

pytestmark = pytest.mark.worker


def test_real_worker_runs_a_task_and_its_retry_with_countdown(celery_worker_process):
    store = redis.Redis.from_url(settings.REDIS_URL)
    key = f"celery-test:{uuid.uuid4()}"

    flaky_ping.delay(key)

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not store.get(f"{key}:done"):
        assert celery_worker_process.poll() is None, "the worker died"
        time.sleep(0.2)
    assert store.get(f"{key}:done") == b"2"
    first, second = (float(t) for t in store.lrange(f"{key}:times", 0, -1))
    assert second - first >= 1.9, "the retry ran before its countdown"


def test_celery_is_configured_for_at_least_once_delivery():
    from portal.celery import app

    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert "sessions-clear-expired" in app.conf.beat_schedule


def test_no_task_stores_a_result_so_queueing_never_waits_on_the_result_backend():
    import importlib
    from importlib.util import find_spec

    from django.apps import apps

    from portal.celery import app

    # What a worker imports: the app's include list and each installed app's tasks module.
    found = [f"{config.name}.tasks" for config in apps.get_app_configs() if find_spec(f"{config.name}.tasks")]
    for module in [*app.loader.default_modules, *found]:
        importlib.import_module(module)
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}

    assert app.conf.task_ignore_result is True
    assert {"portal.requests.tasks.privacy_export_build", "consents.tasks_delivery.outbox_event_deliver"} <= set(ours)
    assert [name for name, task in ours.items() if not task.ignore_result] == []
