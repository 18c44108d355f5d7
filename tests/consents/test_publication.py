"""A material notice reaches the consents on older notices through a publication run, batch by batch."""

from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.contrib.auth.models import Group
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

import consents.services.publication as publication
from audit.models import AuditEvent
from audit.selectors import audit_chain_breaks
from audit.services import Actor, subject_lock
from audit.signing import document_verify
from consents.api.selectors import consent_states_bulk
from consents.models import (
    Consent,
    ConsentReceipt,
    ConsentStatus,
    OutboxEvent,
    PartnerSubject,
    PublicationRun,
    PublicationRunState,
    ReceiptEvent,
)
from consents.selectors.consents import consent_summary
from consents.services.consents import _consent_event, consent_grant, consent_revoke, consents_reconsent_require
from consents.services.notices import purpose_version_publish
from consents.services.partners import partner_subject_ensure
from consents.tasks.publication import publication_run_process, publication_runs_resume
from portal.roles import AUDITOR, PARTNER_MANAGER, PRIVACY_OFFICER, SUPPORT_AGENT, staff_roles_ensure
from tests.factories import PartnerFactory, PurposeFactory, SharingFactory, UserFactory, notice_translations

CONSUMERS = 5


@pytest.fixture
def world(db, settings):
    """Five consumers who granted a purpose shared with one partner; batches of two."""
    settings.PUBLICATION_BATCH_SIZE = 2
    purpose = PurposeFactory(slug="offers", name="Offers")
    partner = PartnerFactory(slug="bureau")
    SharingFactory(partner=partner, purpose=purpose)
    users = [UserFactory(email=f"consumer{n}@example.com") for n in range(CONSUMERS)]
    for user in users:
        consent_grant(user=user, purpose=purpose, actor=Actor.consumer(user))
    return purpose, partner, users


def _publish(purpose, *, material: bool = True):
    return purpose_version_publish(
        purpose=purpose,
        description="We now also share with a credit bureau.",
        retention="One year",
        data_categories=purpose.current_version.data_categories.all(),
        material=material,
        change_summary="New recipient",
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="We now also share with a credit bureau.",
            retention="One year",
            change_summary="New recipient",
        ),
    )


def _side_records() -> tuple[int, int, int, int]:
    """Re-consent receipts, audit events, partner events and history rows: one of each per consent."""
    return (
        ConsentReceipt.objects.filter(event="reconsent_required").count(),
        AuditEvent.objects.filter(action="consent.reconsent_required").count(),
        OutboxEvent.objects.filter(event_type="consent.reconsent_required").count(),
        Consent.history.filter(status=ConsentStatus.RECONSENT_REQUIRED).count(),
    )


def _stall(run: PublicationRun, settings) -> None:
    """Age the run's last progress past the stall limit, as a worker that died long ago leaves it."""
    before = timezone.now() - timedelta(seconds=settings.PUBLICATION_STALLED_SECONDS + 1)
    PublicationRun.objects.filter(pk=run.pk).update(updated_at=before)


def test_publishing_commits_the_run_and_leaves_the_consents_to_the_task(world):
    purpose, _partner, _users = world

    version = _publish(purpose)

    run = PublicationRun.objects.get(version=version)
    assert (run.state, run.total, run.done, run.last_consent_id) == (PublicationRunState.RUNNING, CONSUMERS, 0, 0)
    assert Consent.objects.filter(status=ConsentStatus.GRANTED).count() == CONSUMERS
    assert _side_records() == (0, 0, 0, 0)


def test_the_task_processes_every_consent_in_batches_with_one_event_each(world, celery_eager, settings):
    purpose, partner, _users = world
    version = _publish(purpose)
    run = PublicationRun.objects.get(version=version)

    batches = publication_run_process(run.pk)

    assert batches == 3  # 2 + 2 + 1
    run.refresh_from_db()
    assert (run.state, run.done, run.total) == (PublicationRunState.DONE, CONSUMERS, CONSUMERS)
    assert run.finished_at is not None
    assert run.last_consent_id == Consent.objects.order_by("pk").last().pk
    assert set(Consent.objects.values_list("status", flat=True)) == {ConsentStatus.RECONSENT_REQUIRED}
    assert _side_records() == (CONSUMERS, CONSUMERS, CONSUMERS, CONSUMERS)
    reconsents = OutboxEvent.objects.filter(event_type="consent.reconsent_required")
    assert sorted(reconsents.values_list("partner_id", flat=True)) == [partner.pk] * CONSUMERS
    assert list(audit_chain_breaks()) == []


