"""The Celery application. Configuration lives in Django settings under ``CELERY_*``."""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import before_task_publish, task_postrun, task_prerun, worker_init

from portal.request_id import TASK_HEADER, current_request_id, request_id_accept, request_id_bind

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

# Autodiscovery imports each installed app's ``tasks`` module. consents keeps its tasks in a
# package, one module per area, so they are listed here: a worker imports these too, and the
# package stays empty instead of re-exporting them for discovery.
app = Celery(
    "portal",
    include=[
        "consents.tasks.delivery",
        "consents.tasks.expiry",
        "consents.tasks.notifications",
        "consents.tasks.publication",
    ],
)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _load_urlconf(**kwargs: Any) -> None:
    """Import the URLconf in the worker's main process, before it starts its pool.

    Tasks build links (receipts, emails), and the first ``reverse()`` imports every view module:
    seconds on a busy machine. Done lazily, a publication batch would pay that inside its
    transaction; done here, the forked pool processes inherit it. Any connection the imports
    opened is closed, so no pool process shares the parent's.
    """
    from django.db import connections
    from django.urls import get_resolver

    get_resolver().reverse_dict  # noqa: B018 (populating the resolver is the point)
    connections.close_all()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task: Task | None = None, **kwargs: Any) -> None:
    """Treat each task like a request: drop database connections that are broken or past CONN_MAX_AGE.

    Replaces the Celery fix-up's unconditional close (see CELERY_DB_REUSE_MAX). Eager tasks run
    inside the caller's transaction and must not touch its connection.
    """
    if task is not None and getattr(task.request, "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


@before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """Carry the id of the request (or task) that queues a task in the task's message headers."""
    if headers is not None and (request_id := current_request_id()) and TASK_HEADER not in headers:
        headers[TASK_HEADER] = request_id


@task_prerun.connect
def _bind_request_id(task_id: str | None = None, task: Task | None = None, **kwargs: Any) -> None:
    """On the worker, log and send webhooks under the id of the request that queued the task, else the task's own.

    An eager task runs inside its caller, whose id stays bound.
    """
    if task is None or getattr(task.request, "is_eager", False):
        return
    incoming = getattr(task.request, TASK_HEADER, None)
    request_id_bind(request_id_accept(incoming) if incoming else (task_id or request_id_accept(None)))


@task_postrun.connect
def _unbind_request_id(task: Task | None = None, **kwargs: Any) -> None:
    if task is not None and not getattr(task.request, "is_eager", False):
        request_id_bind(None)
