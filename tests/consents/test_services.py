from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import AuditChain, AuditEvent
from audit.selectors import audit_chain_breaks
from audit.services import Actor
from consents.errors import DomainError
from consents.models import (
    Consent,
    ConsentReceipt,
    ConsentStatus,
    DurationType,
    Initiator,
    Purpose,
    RevocationReason,
)
from consents.services.consents import consent_expire, consent_grant, consent_reminder_mark, consent_revoke
from consents.services.notices import purpose_version_publish
from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, StaffFactory, notice_translations


@pytest.fixture
def purpose(db):
    return PurposeFactory(slug="personalised-offers", name="Personalised offers")


def _counts(consent: Consent) -> tuple[int, int, int]:
    """History rows, receipts and audit events about this consent."""
    return (
        consent.history.count(),
        ConsentReceipt.objects.filter(consent=consent).count(),
        AuditEvent.objects.filter(target_type="consents.consent", target_id=str(consent.pk)).count(),
    )


def _publish(purpose, *, material: bool, summary: str = "Now also shared with a credit bureau"):
    return purpose_version_publish(
        purpose=purpose,
        description="We use your balances and a credit bureau's score to decide credit limits.",
        retention="Five years after the account closes",
        data_categories=[DataCategoryFactory(slug="credit-score")],
        material=material,
        change_summary=summary,
        actor=Actor.system("tests"),
        translations=notice_translations(
            description="We use your balances and a credit bureau's score to decide credit limits.",
            retention="Five years after the account closes",
            change_summary=summary,
        ),
    )


def test_grant_records_consent_on_current_notice_with_receipt_and_event(consumer, purpose):
    consent = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert consent.status == ConsentStatus.GRANTED
    assert consent.version == purpose.current_version
    assert consent.granted_at is not None
    assert consent.expires_at is None
    assert consent.duration_type == DurationType.PERSISTENT
    assert consent.changed_by == Initiator.CONSUMER
    assert consent.is_active
    assert _counts(consent) == (1, 1, 1)
    event = AuditEvent.objects.get(action="consent.granted")
    assert event.subject == consumer
    assert event.actor_kind == "consumer"
    assert event.data["purpose"] == "personalised-offers"
    receipt = ConsentReceipt.objects.get(consent=consent)
    assert event.data["receipt"] == str(receipt.id)
    assert event.data["receipt_sha256"] == receipt.sha256


def test_repeating_a_grant_changes_nothing(consumer, purpose):
    first = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    again = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert again.pk == first.pk
    assert again.granted_at == first.granted_at
    assert _counts(first) == (1, 1, 1)


def test_revoke_withdraws_with_reason_note_and_one_record_each(consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    consent = consent_revoke(
        user=consumer, purpose=purpose, actor=Actor.consumer(consumer), note="  Too many offers.  "
    )

    assert consent.status == ConsentStatus.REVOKED
    assert consent.revoked_at is not None
    assert consent.revocation_reason == RevocationReason.USER_ACTION
    assert consent.revocation_note == "Too many offers."
    assert not consent.is_active
    assert _counts(consent) == (2, 2, 2)
    assert list(consent.history.order_by("history_date").values_list("status", flat=True)) == ["granted", "revoked"]


def test_repeating_a_revoke_changes_nothing(consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    first = consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    again = consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer), note="again")

    assert again.revoked_at == first.revoked_at
    assert again.revocation_note == ""
    assert _counts(first) == (2, 2, 2)


def test_revoke_without_earlier_grant_records_a_refusal(consumer, purpose):
    consent = consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert consent.status == ConsentStatus.REVOKED
    assert consent.granted_at is None
    assert consent.version == purpose.current_version
    assert _counts(consent) == (1, 1, 1)


def test_grant_after_revoke_renews_the_same_row(consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer), note="later")
    consent = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert Consent.objects.filter(user=consumer, purpose=purpose).count() == 1
    assert consent.status == ConsentStatus.GRANTED
    assert consent.revoked_at is None
    assert consent.revocation_reason == ""
    assert consent.revocation_note == ""
    assert _counts(consent) == (3, 3, 3)