def test_the_emails_go_once_the_last_batch_commits(world, celery_eager, django_capture_on_commit_callbacks):
    purpose, _partner, users = world
    version = _publish(purpose)
    run = PublicationRun.objects.get(version=version)

    with django_capture_on_commit_callbacks(execute=True):
        publication_run_process(run.pk)

    assert sorted(message.to[0] for message in mail.outbox) == sorted(user.email for user in users)


def test_a_run_that_fits_in_one_batch_is_done_in_the_publishing_transaction(world, settings):
    purpose, _partner, _users = world
    settings.PUBLICATION_BATCH_SIZE = CONSUMERS

    version = _publish(purpose)

    run = PublicationRun.objects.get(version=version)
    assert (run.state, run.done) == (PublicationRunState.DONE, CONSUMERS)
    assert set(Consent.objects.values_list("status", flat=True)) == {ConsentStatus.RECONSENT_REQUIRED}


def test_a_non_material_notice_has_no_run(world):
    purpose, _partner, _users = world
    _publish(purpose, material=False)
    assert not PublicationRun.objects.exists()


def test_a_run_resumes_after_a_worker_died_mid_batch_without_repeating_anything(
    world, celery_eager, settings, monkeypatch
):
    purpose, _partner, _users = world
    version = _publish(purpose)
    run = PublicationRun.objects.get(version=version)
    ids = list(Consent.objects.order_by("pk").values_list("pk", flat=True))
    real = publication.consents_reconsent_require

    def dies_in_the_second_batch(*, consent_ids, version, actor):
        # The second batch is written in the open transaction, then the worker "dies" before it commits.
        real(consent_ids=consent_ids, version=version, actor=actor)
        if ids[3] in consent_ids:
            raise SystemError("worker lost")

    monkeypatch.setattr(publication, "consents_reconsent_require", dies_in_the_second_batch)
    publication_run_process(run.pk)

    run.refresh_from_db()
    assert (run.state, run.done, run.last_consent_id) == (PublicationRunState.RUNNING, 2, ids[1])
    assert "worker lost" in run.error
    statuses = dict(Consent.objects.values_list("pk", "status"))
    assert [statuses[pk] for pk in ids] == [ConsentStatus.RECONSENT_REQUIRED] * 2 + [ConsentStatus.GRANTED] * 3
    assert _side_records() == (2, 2, 2, 2)  # the rolled-back batch left nothing behind

    monkeypatch.setattr(publication, "consents_reconsent_require", real)
    assert publication_runs_resume() == 0  # not stalled yet: its worker may still be busy
    _stall(run, settings)
    assert publication_runs_resume() == 1

    run.refresh_from_db()
    assert (run.state, run.done, run.error) == (PublicationRunState.DONE, CONSUMERS, "")
    assert set(Consent.objects.values_list("status", flat=True)) == {ConsentStatus.RECONSENT_REQUIRED}
    assert _side_records() == (CONSUMERS, CONSUMERS, CONSUMERS, CONSUMERS)


def test_the_sweep_and_a_repeated_task_change_nothing_once_a_run_is_done(world, celery_eager, settings):
    purpose, _partner, _users = world
    run = PublicationRun.objects.get(version=_publish(purpose))
    publication_run_process(run.pk)
    run.refresh_from_db()
    _stall(run, settings)
    records = _side_records()

    assert publication_runs_resume() == 0
    assert publication_run_process(run.pk) == 0
    assert _side_records() == records
    assert PublicationRun.objects.get(pk=run.pk).finished_at == run.finished_at


def test_consents_not_yet_reached_already_need_a_new_decision(world):
    purpose, partner, users = world
    _publish(purpose)
    subjects = [partner_subject_ensure(partner=partner, user=user).subject_id for user in users]

    assert Consent.objects.filter(status=ConsentStatus.GRANTED).count() == CONSUMERS  # the run has not started
    [single] = consent_states_bulk(partner_id=partner.pk, pairs=[(subjects[0], "offers")])
    assert (single.status, single.granted, single.notice_version) == ("reconsent_required", False, 1)
    bulk = consent_states_bulk(partner_id=partner.pk, pairs=[(subject, "offers") for subject in subjects])
    assert {(state.status, state.granted) for state in bulk} == {("reconsent_required", False)}
    summary = consent_summary(users[0])
    assert summary.reconsent_required == 1
    assert summary.granted == 0


