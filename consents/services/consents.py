"""State changes of consents: grant, revoke, expire, re-consent, GPC; one function per change, each atomic."""

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.utils import bulk_update_with_history

from audit.actions import AuditAction
from audit.services import Actor, EventEntry, event_record, events_record, subject_lock, subjects_lock
from consents.errors import DomainError
from consents.models import (
    Consent,
    ConsentMethod,
    ConsentReceipt,
    ConsentStatus,
    DurationType,
    EventType,
    GpcSignal,
    Initiator,
    LegalBasis,
    Purpose,
    PurposeVersion,
    ReceiptEvent,
    RevocationReason,
)
from consents.receipts import receipt_batch_prepare, receipt_issue, receipts_issue
from consents.services.outbox import deliveries_gathered, outbox_consent_changed, outbox_consents_changed
from portal.models import User

# A decision is one row per (consumer, purpose): a first decision inserts it, later ones update these.
GRANT_FIELDS = [
    "version",
    "status",
    "method",
    "duration_type",
    "period_days",
    "granted_at",
    "expires_at",
    "revoked_at",
    "revocation_reason",
    "revocation_note",
    "changed_by",
    "reminder_sent_at",
    "updated_at",
]
REVOKE_FIELDS = ["status", "method", "revoked_at", "revocation_reason", "revocation_note", "changed_by", "updated_at"]


def _consent_event_data(consent: Consent, receipt: ConsentReceipt) -> dict[str, Any]:
    """The facts the audit event of a consent change records."""
    return {
        "purpose": consent.purpose.slug,
        "version": consent.version.number,
        "method": consent.method,
        "status": consent.status,
        "expires_at": consent.expires_at,
        "reason": consent.revocation_reason or None,
        "receipt": str(receipt.id),
        "receipt_sha256": receipt.sha256,
    }


def _consent_event(*, consent: Consent, event: str, actor: Actor) -> None:
    """The side records of every consent change: a signed receipt, an audit event and the partners' outbox events."""
    receipt = receipt_issue(consent=consent, event=event)
    event_record(
        actor=actor,
        subject=consent.user,
        action=AuditAction(f"consent.{event}"),
        target=consent,
        data=_consent_event_data(consent, receipt),
    )
    outbox_consent_changed(consent=consent, event_type=EventType(f"consent.{event}"))


def _consentable(purpose: Purpose) -> None:
    if purpose.is_essential:
        raise DomainError(
            str(_("“%(purpose)s” does not rely on your consent, so it cannot be switched on or off here."))
            % {"purpose": purpose.l10n.name},
            code="essential_purpose",
        )
    if not purpose.is_active or purpose.current_version is None:
        raise DomainError(str(_("This purpose is not offered at the moment.")), code="purpose_unavailable")


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


def _decision_save(consent: Consent, fields: list[str]) -> None:
    """Insert the consumer's first decision on a purpose, or update only the fields a later one sets."""
    consent.save(update_fields=fields if consent.pk is not None else None)


def _grant_terms(purpose: Purpose, duration_type: str | None, period_days: int | None) -> tuple[str, int | None]:
    """The duration type and period a grant asks for, defaulting to the purpose's; checked."""
    duration_type = duration_type or purpose.default_duration_type
    if duration_type not in DurationType.values:
        raise DomainError(str(_("This duration is not offered.")), code="duration_invalid")
    if duration_type != DurationType.TIME_BOUND:
        return duration_type, None
    period_days = period_days or purpose.default_period_days
    if not period_days or period_days <= 0:
        raise DomainError(str(_("A time-bound consent needs a period in days.")), code="period_required")
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
    _decision_save(consent, GRANT_FIELDS)
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
    _decision_save(consent, REVOKE_FIELDS)
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
        action=AuditAction.CONSENT_EXPIRY_REMINDER_SENT,
        target=consent,
        data={"purpose": consent.purpose.slug, "expires_at": consent.expires_at},
    )
    return consent


@transaction.atomic
def consents_reconsent_require(*, consent_ids: list[int], version: PurposeVersion, actor: Actor) -> None:
    """Ask the consumers to decide again after a material change of the notice, a batch at a time.

    Runs in a batch of the notice's publication run (``consents.services.publication``), for
    consents of one purpose; a consent given meanwhile to this or a newer notice stands. Each one
    gets everything a change of consent carries (history row, signed receipt, audit event,
    partners' outbox events), written in bulk: the consumers' chain heads are locked first (the
    order every service keeps), then the consents in one statement, then each kind of record is
    inserted in one statement.
    """
    receipt_batch = receipt_batch_prepare(purpose_id=version.purpose_id)
    user_ids = Consent.objects.filter(pk__in=consent_ids).values_list("user_id", flat=True)
    subjects_lock(user_ids)
    consents = list(
        Consent.objects.select_for_update(of=("self",), no_key=True)
        .select_related("purpose", "version", "user")
        .filter(pk__in=consent_ids, status=ConsentStatus.GRANTED, version__number__lt=version.number)
        .order_by("pk")
    )
    if not consents:
        return
    now = timezone.now()
    changes = {"status": ConsentStatus.RECONSENT_REQUIRED, "changed_by": actor.kind, "updated_at": now}
    for consent in consents:
        for field, value in changes.items():
            setattr(consent, field, value)
    # Every row gets the same values: one plain UPDATE (``bulk_update_with_history`` would build a
    # CASE per row and field, the slowest part of a batch), then the history rows in one insert.
    Consent.objects.filter(pk__in=[consent.pk for consent in consents]).update(**changes)
    bulk_update_with_history(consents, Consent, [], default_date=now)
    event = ReceiptEvent.RECONSENT_REQUIRED
    receipts = receipts_issue(consents=consents, event=event, batch=receipt_batch)
    events_record(
        actor=actor,
        entries=[
            EventEntry(
                subject=consent.user,
                action=AuditAction(f"consent.{event}"),
                target=consent,
                data=_consent_event_data(consent, receipt),
            )
            for consent, receipt in zip(consents, receipts, strict=True)
        ],
    )
    outbox_consents_changed(consents=consents, event_type=EventType(f"consent.{event}"))


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
    actor = Actor.consumer(user)
    opted_out = sale_sharing_opt_out(user=user, actor=actor, method=ConsentMethod.GPC)
    signal.purposes = opted_out
    signal.save(update_fields=["purposes"])
    event_record(
        actor=actor, subject=user, action=AuditAction.GPC_HONOURED, target=signal, data={"purposes": opted_out}
    )
    return signal


def sale_sharing_opt_out(*, user: User, actor: Actor, method: str) -> list[str]:
    """Withdraw or refuse every published sale/sharing (GPC-covered) purpose that has not ended yet.

    Runs in the caller's transaction (GPC, an authorised agent's opt-out); returns the slugs of the
    purposes it opted the consumer out of.
    """
    purposes = Purpose.objects.published().filter(gpc_covered=True, legal_basis=LegalBasis.CONSENT)
    ended = set(
        Consent.objects.filter(
            user=user, purpose__in=purposes, status__in=[ConsentStatus.REVOKED, ConsentStatus.EXPIRED]
        ).values_list("purpose_id", flat=True)
    )
    opted_out = []
    # Each partner gets the withdrawals in one delivery task, not one task per purpose.
    with deliveries_gathered():
        for purpose in purposes.select_related("current_version"):
            if purpose.pk in ended:
                continue
            consent_revoke(user=user, purpose=purpose, actor=actor, method=method)
            opted_out.append(purpose.slug)
    return opted_out