def test_staff_and_partner_actors_are_recorded_as_initiators(consumer, purpose):
    staff = StaffFactory(email="agent@example.com")
    partner = PartnerFactory(name="Northwind Bank")
    consent_grant(user=consumer, purpose=purpose, actor=Actor.partner(partner), method="api")
    consent = consent_revoke(
        user=consumer, purpose=purpose, actor=Actor.staff(staff), reason=RevocationReason.BUSINESS_RULE
    )

    assert consent.changed_by == Initiator.STAFF
    assert consent.revocation_reason == RevocationReason.BUSINESS_RULE
    actors = list(AuditEvent.objects.order_by("seq").filter(subject=consumer).values_list("actor_kind", "actor_label"))
    assert actors == [("partner", "Northwind Bank"), ("staff", "agent@example.com")]


@pytest.mark.parametrize("legal_basis", ["contract", "legal_obligation", "legitimate_interest"])
def test_essential_purposes_cannot_be_granted_or_revoked(consumer, db, legal_basis):
    essential = PurposeFactory(slug=f"essential-{legal_basis}", legal_basis=legal_basis)

    with pytest.raises(DomainError) as grant_error:
        consent_grant(user=consumer, purpose=essential, actor=Actor.consumer(consumer))
    with pytest.raises(DomainError) as revoke_error:
        consent_revoke(user=consumer, purpose=essential, actor=Actor.consumer(consumer))

    assert grant_error.value.code == revoke_error.value.code == "essential_purpose"
    assert essential.name in grant_error.value.message
    assert not Consent.objects.exists()
    assert not AuditEvent.objects.filter(subject=consumer).exists()


def test_inactive_purpose_cannot_be_granted(consumer, purpose):
    purpose.is_active = False
    purpose.save(update_fields=["is_active"])

    with pytest.raises(DomainError) as error:
        consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert error.value.code == "purpose_unavailable"
    assert not Consent.objects.exists()


def test_time_bound_grant_expires_after_its_period(consumer, purpose):
    with time_machine.travel("2026-03-01 09:00Z", tick=False):
        consent = consent_grant(
            user=consumer,
            purpose=purpose,
            actor=Actor.consumer(consumer),
            duration_type=DurationType.TIME_BOUND,
            period_days=30,
        )
    assert consent.expires_at == datetime(2026, 3, 31, 9, tzinfo=UTC)
    assert consent.period_days == 30

    with time_machine.travel("2026-03-31 08:59Z", tick=False):
        assert consent_expire(consent_id=consent.pk) is None
        assert Consent.objects.active().filter(pk=consent.pk).exists()
    with time_machine.travel("2026-03-31 09:00Z", tick=False):
        expired = consent_expire(consent_id=consent.pk)

    assert expired is not None
    assert expired.status == ConsentStatus.EXPIRED
    assert expired.revocation_reason == RevocationReason.EXPIRED
    assert expired.changed_by == Initiator.SYSTEM
    assert ConsentReceipt.objects.filter(consent=consent, event="expired").count() == 1
    event = AuditEvent.objects.get(action="consent.expired")
    assert (event.actor_kind, event.actor_label) == ("system", "expiry")


def test_time_bound_grant_uses_the_purposes_default_period(consumer, db):
    research = PurposeFactory(slug="research", default_duration_type="time_bound", default_period_days=180)
    consent = consent_grant(user=consumer, purpose=research, actor=Actor.consumer(consumer))

    assert consent.duration_type == DurationType.TIME_BOUND
    assert consent.period_days == 180
    assert consent.expires_at - consent.granted_at == timedelta(days=180)


def test_time_bound_grant_without_period_is_refused(consumer, purpose):
    with pytest.raises(DomainError) as error:
        consent_grant(
            user=consumer, purpose=purpose, actor=Actor.consumer(consumer), duration_type=DurationType.TIME_BOUND
        )
    assert error.value.code == "period_required"
    assert not Consent.objects.exists()


def test_unknown_duration_is_refused(consumer, purpose):
    with pytest.raises(DomainError) as error:
        consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer), duration_type="forever")
    assert error.value.code == "duration_invalid"
    assert not Consent.objects.exists()