def test_an_access_after_publication_is_not_covered_by_a_consent_the_run_has_not_reached(world):
    """Before publication the old consent covers an access; after it, not, though its row still says granted."""
    from consents.services.access import AccessReport, access_events_ingest

    purpose, partner, users = world
    subject = partner_subject_ensure(partner=partner, user=users[0]).subject_id
    category = purpose.current_version.data_categories.first().slug
    start = timezone.now()
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        _publish(purpose)
    reports = [
        AccessReport(
            event_id=event_id,
            subject_id=subject,
            purpose="offers",
            categories=(category,),
            accessed_at=start + timedelta(minutes=minutes),
            action="read",
        )
        for event_id, minutes in (("before-publication", 5), ("after-publication", 15))
    ]

    with time_machine.travel(start + timedelta(minutes=20), tick=False):
        results = access_events_ingest(partner=partner, reports=reports)

    assert Consent.objects.get(user=users[0]).status == ConsentStatus.GRANTED  # not reached by the run yet
    assert [result.verdict for result in results] == ["covered", "no_consent"]


def test_a_consent_given_again_before_the_run_reaches_it_stands(world, celery_eager):
    purpose, partner, users = world
    version = _publish(purpose)
    purpose.refresh_from_db()
    again = consent_grant(user=users[0], purpose=purpose, actor=Actor.consumer(users[0]))
    consent_revoke(user=users[1], purpose=purpose, actor=Actor.consumer(users[1]))
    newer = _publish(purpose, material=False)
    purpose.refresh_from_db()
    on_newer = consent_grant(user=users[1], purpose=purpose, actor=Actor.consumer(users[1]))

    publication_run_process(PublicationRun.objects.get(version=version).pk)

    assert again.version == version
    assert on_newer.version == newer
    statuses = dict(Consent.objects.values_list("user_id", "status"))
    assert statuses[users[0].pk] == statuses[users[1].pk] == ConsentStatus.GRANTED
    assert [statuses[user.pk] for user in users[2:]] == [ConsentStatus.RECONSENT_REQUIRED] * 3
    subject = partner_subject_ensure(partner=partner, user=users[0]).subject_id
    [state] = consent_states_bulk(partner_id=partner.pk, pairs=[(subject, "offers")])
    assert state.granted


# Progress for staff ------------------------------------------------------------------------------


def _member(role: str):
    user = UserFactory(email=f"{role.replace(' ', '-').lower()}@staff.example.com", is_staff=True)
    if not Group.objects.filter(name=role).exists():
        staff_roles_ensure()
    user.groups.add(Group.objects.get(name=role))
    TOTP.activate(user, generate_totp_secret())
    return user


@pytest.fixture
def half_done(world):
    purpose, _partner, _users = world
    run = PublicationRun.objects.get(version=_publish(purpose))
    publication.publication_run_step(run_id=run.pk)
    run.refresh_from_db()
    assert run.done == 2
    return purpose, run


@pytest.mark.parametrize("role", [PRIVACY_OFFICER, AUDITOR])
def test_notice_staff_follow_a_run_in_the_admin_read_only(client, half_done, role):
    purpose, run = half_done
    client.force_login(_member(role))

    listing = client.get(reverse("admin:consents_publicationrun_changelist"))
    page = client.get(reverse("admin:consents_publicationrun_change", args=[run.pk]))
    notice = client.get(reverse("admin:consents_purpose_change", args=[purpose.pk]))
    edit = client.post(reverse("admin:consents_publicationrun_change", args=[run.pk]), {"done": "5"})
    delete = client.post(reverse("admin:consents_publicationrun_delete", args=[run.pk]), {"post": "yes"})

    assert [listing.status_code, page.status_code, notice.status_code] == [200, 200, 200]
    for response in (listing, page, notice):
        assert "2 / 5 (40%)" in response.content.decode()
    assert "finishes about" in page.content.decode()
    assert edit.status_code == 403
    assert delete.status_code == 403
    assert PublicationRun.objects.get(pk=run.pk).done == 2


@pytest.mark.parametrize("role", [SUPPORT_AGENT, PARTNER_MANAGER])
def test_other_staff_do_not_see_publication_runs(client, half_done, role):
    _purpose, run = half_done
    client.force_login(_member(role))

    listing = client.get(reverse("admin:consents_publicationrun_changelist"))
    page = client.get(reverse("admin:consents_publicationrun_change", args=[run.pk]))
    index = client.get(reverse("admin:index"))

    assert [listing.status_code, page.status_code] == [403, 403]
    assert reverse("admin:consents_publicationrun_changelist") not in index.content.decode()


