"""State changes of consents and notices. One function per change, each in one transaction."""

from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.services import Actor, event_record
from consents.models import (
    Consent,
    ConsentMethod,
    ConsentStatus,
    DataCategory,
    DurationType,
    EventType,
    Partner,
    PartnerSubject,
    Purpose,
    PurposeVersion,
    ReceiptEvent,
    RevocationReason,
)
from consents.outbox import outbox_consent_changed
from consents.receipts import receipt_issue
from portal.models import User


class ConsentError(Exception):
    """A consent change that is not allowed; ``message`` is safe to show to the consumer."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def _consent_event(*, consent: Consent, event: str, actor: Actor) -> None:
    """The side records of every consent change: a signed receipt, an audit event and the partners' outbox events."""
    receipt = receipt_issue(consent=consent, event=event)
    event_record(
        actor=actor,
        subject=consent.user,
        action=f"consent.{event}",
        target=consent,
        data={
            "purpose": consent.purpose.slug,
            "version": consent.version.number,
            "method": consent.method,
            "status": consent.status,
            "expires_at": consent.expires_at,
            "reason": consent.revocation_reason or None,
            "receipt": str(receipt.id),
            "receipt_sha256": receipt.sha256,
        },
    )
    outbox_consent_changed(consent=consent, event_type=EventType(f"consent.{event}"))


def partner_subject_ensure(*, partner: Partner, user: User) -> PartnerSubject:
    """The partner's pairwise id for this consumer, created the first time the partner receives them."""
    subject, _created = PartnerSubject.objects.get_or_create(partner=partner, user=user)
    return subject


def _consentable(purpose: Purpose) -> None:
    if purpose.is_essential:
        raise ConsentError(
            str(_("“%(purpose)s” does not rely on your consent, so it cannot be switched on or off here."))
            % {"purpose": purpose.name},
            code="essential_purpose",
        )
    if not purpose.is_active or purpose.current_version is None:
        raise ConsentError(str(_("This purpose is not offered at the moment.")), code="purpose_unavailable")


def _locked_consent(user: User, purpose: Purpose) -> Consent | None:
    return Consent.objects.select_for_update().filter(user=user, purpose=purpose).first()


@transaction.atomic
def consent_grant(
    *,
    user: User,
    purpose: Purpose,
    actor: Actor,
    method: str = ConsentMethod.WEB,
    duration_type: str | None = None,
    period_days: int | None = None,
) -> Consent:
    """Record the consumer's consent to the purpose's current notice. Repeating it changes nothing."""
    _consentable(purpose)
    assert purpose.current_version is not None
    consent = _locked_consent(user, purpose)
    if consent is not None and consent.is_active and consent.version_id == purpose.current_version_id:
        return consent

    now = timezone.now()
    duration_type = duration_type or purpose.default_duration_type
    expires_at = None
    if duration_type == DurationType.TIME_BOUND:
        period_days = period_days or purpose.default_period_days
        if not period_days or period_days <= 0:
            raise ConsentError(str(_("A time-bound consent needs a period in days.")), code="period_required")
        expires_at = now + timedelta(days=period_days)
    elif duration_type == DurationType.ONE_TIME:
        period_days = None
        expires_at = now + timedelta(hours=settings.ONE_TIME_CONSENT_HOURS)
    else:
        period_days = None

    consent = consent or Consent(user=user, purpose=purpose)
    consent.version = purpose.current_version
    consent.status = ConsentStatus.GRANTED
    consent.method = method
    consent.duration_type = duration_type
    consent.period_days = period_days
    consent.granted_at = now
    consent.expires_at = expires_at
    consent.revoked_at = None
    consent.revocation_reason = ""
    consent.revocation_note = ""
    consent.changed_by = actor.kind
    consent.reminder_sent_at = None
    consent.updated_at = now
    consent.save()
    _consent_event(consent=consent, event=ReceiptEvent.GRANTED, actor=actor)
    return consent


@transaction.atomic
def consent_revoke(
    *,
    user: User,
    purpose: Purpose,
    actor: Actor,
    reason: str = RevocationReason.USER_ACTION,
    note: str = "",
    method: str = ConsentMethod.WEB,
) -> Consent:
    """Withdraw consent (or record a refusal if none was given). Repeating it changes nothing."""
    _consentable(purpose)
    assert purpose.current_version is not None
    consent = _locked_consent(user, purpose)
    if consent is not None and consent.status in {ConsentStatus.REVOKED, ConsentStatus.EXPIRED}:
        return consent

    now = timezone.now()
    consent = consent or Consent(user=user, purpose=purpose, version=purpose.current_version)
    consent.status = ConsentStatus.REVOKED
    consent.method = method
    consent.revoked_at = now
    consent.revocation_reason = reason
    consent.revocation_note = note.strip()[:500]
    consent.changed_by = actor.kind
    consent.updated_at = now
    consent.save()
    _consent_event(consent=consent, event=ReceiptEvent.REVOKED, actor=actor)
    return consent


@transaction.atomic
def consent_expire(*, consent_id: int) -> Consent | None:
    """End a time-bound or one-time consent whose time has come. Does nothing otherwise."""
    consent = (
        Consent.objects.select_for_update().select_related("purpose", "version", "user").filter(pk=consent_id).first()
    )
    now = timezone.now()
    if consent is None or consent.status != ConsentStatus.GRANTED or not consent.expires_at:
        return None
    if consent.expires_at > now:
        return None
    consent.status = ConsentStatus.EXPIRED
    consent.revoked_at = now
    consent.revocation_reason = RevocationReason.EXPIRED
    consent.changed_by = "system"
    consent.updated_at = now
    consent.save(update_fields=["status", "revoked_at", "revocation_reason", "changed_by", "updated_at"])
    _consent_event(consent=consent, event=ReceiptEvent.EXPIRED, actor=Actor.system("expiry"))
    return consent


@transaction.atomic
def purpose_version_publish(
    *,
    purpose: Purpose,
    description: str,
    retention: str,
    data_categories: Iterable[DataCategory],
    material: bool,
    change_summary: str,
    actor: Actor,
) -> PurposeVersion:
    """Publish a new notice for a purpose. A material change asks everyone who agreed before to decide again."""
    purpose = Purpose.objects.select_for_update().get(pk=purpose.pk)
    number = (purpose.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = PurposeVersion.objects.create(
        purpose=purpose,
        number=number,
        description=description,
        retention=retention,
        material=material,
        change_summary=change_summary,
        published_at=timezone.now(),
    )
    version.data_categories.set(data_categories)
    purpose.current_version = version
    purpose.save(update_fields=["current_version"])
    event_record(
        actor=actor,
        subject=None,
        action="purpose.version_published",
        target=version,
        data={"purpose": purpose.slug, "version": number, "material": material, "summary": change_summary},
    )
    if material and number > 1:
        stale = (
            Consent.objects.select_for_update()
            .filter(purpose=purpose, status=ConsentStatus.GRANTED)
            .exclude(version=version)
            .select_related("user", "purpose", "version")
        )
        now = timezone.now()
        for consent in stale:
            consent.status = ConsentStatus.RECONSENT_REQUIRED
            consent.changed_by = actor.kind
            consent.updated_at = now
            consent.save(update_fields=["status", "changed_by", "updated_at"])
            _consent_event(consent=consent, event=ReceiptEvent.RECONSENT_REQUIRED, actor=actor)
    return version