def test_one_time_grant_lasts_the_configured_hours(consumer, purpose, settings):
    settings.ONE_TIME_CONSENT_HOURS = 2
    with time_machine.travel("2026-05-01 12:00Z", tick=False):
        consent = consent_grant(
            user=consumer, purpose=purpose, actor=Actor.consumer(consumer), duration_type=DurationType.ONE_TIME
        )
    assert consent.period_days is None
    assert consent.expires_at == datetime(2026, 5, 1, 14, tzinfo=UTC)
    with time_machine.travel("2026-05-01 14:00:01Z", tick=False):
        assert not consent.is_active
        assert consent_expire(consent_id=consent.pk) is not None


def test_grant_with_different_terms_is_a_new_decision(consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    consent = consent_grant(
        user=consumer,
        purpose=purpose,
        actor=Actor.consumer(consumer),
        duration_type=DurationType.TIME_BOUND,
        period_days=90,
    )

    assert consent.duration_type == DurationType.TIME_BOUND
    assert consent.expires_at is not None
    assert _counts(consent) == (2, 2, 2)


def test_expire_ignores_persistent_revoked_and_missing_consents(consumer, purpose, other_consumer):
    persistent = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    revoked = consent_grant(
        user=other_consumer,
        purpose=purpose,
        actor=Actor.consumer(other_consumer),
        duration_type=DurationType.TIME_BOUND,
        period_days=1,
    )
    consent_revoke(user=other_consumer, purpose=purpose, actor=Actor.consumer(other_consumer))

    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert consent_expire(consent_id=persistent.pk) is None
        assert consent_expire(consent_id=revoked.pk) is None
        assert consent_expire(consent_id=999_999) is None

    assert ConsentReceipt.objects.filter(event="expired").count() == 0


def test_expiring_twice_records_it_once(consumer, purpose):
    consent = consent_grant(
        user=consumer,
        purpose=purpose,
        actor=Actor.consumer(consumer),
        duration_type=DurationType.TIME_BOUND,
        period_days=1,
    )
    with time_machine.travel(timezone.now() + timedelta(days=1, seconds=1)):
        assert consent_expire(consent_id=consent.pk) is not None
        assert consent_expire(consent_id=consent.pk) is None
    assert _counts(consent) == (2, 2, 2)


def test_revoking_an_expired_consent_changes_nothing_and_grant_renews_it(consumer, purpose):
    consent = consent_grant(
        user=consumer,
        purpose=purpose,
        actor=Actor.consumer(consumer),
        duration_type=DurationType.TIME_BOUND,
        period_days=1,
    )
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        consent_expire(consent_id=consent.pk)
        assert consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer)).status == "expired"
        renewed = consent_grant(
            user=consumer,
            purpose=purpose,
            actor=Actor.consumer(consumer),
            duration_type=DurationType.TIME_BOUND,
            period_days=1,
        )
    assert renewed.status == ConsentStatus.GRANTED
    assert _counts(renewed) == (3, 3, 3)


