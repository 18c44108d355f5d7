"""The demo consumer's past: their consent decisions and the accesses partners reported."""

import random
from datetime import timedelta

from django.utils import timezone

from audit.access import access_event_record_staff
from audit.models import AccessEvent
from audit.services import Actor
from audit.staff_access import staff_access_reason_state
from consents.models import Consent, Partner, Purpose
from consents.services.access import AccessReport, access_events_ingest
from consents.services.consents import consent_grant, consent_revoke
from consents.services.notices import purpose_version_publish
from consents.services.partners import partner_subject_ensure
from portal.demo import catalogue_zh_hans as zh
from portal.demo.catalogue import (
    CREDIT_BUREAU,
    CREDIT_CHANGE_SUMMARY,
    CREDIT_NOTICE_V2,
    data_categories,
    partner_ensure,
)
from portal.models import User


def _decided(consumer: User, slug: str) -> bool:
    return Consent.objects.filter(user=consumer, purpose__slug=slug).exists()


def consumer_consents_ensure(*, consumer: User, staff: User) -> None:
    """The demo consumer's decisions: two running consents, one withdrawn, one time-bound, one to renew.

    The last one comes from a material second notice for credit-risk assessment, published by
    staff after the consumer agreed to the first.
    """
    me = Actor.consumer(consumer)
    for slug in ("personalised-offers", "product-analytics", "research-with-affiliates"):
        if not _decided(consumer, slug):
            consent_grant(user=consumer, purpose=Purpose.objects.get(slug=slug), actor=me)
    if not _decided(consumer, "advertising-partners"):
        advertising = Purpose.objects.get(slug="advertising-partners")
        consent_grant(user=consumer, purpose=advertising, actor=me)
        consent_revoke(
            user=consumer, purpose=advertising, actor=me, note="I don't want my data passed on to advertisers."
        )
    credit = Purpose.objects.get(slug="credit-risk-assessment")
    if not _decided(consumer, credit.slug):
        consent_grant(user=consumer, purpose=credit, actor=me)
    if credit.versions.count() == 1:
        purpose_version_publish(
            purpose=credit,
            description=CREDIT_NOTICE_V2.description,
            retention=CREDIT_NOTICE_V2.retention,
            data_categories=data_categories(CREDIT_NOTICE_V2.data),
            material=True,
            change_summary=CREDIT_CHANGE_SUMMARY,
            actor=Actor.staff(staff),
            translations={
                zh.LANGUAGE: {
                    "name": zh.CREDIT_NOTICE_V2[0],
                    "description": zh.CREDIT_NOTICE_V2[1],
                    "retention": zh.CREDIT_NOTICE_V2[2],
                    "change_summary": zh.CREDIT_CHANGE_SUMMARY,
                }
            },
        )
    partner_ensure(CREDIT_BUREAU)


# What each demo partner does with the consumer's data: (partner, purpose, categories, action, detail).
ACCESS_PATTERNS = [
    (
        "harbor-payments",
        "fraud-prevention",
        ("transaction-history", "device-browsing"),
        "read",
        "Card payment screened",
    ),
    ("mailloop", "service-emails", ("contact-details",), "read", "Statement notification sent"),
    ("atlas-product-insights", "product-analytics", ("device-browsing",), "read", "App usage aggregated"),
    ("meridian-research-labs", "personalised-offers", ("transaction-history",), "read", "Offer model scored"),
]


# What the partners say of each access, as they would report it to a consumer reading in Chinese.
ACCESS_DETAILS_ZH_HANS = {
    "Card payment screened": "已筛查银行卡付款",
    "Statement notification sent": "已发送账单通知",
    "App usage aggregated": "已汇总应用使用情况",
    "Offer model scored": "已用优惠模型评分",
    "Audience segment refreshed": "已更新受众分组",
    "Location enrichment": "位置数据补充",
    "Looked up the account after a phone call": "电话沟通后查看了账户",
}


def access_history_ensure(*, consumer: User, staff: User) -> None:
    """A few hundred reported accesses over the last 90 days, two of them flagged, and one staff look.

    Accesses for essential purposes span the whole period; accesses relying on consent start when
    the demo consumer gave it (the moment the demo was seeded), so they are covered by it. What the
    partners say of each access is in the consumer's language (English or Simplified Chinese).
    """
    if AccessEvent.objects.filter(user=consumer).exists():
        return
    chinese = consumer.language == "zh-hans"
    # Partners' event ids are unique per partner, so each demo consumer's events get their own.
    prefix = "demo-zh" if chinese else "demo"

    def said(text: str) -> str:
        return ACCESS_DETAILS_ZH_HANS[text] if chinese else text

    now = timezone.now()
    rng = random.Random(2026)  # noqa: S311 (demo data, not security)
    for slug, purpose, categories, action, detail in ACCESS_PATTERNS:
        partner = Partner.objects.get(slug=slug)
        subject = partner_subject_ensure(partner=partner, user=consumer)
        essential = Purpose.objects.get(slug=purpose).is_essential
        count = 120 if essential else 15
        reports = [
            AccessReport(
                event_id=f"{prefix}-{slug}-{n}",
                subject_id=subject.subject_id,
                purpose=purpose,
                categories=categories,
                accessed_at=now - timedelta(minutes=rng.randint(1, 90 * 24 * 60)) if essential else now,
                action=action,
                detail=said(detail),
            )
            for n in range(count)
        ]
        access_events_ingest(partner=partner, reports=reports)
    flagged = [
        # After the consumer withdrew consent to advertising, an advertiser still used their data.
        ("brightside-ads", "advertising-partners", ("device-browsing",), "Audience segment refreshed"),
        # A data broker read location data it never receives.
        ("crestline-data-exchange", "advertising-partners", ("location",), "Location enrichment"),
    ]
    for slug, purpose, categories, detail in flagged:
        partner = Partner.objects.get(slug=slug)
        subject = partner_subject_ensure(partner=partner, user=consumer)
        report = AccessReport(
            event_id=f"{prefix}-{slug}-flagged",
            subject_id=subject.subject_id,
            purpose=purpose,
            categories=categories,
            accessed_at=now,
            action="read",
            detail=said(detail),
        )
        access_events_ingest(partner=partner, reports=[report])
    reason = staff_access_reason_state(staff=staff, consumer=consumer, code="support_request", reference="#4821")
    access_event_record_staff(
        staff=staff,
        consumer=consumer,
        what=said("Looked up the account after a phone call"),
        records="consents.consent",
        reason=reason,
    )
