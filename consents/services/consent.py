"""State changes of consents and notices. One function per change, each in one transaction."""

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.services import Actor, event_record, subject_lock
from consents.models import (
    Consent,
    ConsentMethod,
    ConsentStatus,
    DataCategory,
    DurationType,
    EventType,
    GpcSignal,
    Initiator,
    LegalBasis,
    Partner,
    PartnerSubject,
    Purpose,
    PurposeVersion,
    ReceiptEvent,
    RevocationReason,
    webhook_secret_generate,
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


@transaction.atomic
def partner_webhook_secret_rotate(*, partner: Partner, actor: Actor) -> Partner:
    """Give the partner a new webhook signing secret; the current one stays valid as the previous one.

    Deliveries are signed with both until the previous secret is cleared, so the partner can
    switch over without missing a webhook. The audit log records a fingerprint, never a secret.
    """
    partner = Partner.objects.select_for_update().get(pk=partner.pk)
    partner.webhook_secret_previous = partner.webhook_secret
    partner.webhook_secret = webhook_secret_generate()
    partner.save(update_fields=["webhook_secret", "webhook_secret_previous"])
    event_record(
        actor=actor,
        subject=None,
        action="partner.webhook_secret_rotated",
        target=partner,
        data={"partner": partner.slug, "fingerprint": secret_fingerprint(partner.webhook_secret)},
    )
    return partner


def secret_fingerprint(secret: str) -> str:
    """A short, non-reversible name for a secret, safe to log and to show."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


def _consentable(purpose: Purpose) -> None:
    if purpose.is_essential:
        raise ConsentError(
            str(_("“%(purpose)s” does not rely on your consent, so it cannot be switched on or off here."))
            % {"purpose": purpose.name},
            code="essential_purpose",
        )
    if not purpose.is_active or purpose.current_version is None:
        raise ConsentError(str(_("This purpose is not offered at the moment.")), code="purpose_unavailable")


def _purpose_for_grant(purpose: Purpose) -> Purpose:
    """The purpose as it stands now, with its current notice.

    On PostgreSQL the row is share-locked until commit: a staff member publishing a material new
    notice (``purpose_version_publish`` locks the row for update) then waits for grants in flight,
    and a grant that starts during a publication waits for it and consents to the new notice, so
    no consent to the old notice slips past the re-consent sweep. Grants do not block each other.
    SQLite runs write transactions one at a time, so it needs no lock.
    """
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(Purpose._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR SHARE", [purpose.pk])  # noqa: S608
    return Purpose.objects.select_related("current_version").get(pk=purpose.pk)


def _locked_consent(user: User, purpose: Purpose) -> Consent | None:
    return Consent.objects.select_for_update(of=("self",)).filter(user=user, purpose=purpose).first()


def _consent_locked_by_id(consent_id: int) -> Consent | None:
    """A consent row, locked after its consumer's subject lock (the order every service keeps)."""
    user = User.objects.filter(consents__pk=consent_id).first()
    if user is None:
        return None
    subject_lock(user)
    return (
        Consent.objects.select_for_update(of=("self",))
        .select_related("purpose", "version", "user")
        .filter(pk=consent_id)
        .first()
    )


def _grant_terms(purpose: Purpose, duration_type: str | None, period_days: int | None) -> tuple[str, int | None]:
    """The duration type and period a grant asks for, defaulting to the purpose's; checked."""
    duration_type = duration_type or purpose.default_duration_type
    if duration_type not in DurationType.values:
        raise ConsentError(str(_("This duration is not offered.")), code="duration_invalid")
    if duration_type != DurationType.TIME_BOUND:
        return duration_type, None
    period_days = period_days or purpose.default_period_days
    if not period_days or period_days <= 0:
        raise ConsentError(str(_("A time-bound consent needs a period in days.")), code="period_required")
    return duration_type, period_days


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
    """Record the consumer's consent to the purpose's current notice.

    Also how a consumer accepts a new notice after ``reconsent_required`` and renews a consent
    that was withdrawn or expired. Repeating an active grant on the same notice and terms
    changes nothing: no history row, no receipt, no audit event.
    """
    purpose = _purpose_for_grant(purpose)
    _consentable(purpose)
    assert purpose.current_version is not None
    requested_type = duration_type
    duration_type, period_days = _grant_terms(purpose, duration_type, period_days)
    subject_lock(user)
    consent = _locked_consent(user, purpose)
    if (
        consent is not None
        and consent.is_active
        and consent.version_id == purpose.current_version_id
        and (requested_type is None or (consent.duration_type, consent.period_days) == (duration_type, period_days))
    ):
        return consent

    now = timezone.now()
    expires_at = None
    if duration_type == DurationType.TIME_BOUND:
        assert period_days is not None
        expires_at = now + timedelta(days=period_days)
    elif duration_type == DurationType.ONE_TIME:
        expires_at = now + timedelta(hours=settings.ONE_TIME_CONSENT_HOURS)

    consent = consent or Consent(user=user, purpose=purpose)
    consent.purpose = purpose
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
    """Withdraw consent, decline a new notice, or record a refusal if none was ever given.

    Repeating it (or revoking a consent that already expired) changes nothing.
    """
    _consentable(purpose)
    assert purpose.current_version is not None
    subject_lock(user)
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
    """End a time-bound or one-time consent whose time has come. Does nothing otherwise (idempotent)."""
    consent = _consent_locked_by_id(consent_id)
    now = timezone.now()
    if consent is None or consent.status != ConsentStatus.GRANTED or not consent.expires_at:
        return None
    if consent.expires_at > now:
        return None
    consent.status = ConsentStatus.EXPIRED
    consent.revoked_at = now
    consent.revocation_reason = RevocationReason.EXPIRED
    consent.changed_by = Initiator.SYSTEM
    consent.updated_at = now
    consent.save(update_fields=["status", "revoked_at", "revocation_reason", "changed_by", "updated_at"])
    _consent_event(consent=consent, event=ReceiptEvent.EXPIRED, actor=Actor.system("expiry"))
    return consent


@transaction.atomic
def consent_reminder_mark(*, consent_id: int) -> Consent | None:
    """Note that the expiry reminder for a consent went out, so it is sent once only.

    Returns ``None`` (and changes nothing) when the reminder was already marked or the consent
    is no longer running.
    """
    consent = _consent_locked_by_id(consent_id)
    if consent is None or consent.reminder_sent_at is not None or not consent.is_active:
        return None
    consent.reminder_sent_at = timezone.now()
    consent.save(update_fields=["reminder_sent_at"])
    event_record(
        actor=Actor.system("expiry reminder"),
        subject=consent.user,
        action="consent.expiry_reminder_sent",
        target=consent,
        data={"purpose": consent.purpose.slug, "expires_at": consent.expires_at},
    )
    return consent


# Consumers who agreed under another legal basis or GPC coverage agreed to something else.
MATERIAL_TERMS = frozenset({"legal_basis", "gpc_covered"})


@dataclass(frozen=True)
class PurposeTerms:
    """The fields of a purpose the consumer is told before deciding, beside the notice text.

    They change only with a new notice, so the change is published, audited and, when material,
    put to everyone who agreed before (with receipts and partner events).
    """

    legal_basis: str
    gpc_covered: bool
    default_duration_type: str
    default_period_days: int | None

    @classmethod
    def of(cls, purpose: Purpose) -> "PurposeTerms":
        return cls(
            legal_basis=purpose.legal_basis,
            gpc_covered=purpose.gpc_covered,
            default_duration_type=purpose.default_duration_type,
            default_period_days=purpose.default_period_days,
        )


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
    terms: PurposeTerms | None = None,
) -> PurposeVersion:
    """Publish a new notice for a purpose, with new ``terms`` if given.

    A material change asks everyone who agreed before to decide again.
    """
    # No-key update lock: consents being inserted meanwhile take a key-share lock on this row
    # and must not wait for it; grants in flight hold a share lock that this waits for.
    purpose = Purpose.objects.select_for_update(no_key=True).get(pk=purpose.pk)
    changed_terms: dict[str, list[Any]] = {}
    if terms is not None:
        before = asdict(PurposeTerms.of(purpose))
        for field, value in asdict(terms).items():
            if before[field] != value:
                changed_terms[field] = [before[field], value]
                setattr(purpose, field, value)
    number = (purpose.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    if number > 1 and MATERIAL_TERMS & changed_terms.keys():
        material = True
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
    purpose.save(update_fields=["current_version", *changed_terms])
    data: dict[str, Any] = {"purpose": purpose.slug, "version": number, "material": material, "summary": change_summary}
    if changed_terms:
        data["terms"] = changed_terms
    event_record(actor=actor, subject=None, action="purpose.version_published", target=version, data=data)
    if material and number > 1:
        stale = Consent.objects.filter(purpose=purpose, status=ConsentStatus.GRANTED).exclude(version=version)
        for consent_id in stale.order_by("pk").values_list("pk", flat=True):
            _consent_reconsent_require(consent_id=consent_id, version=version, actor=actor)
    return version


def _consent_reconsent_require(*, consent_id: int, version: PurposeVersion, actor: Actor) -> None:
    """Ask the consumer to decide again after a material change (inside the publication's transaction)."""
    consent = _consent_locked_by_id(consent_id)
    if consent is None or consent.status != ConsentStatus.GRANTED or consent.version_id == version.pk:
        return
    consent.status = ConsentStatus.RECONSENT_REQUIRED
    consent.changed_by = actor.kind
    consent.updated_at = timezone.now()
    consent.save(update_fields=["status", "changed_by", "updated_at"])
    _consent_event(consent=consent, event=ReceiptEvent.RECONSENT_REQUIRED, actor=actor)


@transaction.atomic
def gpc_signal_honour(*, user: User) -> GpcSignal | None:
    """Opt the consumer out of every GPC-covered purpose, the first time their browser says so.

    Granted (or awaiting re-consent) purposes are withdrawn and undecided ones recorded as refused,
    with method ``gpc``. Returns the new record, or ``None`` when the signal was already honoured:
    the signal is applied once, so a consent the consumer gives explicitly afterwards stands.
    """
    signal, created = GpcSignal.objects.get_or_create(user=user)
    if not created:
        return None
    purposes = Purpose.objects.published().filter(gpc_covered=True, legal_basis=LegalBasis.CONSENT)
    ended = set(
        Consent.objects.filter(
            user=user, purpose__in=purposes, status__in=[ConsentStatus.REVOKED, ConsentStatus.EXPIRED]
        ).values_list("purpose_id", flat=True)
    )
    actor = Actor.consumer(user)
    opted_out = []
    for purpose in purposes.select_related("current_version"):
        if purpose.pk in ended:
            continue
        consent_revoke(
            user=user,
            purpose=purpose,
            actor=actor,
            method=ConsentMethod.GPC,
        )
        opted_out.append(purpose.slug)
    signal.purposes = opted_out
    signal.save(update_fields=["purposes"])
    event_record(actor=actor, subject=user, action="gpc.honoured", target=signal, data={"purposes": opted_out})
    return signal