def test_material_notice_asks_earlier_consents_again(consumer, other_consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    consent_revoke(user=other_consumer, purpose=purpose, actor=Actor.consumer(other_consumer))

    version = _publish(purpose, material=True)

    purpose.refresh_from_db()
    assert purpose.current_version == version
    assert version.number == 2
    assert version.material
    assert list(version.data_categories.values_list("slug", flat=True)) == ["credit-score"]
    mine = Consent.objects.get(user=consumer)
    assert mine.status == ConsentStatus.RECONSENT_REQUIRED
    assert mine.version.number == 1
    assert not mine.is_active
    assert Consent.objects.get(user=other_consumer).status == ConsentStatus.REVOKED
    assert ConsentReceipt.objects.filter(consent=mine, event="reconsent_required").count() == 1
    published = AuditEvent.objects.get(action="purpose.version_published", data__version=2)
    assert published.subject is None
    assert published.chain == "global"
    assert published.data["material"] is True
    assert AuditEvent.objects.filter(subject=consumer, action="consent.reconsent_required").count() == 1


def test_accepting_a_material_notice_grants_the_new_version(consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    version = _publish(purpose, material=True)

    consent = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert consent.status == ConsentStatus.GRANTED
    assert consent.version == version
    assert _counts(consent) == (3, 3, 3)


def test_declining_a_material_notice_withdraws_consent(consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    _publish(purpose, material=True)

    consent = consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert consent.status == ConsentStatus.REVOKED
    assert consent.version.number == 1


def test_non_material_notice_keeps_consents_running(consumer, purpose):
    before = consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    version = _publish(purpose, material=False, summary="Clearer wording")

    consent = Consent.objects.get(pk=before.pk)
    assert consent.status == ConsentStatus.GRANTED
    assert consent.version.number == 1
    assert version.number == 2
    assert _counts(consent) == (1, 1, 1)
    assert AuditEvent.objects.filter(action="purpose.version_published").count() == 2


def test_first_version_is_never_a_re_consent_even_when_marked_material(consumer, db):
    purpose = Purpose.objects.create(slug="new", name="New", legal_basis="consent")
    version = _publish(purpose, material=True)

    assert version.number == 1
    assert not ConsentReceipt.objects.exists()


def test_publish_numbers_versions_in_sequence(purpose):
    numbers = [_publish(purpose, material=False).number for _ in range(3)]
    assert numbers == [2, 3, 4]


def test_a_failing_audit_write_leaves_nothing_behind(consumer, purpose, monkeypatch):
    def broken_event_record(**kwargs):
        raise IntegrityError("audit log unavailable")

    monkeypatch.setattr("consents.services.consents.event_record", broken_event_record)

    with pytest.raises(IntegrityError):
        consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    assert not Consent.objects.exists()
    assert not Consent.history.exists()
    assert not ConsentReceipt.objects.exists()


def test_a_rolled_back_caller_transaction_leaves_nothing_behind(consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    head = AuditChain.objects.get(key=f"subject:{consumer.pk}")
    counts = (
        Consent.history.count(),
        ConsentReceipt.objects.count(),
        AuditEvent.objects.count(),
    )

    class Abort(Exception):
        pass

    def revoke_and_publish_then_fail() -> None:
        with transaction.atomic():
            consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
            _publish(purpose, material=True)
            raise Abort

    with pytest.raises(Abort):
        revoke_and_publish_then_fail()

    assert Consent.objects.get().status == ConsentStatus.GRANTED
    assert (Consent.history.count(), ConsentReceipt.objects.count(), AuditEvent.objects.count()) == counts
    assert purpose.versions.count() == 1
    assert AuditChain.objects.get(key=f"subject:{consumer.pk}").last_seq == head.last_seq
    assert list(audit_chain_breaks()) == []


def test_consumers_are_audited_on_their_own_chains(consumer, other_consumer, purpose):
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    consent_grant(user=other_consumer, purpose=purpose, actor=Actor.consumer(other_consumer))
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))

    mine = list(AuditEvent.objects.filter(subject=consumer).order_by("seq").values_list("chain", "seq"))
    theirs = list(AuditEvent.objects.filter(subject=other_consumer).order_by("seq").values_list("chain", "seq"))
    assert mine == [(f"subject:{consumer.pk}", 1), (f"subject:{consumer.pk}", 2)]
    assert theirs == [(f"subject:{other_consumer.pk}", 1)]
    assert list(audit_chain_breaks()) == []


def test_reminder_mark_records_once_and_only_for_running_consents(consumer, purpose):
    consent = consent_grant(
        user=consumer,
        purpose=purpose,
        actor=Actor.consumer(consumer),
        duration_type=DurationType.TIME_BOUND,
        period_days=60,
    )

    marked = consent_reminder_mark(consent_id=consent.pk)
    assert marked is not None
    assert marked.reminder_sent_at is not None
    assert consent_reminder_mark(consent_id=consent.pk) is None
    assert AuditEvent.objects.filter(action="consent.expiry_reminder_sent", subject=consumer).count() == 1

    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    renewed = consent_grant(
        user=consumer,
        purpose=purpose,
        actor=Actor.consumer(consumer),
        duration_type=DurationType.TIME_BOUND,
        period_days=60,
    )
    assert renewed.reminder_sent_at is None
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    assert consent_reminder_mark(consent_id=consent.pk) is None
