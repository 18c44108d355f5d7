"""Publication runs: a material notice reaches every consent on an older one, batch by batch.

Publishing (``purpose_version_publish``) records the notice and its run and commits; from then on
the consent checks already treat a grant of an older notice as needing a new decision
(``Purpose.material_version_number``). The run then puts each such consent into
``reconsent_required`` with everything a change of consent carries (history, signed receipt, audit
event, partners' outbox events), ``PUBLICATION_BATCH_SIZE`` consents per transaction in primary-key
order, so no consent row stays locked longer than one short batch. The run's position is written
in the same transaction as its batch: a worker that dies loses at most the batch it had not
committed, and the next run of the task starts after the last consent committed.
"""

import logging
from datetime import timedelta
from functools import partial

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from audit.models import ActorKind
from audit.services import Actor
from consents.models import Consent, ConsentStatus, PublicationRun, PublicationRunState, PurposeVersion
from consents.notifications import material_change_notify_queue
from consents.services.consents import consents_reconsent_require

logger = logging.getLogger(__name__)

PUBLICATION_RUN_TASK = "consents.tasks.publication_run_process"


def _stale(version: PurposeVersion) -> QuerySet[Consent]:
    """Grants of an older notice of the purpose (a grant of a newer one, published since, stands)."""
    return Consent.objects.filter(
        purpose_id=version.purpose_id, status=ConsentStatus.GRANTED, version__number__lt=version.number
    )


def publication_run_queue(run_id: int) -> None:
    """Queue the task that carries a run on (after the transaction that needs it commits)."""
    try:
        current_app.signature(PUBLICATION_RUN_TASK).apply_async((run_id,))
    except Exception:
        # The sweep (``publication_runs_resume``) picks the run up once it counts as stalled.
        logger.exception("could not queue publication run %s", run_id)


def publication_run_start(*, version: PurposeVersion, actor: Actor) -> PublicationRun:
    """Record the run of a material notice; inside ``purpose_version_publish``'s transaction.

    A run that fits in one batch is done right here, in the publishing transaction, as publishing
    always did; a longer one continues in the task once the publication commits.
    """
    run = PublicationRun.objects.create(
        version=version,
        total=_stale(version).count(),
        actor_kind=actor.kind,
        actor_id=actor.id,
        actor_label=actor.label,
    )
    if run.total <= settings.PUBLICATION_BATCH_SIZE:
        _batch_run(run, version)
    if run.state == PublicationRunState.RUNNING:
        transaction.on_commit(partial(publication_run_queue, run.pk), robust=True)
    return run


def _batch_run(run: PublicationRun, version: PurposeVersion) -> None:
    """Process the run's next batch in the caller's transaction, and mark it done after the last."""
    size = settings.PUBLICATION_BATCH_SIZE
    ids = list(
        _stale(version).filter(pk__gt=run.last_consent_id).order_by("pk").values_list("pk", flat=True)[: size + 1]
    )
    batch = ids[:size]
    actor = Actor(ActorKind(run.actor_kind), run.actor_id, run.actor_label)
    consents_reconsent_require(consent_ids=batch, version=version, actor=actor)
    now = timezone.now()
    run.done = min(run.done + len(batch), run.total)
    run.updated_at = now
    update_fields = ["done", "updated_at"]
    if batch:
        run.last_consent_id = batch[-1]
        update_fields.append("last_consent_id")
    if len(ids) <= size:
        # Nothing after this batch: every consent on an older notice has been asked.
        run.state = PublicationRunState.DONE
        run.done = run.total
        run.finished_at = now
        run.error = ""
        update_fields += ["state", "finished_at", "error"]
        # Those asked to decide again hear of it by email (batched by a task, once per consumer).
        transaction.on_commit(partial(material_change_notify_queue, version.pk), robust=True)
    run.save(update_fields=update_fields)


@transaction.atomic
def publication_run_step(*, run_id: int) -> PublicationRun | None:
    """Process one batch of a run in its own transaction; ``None`` when there is nothing to do here.

    The run row is locked for the batch and skipped when another worker holds it, so two copies
    of the task (a duplicate delivery, the sweep) take turns and never process a consent twice.
    """
    run = (
        PublicationRun.objects.select_for_update(skip_locked=True)
        .filter(pk=run_id, state=PublicationRunState.RUNNING)
        .first()
    )
    if run is None:
        return None
    _batch_run(run, PurposeVersion.objects.get(pk=run.version_id))
    return run


def publication_run_fail(*, run_id: int, error: str) -> None:
    """Note why the last batch failed, for staff; the run stays running and the sweep retries it."""
    PublicationRun.objects.filter(pk=run_id, state=PublicationRunState.RUNNING).update(error=error[:2000])


def publication_runs_stalled() -> list[int]:
    """Running runs with no progress for ``PUBLICATION_STALLED_SECONDS``: their worker is gone."""
    since = timezone.now() - timedelta(seconds=settings.PUBLICATION_STALLED_SECONDS)
    stalled = PublicationRun.objects.filter(state=PublicationRunState.RUNNING, updated_at__lt=since)
    return list(stalled.order_by("pk").values_list("pk", flat=True))
