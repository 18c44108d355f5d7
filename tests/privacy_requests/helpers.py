"""Shared set-up for the privacy-request tests: a consumer with consents, history, receipts and partners."""

import io
import json
import zipfile
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from audit.services import Actor
from consents.models import Partner, Purpose
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant, consent_revoke
from consents.services.partners import partner_subject_ensure
from portal.models import User
from privacy_requests.models import PrivacyRequest
from privacy_requests.storage import export_storage
from tests.factories import PartnerFactory, PurposeFactory, SharingFactory


@dataclass
class ConsumerData:
    user: User
    purposes: list[Purpose]
    partners: list[Partner]
    notes: list[str] = field(default_factory=list)


def consumer_data_seed(
    user: User, *, note: str = "I changed my mind", partners_with_webhook: bool = True
) -> ConsumerData:
    """Two consented purposes, each shared with its own partner; one consent revoked with a note and granted again."""
    marketing = PurposeFactory(slug=f"marketing-{user.pk}", name="Marketing")
    research = PurposeFactory(slug=f"research-{user.pk}", name="Research")
    url = "https://partner.example.com/webhooks" if partners_with_webhook else ""
    ads = PartnerFactory(slug=f"ads-{user.pk}", name=f"Ads Co {user.pk}", webhook_url=url)
    lab = PartnerFactory(slug=f"lab-{user.pk}", name=f"Lab Inc {user.pk}", webhook_url="")
    SharingFactory(partner=ads, purpose=marketing)
    SharingFactory(partner=lab, purpose=research)
    actor = Actor.consumer(user)
    consent_grant(user=user, purpose=marketing, actor=actor)
    consent_revoke(user=user, purpose=marketing, actor=actor, note=note)
    consent_grant(user=user, purpose=marketing, actor=actor)
    consent_grant(user=user, purpose=research, actor=actor)
    # The partners have received this consumer (the webhooks flow creates these on first delivery).
    ads_subject = partner_subject_ensure(partner=ads, user=user)
    partner_subject_ensure(partner=lab, user=user)
    # The advertiser reported using the data, with a note that names the person.
    access_events_ingest(
        partner=ads,
        reports=[
            AccessReport(
                event_id=f"access-{user.pk}",
                subject_id=ads_subject.subject_id,
                purpose=marketing.slug,
                categories=tuple(marketing.current_version.data_categories.values_list("slug", flat=True)),
                accessed_at=timezone.now(),
                action="read",
                detail=f"Campaign for {note}",
            )
        ],
    )
    return ConsumerData(user=user, purposes=[marketing, research], partners=[ads, lab], notes=[note])


def export_archive(request: PrivacyRequest) -> zipfile.ZipFile:
    request.refresh_from_db()
    with export_storage().open(request.result_file.name, "rb") as handle:
        return zipfile.ZipFile(io.BytesIO(handle.read()))


def export_json(archive: zipfile.ZipFile, section: str) -> dict[str, Any]:
    return json.loads(archive.read(f"{section}.json"))