def test_consumers_cannot_reach_the_publication_admin(consumer_client, half_done):
    _purpose, run = half_done
    response = consumer_client.get(reverse("admin:consents_publicationrun_change", args=[run.pk]))
    assert response.status_code == 302
    assert PublicationRun.objects.get(pk=run.pk).done == 2


def _one_by_one(*, consent_id: int, version, actor: Actor) -> None:
    """The per-consent path publication runs took before batches were written in bulk (for comparison)."""
    consent = Consent.objects.select_related("user").get(pk=consent_id)
    subject_lock(consent.user)
    consent = Consent.objects.select_for_update().select_related("purpose", "version", "user").get(pk=consent_id)
    consent.status = ConsentStatus.RECONSENT_REQUIRED
    consent.changed_by = actor.kind
    consent.updated_at = timezone.now()
    consent.save(update_fields=["status", "changed_by", "updated_at"])
    _consent_event(consent=consent, event=ReceiptEvent.RECONSENT_REQUIRED, actor=actor)


def _batch_output(consent_ids: list[int]) -> list[dict]:
    """Everything the re-consent of these consents wrote, per consent, without its random ids."""
    output = []
    for consent_id in consent_ids:
        consent = Consent.objects.get(pk=consent_id)
        receipt = ConsentReceipt.objects.get(consent=consent, event="reconsent_required")
        assert document_verify(receipt.jws) == receipt.payload
        payload = {k: v for k, v in receipt.payload.items() if k != "consentReceiptID"}
        event = AuditEvent.objects.get(action="consent.reconsent_required", target_id=str(consent_id))
        assert event.data["receipt"] == str(receipt.id)
        assert event.data["receipt_sha256"] == receipt.sha256
        outbox = []
        for row in OutboxEvent.objects.filter(consent=consent, event_type="consent.reconsent_required").select_related(
            "subject"
        ):
            assert row.subject.user_id == consent.user_id
            assert row.payload["data"]["subject_id"] == row.subject.subject_id
            assert row.payload["id"] == str(row.id)
            data = {k: v for k, v in row.payload["data"].items() if k != "subject_id"}
            outbox.append((row.partner_id, row.status, row.payload["type"], row.payload["timestamp"], data))
        history = consent.history.filter(status=ConsentStatus.RECONSENT_REQUIRED)
        output.append(
            {
                "consent": (consent.status, consent.changed_by, consent.updated_at),
                "receipt": (receipt.user_id, receipt.event, receipt.issued_at, payload),
                "audit": (
                    event.chain,
                    event.seq,
                    event.occurred_at,
                    event.actor_kind,
                    event.actor_label,
                    event.subject_id,
                    event.target_type,
                    {k: v for k, v in event.data.items() if k not in {"receipt", "receipt_sha256"}},
                ),
                "outbox": sorted(outbox),
                "history": list(history.values_list("history_type", "changed_by", "history_user_id", "history_date")),
            }
        )
    return output


def test_a_bulk_batch_writes_what_the_per_consent_path_wrote(world):
    purpose, _partner, _users = world
    # A second recipient that has never received these consumers: the batch mints their pairwise ids.
    SharingFactory(partner=PartnerFactory(slug="insurer"), purpose=purpose)
    version = _publish(purpose, material=True)
    ids = list(Consent.objects.filter(purpose=purpose).order_by("pk").values_list("pk", flat=True))
    actor = Actor.system("tests")

    with time_machine.travel(timezone.now(), tick=False):
        with transaction.atomic():
            for consent_id in ids:
                _one_by_one(consent_id=consent_id, version=version, actor=actor)
            assert list(audit_chain_breaks()) == []
            expected = _batch_output(ids)
            transaction.set_rollback(True)
        assert _side_records() == (0, 0, 0, 0)

        with transaction.atomic():
            consents_reconsent_require(consent_ids=ids, version=version, actor=actor)
        assert list(audit_chain_breaks()) == []
        assert _batch_output(ids) == expected

    assert _side_records() == (CONSUMERS, CONSUMERS, 2 * CONSUMERS, CONSUMERS)
    assert PartnerSubject.objects.filter(partner__slug="insurer").count() == CONSUMERS
    # The same batch again (a duplicate task): consents already asked are left alone.
    consents_reconsent_require(consent_ids=ids, version=version, actor=actor)
    assert _side_records() == (CONSUMERS, CONSUMERS, 2 * CONSUMERS, CONSUMERS)
