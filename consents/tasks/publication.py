"""Publication runs (flow 6 at scale): carry a material notice to every consent on an older one."""

import logging
import time

from celery import shared_task
from django.conf import settings

from consents.models import PublicationRunState
from consents.services.publication import (
    publication_run_fail,
    publication_run_queue,
    publication_run_step,
    publication_runs_stalled,
)

logger = logging.getLogger(__name__)


@shared_task(name="consents.tasks.publication_run_process", ignore_result=True)
def publication_run_process(run_id: int) -> int:
    """Process a run batch by batch (each its own transaction) for up to ``PUBLICATION_TASK_SECONDS``.

    A run not finished by then is queued again, so one long run never holds a worker for hours.
    Another copy of the task working on the same run makes this one stop (it takes turns on the
    run's row lock); a failing batch is noted on the run and retried by the sweep. Returns the
    number of batches done.
    """
    deadline = time.monotonic() + settings.PUBLICATION_TASK_SECONDS
    batches = 0
    while True:
        try:
            run = publication_run_step(run_id=run_id)
        except Exception as error:
            logger.exception("publication run %s failed; the sweep will resume it", run_id)
            publication_run_fail(run_id=run_id, error=f"{type(error).__name__}: {error}")
            return batches
        if run is None:
            return batches
        batches += 1
        if run.state != PublicationRunState.RUNNING:
            return batches
        if time.monotonic() >= deadline:
            publication_run_queue(run_id)
            return batches


@shared_task(name="consents.tasks.publication_runs_resume", ignore_result=True)
def publication_runs_resume() -> int:
    """Queue every run that stopped making progress (its worker died, its task was lost); the number.

    Idempotent: a run that is in fact still going takes turns with the queued copy, and the copy
    continues from the last committed batch.
    """
    stalled = publication_runs_stalled()
    for run_id in stalled:
        publication_run_queue(run_id)
    if stalled:
        logger.info("resumed %d stalled publication runs", len(stalled))
    return len(stalled)
