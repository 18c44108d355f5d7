from dataclasses import dataclass
from typing import Any

import pytest

from audit.services import Actor
from consents.models import OutboxEvent
from consents.services.consents import consent_grant, consent_revoke
from consents.services.partners import partner_subject_ensure
from tests.factories import PurposeFactory, SharingFactory, UserFactory


@dataclass
class ApiWorld:
    """Two partners, two consumers and three purposes.

    Partner A receives marketing, analytics and fraud-prevention (legitimate interest); partner B
    receives marketing only. Alice granted marketing; Bob granted it and then withdrew.
    """

    a: Any
    b: Any
    alice: Any
    bob: Any
    marketing: Any
    analytics: Any
    fraud: Any
    subjects: dict[tuple[str, str], str]

    def sid(self, partner: str, consumer: str) -> str:
        return self.subjects[(partner, consumer)]


@pytest.fixture
def api_world(api_partner_factory) -> ApiWorld:
    a = api_partner_factory("partner-a")
    b = api_partner_factory("partner-b")
    alice = UserFactory(email="alice@example.com")
    bob = UserFactory(email="bob@example.com")
    marketing = PurposeFactory(slug="marketing", name="Marketing")
    analytics = PurposeFactory(slug="analytics", name="Analytics")
    fraud = PurposeFactory(slug="fraud-prevention", name="Fraud prevention", legal_basis="legitimate_interest")
    for purpose in (marketing, analytics, fraud):
        SharingFactory(partner=a.partner, purpose=purpose)
    SharingFactory(partner=b.partner, purpose=marketing)
    consent_grant(user=alice, purpose=marketing, actor=Actor.consumer(alice))
    consent_grant(user=bob, purpose=marketing, actor=Actor.consumer(bob))
    consent_revoke(user=bob, purpose=marketing, actor=Actor.consumer(bob))
    # Setting the world up announced those consents to the partners; the feed tests create the
    # events they examine themselves, so they start from an empty outbox.
    OutboxEvent.objects.all().delete()
    subjects = {
        (key, user_key): partner_subject_ensure(partner=p.partner, user=user).subject_id
        for key, p in (("a", a), ("b", b))
        for user_key, user in (("alice", alice), ("bob", bob))
    }
    return ApiWorld(a, b, alice, bob, marketing, analytics, fraud, subjects)
