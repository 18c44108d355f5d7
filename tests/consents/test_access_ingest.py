from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import AccessDaily, AccessEvent
from audit.services import Actor
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant, consent_revoke
from consents.services.partners import partner_subject_ensure
from tests.factories import DataCategoryFactory, PartnerFactory, PurposeFactory, SharingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(consumer):
    contact = DataCategoryFactory(slug="contact")
    balances = DataCategoryFactory(slug="balances")
    purpose = PurposeFactory(slug="offers", notice__categories=[contact, balances])
    partner = PartnerFactory(slug="acme")
    SharingFactory(partner=partner, purpose=purpose, categories=[contact])
    subject = partner_subject_ensure(partner=partner, user=consumer)
    return partner, purpose, subject


def report(subject, *, event_id="e1", purpose="offers", categories=("contact",), at=None, detail=""):
    return AccessReport(
        event_id=event_id,
        subject_id=subject.subject_id,
        purpose=purpose,
        categories=tuple(categories),
        accessed_at=at or timezone.now(),
        action="read",
        detail=detail,
    )


def test_access_with_active_consent_is_covered(setup, consumer):
    partner, purpose, subject = setup
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    [result] = access_events_ingest(partner=partner, reports=[report(subject)])
    assert (result.status, result.verdict) == ("created", "covered")
    assert AccessEvent.objects.get().verdict == "covered"


def test_access_before_grant_is_flagged_no_consent(setup, consumer):
    partner, purpose, subject = setup
    before = timezone.now() - timedelta(hours=1)
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    [result] = access_events_ingest(partner=partner, reports=[report(subject, at=before)])
    assert result.verdict == "no_consent"


def test_access_after_revoke_is_flagged_no_consent(setup, consumer):
    partner, purpose, subject = setup
    with time_machine.travel(timezone.now() - timedelta(hours=2), tick=False):
        consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    during = timezone.now() - timedelta(hours=1)
    consent_revoke(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    results = access_events_ingest(
        partner=partner, reports=[report(subject, event_id="during", at=during), report(subject, event_id="after")]
    )
    assert [r.verdict for r in results] == ["covered", "no_consent"]


def test_access_to_categories_outside_the_sharing_is_flagged(setup, consumer):
    partner, purpose, subject = setup
    consent_grant(user=consumer, purpose=purpose, actor=Actor.consumer(consumer))
    [result] = access_events_ingest(partner=partner, reports=[report(subject, categories=["contact", "balances"])])
    assert result.verdict == "outside_sharing"


def test_access_for_a_purpose_the_partner_does_not_receive_is_outside_sharing(setup, consumer):
    partner, _purpose, subject = setup
    PurposeFactory(slug="analytics")
    [result] = access_events_ingest(partner=partner, reports=[report(subject, purpose="analytics")])
    assert result.verdict == "outside_sharing"


def test_essential_purpose_is_covered_without_consent(consumer):
    contact = DataCategoryFactory(slug="contact")
    purpose = PurposeFactory(slug="fraud", legal_basis="legal_obligation", notice__categories=[contact])
    partner = PartnerFactory()
    SharingFactory(partner=partner, purpose=purpose)
    subject = partner_subject_ensure(partner=partner, user=consumer)
    [result] = access_events_ingest(partner=partner, reports=[report(subject, purpose="fraud")])
    assert result.verdict == "covered"


def test_replay_is_accepted_and_changes_nothing(setup):
    partner, _purpose, subject = setup
    at = timezone.now()
    first = access_events_ingest(partner=partner, reports=[report(subject, at=at)])
    again = access_events_ingest(partner=partner, reports=[report(subject, at=at)])
    assert first[0].status == "created"
    assert (again[0].status, again[0].verdict) == ("duplicate", first[0].verdict)
    assert AccessEvent.objects.count() == 1
    assert AccessDaily.objects.get().events == 1


def test_reused_event_id_with_different_content_is_a_conflict(setup):
    partner, _purpose, subject = setup
    at = timezone.now()
    access_events_ingest(partner=partner, reports=[report(subject, at=at)])
    [result] = access_events_ingest(partner=partner, reports=[report(subject, at=at, detail="something else")])
    assert (result.status, result.code) == ("conflict", "event_id_conflict")
    assert AccessEvent.objects.get().detail == ""


def test_bad_items_are_rejected_one_by_one_and_the_rest_stored(setup, consumer, other_consumer):
    partner, _purpose, subject = setup
    other_partner = PartnerFactory(slug="other")
    foreign = partner_subject_ensure(partner=other_partner, user=other_consumer)
    results = access_events_ingest(
        partner=partner,
        reports=[
            report(subject, event_id="ok"),
            report(foreign, event_id="foreign-subject"),
            report(subject, event_id="no-purpose", purpose="nope"),
            report(subject, event_id="no-category", categories=["contact", "dna"]),
            report(subject, event_id="future", at=timezone.now() + timedelta(hours=1)),
        ],
    )
    assert [(r.status, r.code) for r in results] == [
        ("created", None),
        ("rejected", "unknown_subject"),
        ("rejected", "unknown_purpose"),
        ("rejected", "unknown_category"),
        ("rejected", "accessed_at_in_future"),
    ]
    assert list(AccessEvent.objects.values_list("partner_event_id", flat=True)) == ["ok"]


def test_a_partner_cannot_report_on_another_partners_subjects(setup, other_consumer):
    partner, _purpose, _subject = setup
    rival = PartnerFactory(slug="rival")
    rivals_subject = partner_subject_ensure(partner=rival, user=other_consumer)
    [result] = access_events_ingest(partner=partner, reports=[report(rivals_subject)])
    assert result.code == "unknown_subject"
    assert not AccessEvent.objects.exists()
