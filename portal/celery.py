"""The Celery application. Configuration lives in Django settings under ``CELERY_*``."""

import os
from typing import Any

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

# Autodiscovery imports each installed app's ``tasks`` module. consents keeps its tasks in a
# package, one module per area, so they are listed here: a worker imports these too, and the
# package stays empty instead of re-exporting them for discovery.
app = Celery("portal", include=["consents.tasks.delivery", "consents.tasks.expiry"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
