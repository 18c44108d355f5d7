"""Emails to consumers about their consents and the accesses to their data, sent through ``portal.emails``."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import formats, translation

from audit.models import AccessEvent, NotificationKind
from consents.models import Consent, Partner, PurposeVersion, ReceiptEvent
from portal.emails import send_mail
from portal.models import User
from portal.notifications import settings_links
from portal.timezones import format_datetime, user_zone, zone_override

logger = logging.getLogger(__name__)

FLAGGED_ACCESS_TASK = "consents.tasks.flagged_access_notify"
MATERIAL_CHANGE_TASK = "consents.tasks.material_change_notify"


def consent_language(consent: Consent) -> str:
    """The language the consumer used when they gave this consent (from its latest grant receipt)."""
    receipt = consent.receipts.filter(event=ReceiptEvent.GRANTED).order_by("-issued_at").first()
    code = receipt.payload.get("language") if receipt is not None else None
    if code:
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            pass
    return settings.LANGUAGE_CODE


def expiry_reminder_send(consent: Consent) -> None:
    """Tell the consumer that a time-bound consent is about to end and how to renew it.

    Raises ``portal.emails.EmailError`` when the mail server refuses it.
    """
    send_mail(
        "consents/email/expiry_reminder",
        to=consent.user.email,
        language=consent_language(consent),
        time_zone=user_zone(consent.user),
        subject_prefix=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX,
        context={
            "purpose": consent.purpose,
            "expires_at": consent.expires_at,
            "consents_url": settings.SITE_URL + reverse("consents:list"),
        },
    )


# --- Times in the consumer's zone ---------------------------------------------------------------
# Times go through the portal's one formatting path (``portal.timezones``); a month is named here.


def consumer_month(user: User, month_start: datetime) -> str:
    """A month ("November 2026") in the active language, of a start given in the consumer's zone."""
    return formats.date_format(month_start.astimezone(user_zone(user)), "YEAR_MONTH_FORMAT")


# --- Notifications the consumer chose (profile, "Email settings") -------------------------------


def _user_language(user: User) -> str:
    return user.language or settings.LANGUAGE_CODE


def _send(user: User, kind: NotificationKind, template_prefix: str, context: dict[str, object]) -> None:
    links = settings_links(user, kind)
    # Rendered in the consumer's zone too, so any time a template shows is theirs.
    with zone_override(user):
        send_mail(
            template_prefix,
            to=user.email,
            language=_user_language(user),
            subject_prefix=settings.ACCOUNT_EMAIL_SUBJECT_PREFIX,
            headers=links.headers,
            context={**context, "settings_url": links.settings_url},
        )


def material_change_send(*, user: User, version: PurposeVersion) -> None:
    """Tell the consumer that a notice they agreed to changed materially and needs their decision.

    Raises ``portal.emails.EmailError`` when the mail server refuses it.
    """
    with translation.override(_user_language(user)):
        published_at = format_datetime(version.published_at, user_zone(user))
    context = {
        "purpose": version.purpose,
        "change_summary": version.in_language(_user_language(user)).change_summary,
        "published_at": published_at,
        "review_url": settings.SITE_URL + reverse("consents:review", args=[version.purpose.slug]),
    }
    _send(user, NotificationKind.MATERIAL_CHANGE, "consents/email/material_change", context)


@dataclass(frozen=True)
class FlaggedAccessLine:
    """One flagged access as the email lists it."""

    event: AccessEvent
    at: str


@dataclass(frozen=True)
class PartnerFlaggedAccesses:
    """A partner's flagged accesses in one email, with the link to them in the access log."""

    partner: Partner
    url: str
    accesses: list[FlaggedAccessLine]


def flagged_access_send(*, user: User, events: Sequence[AccessEvent], total: int) -> None:
    """Tell the consumer that partners accessed their data without consent or beyond what was shared.

    ``events`` (partner and purpose loaded) are listed by partner; ``total`` says how many there were
    in all. Raises ``portal.emails.EmailError`` when the mail server refuses it.
    """
    timeline = settings.SITE_URL + reverse("audit:access_timeline")
    by_partner: dict[int, PartnerFlaggedAccesses] = {}
    with translation.override(_user_language(user)):
        for event in events:
            group = by_partner.get(event.partner_id)
            if group is None:
                query = urlencode({"partner": event.partner.slug, "flagged": "on"})
                group = by_partner[event.partner_id] = PartnerFlaggedAccesses(event.partner, f"{timeline}?{query}", [])
            group.accesses.append(FlaggedAccessLine(event, format_datetime(event.accessed_at, user_zone(user))))
    context = {
        "partners": list(by_partner.values()),
        "total": total,
        "more": total - len(events),
        "access_url": f"{timeline}?flagged=on",
    }
    _send(user, NotificationKind.FLAGGED_ACCESS, "consents/email/flagged_access", context)


def flagged_access_notify_schedule(user_ids: Sequence[int]) -> None:
    """Queue one coalescing task per consumer, ``FLAGGED_ACCESS_NOTIFY_DELAY`` seconds from now.

    A burst of flagged accesses queues one task per consumer: the cache key holds until just before
    that task runs, and the task tells about every flagged access not yet told.
    """
    delay = settings.FLAGGED_ACCESS_NOTIFY_DELAY
    keys = {user_id: f"notify:flagged-access:{user_id}" for user_id in user_ids}
    try:
        # One round trip for the whole batch: in a burst most consumers' emails are already queued,
        # and their tasks will tell about these accesses too. The others still go through ``add``.
        queued = cache.get_many(list(keys.values()))
    except Exception:
        logger.exception("could not read which flagged-access emails are queued")
        queued = {}
    for user_id, key in keys.items():
        if key in queued:
            continue
        try:
            if cache.add(key, "1", timeout=max(delay - 5, 1)):
                current_app.signature(FLAGGED_ACCESS_TASK).apply_async((user_id,), countdown=delay)
        except Exception:
            # The access is stored and shown either way; only the email is late (the next flagged access queues it).
            logger.exception("could not queue the flagged-access email for user %s", user_id)


def material_change_notify_queue(version_id: int) -> None:
    """Queue the emails about a material notice change (after its publication commits)."""
    try:
        current_app.signature(MATERIAL_CHANGE_TASK).apply_async((version_id,))
    except Exception:
        logger.exception("could not queue the emails about notice version %s", version_id)


@dataclass(frozen=True)
class PartnerMonth:
    """A partner's accesses to the consumer's data in one month."""

    partner: Partner
    events: int
    flagged: int


def monthly_digest_send(*, user: User, month_start: datetime, rows: Sequence[PartnerMonth]) -> None:
    """Send the consumer's monthly summary of who accessed their data (``month_start`` in their zone).

    Raises ``portal.emails.EmailError`` when the mail server refuses it.
    """
    with translation.override(_user_language(user)):
        month = consumer_month(user, month_start)
    context = {
        "month": month,
        "rows": rows,
        "total": sum(row.events for row in rows),
        "flagged": sum(row.flagged for row in rows),
        "access_url": settings.SITE_URL + reverse("audit:access"),
    }
    _send(user, NotificationKind.MONTHLY_DIGEST, "consents/email/monthly_digest", context)
