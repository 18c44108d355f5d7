"""What the consumer's copy of their data holds: one ``Section`` per kind of data, in ``SECTIONS``.

Each section names its columns, streams its rows (``.iterator()``, values only) and counts them
up front for the progress bar. ``services/export.py`` writes them into the archive.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.utils.translation import gettext_lazy as _

from audit.actions import AuditAction
from audit.models import AccessEvent, AuditEvent
from audit.selectors import ACCESS_LOG_COLUMNS
from consents.models import AppGrant, Consent, ConsentReceipt, PartnerSubject, Purpose, PurposeVersion
from portal.models import User
from privacy_requests.models import PrivacyRequest

if TYPE_CHECKING:
    from django_stubs_ext import StrPromise

CHUNK = 2000

Row = dict[str, Any]


@dataclass(frozen=True)
class Section:
    name: str
    title: "StrPromise"
    description: "StrPromise"
    columns: tuple[str, ...]
    rows: Callable[[User], Iterable[Row]]
    count: Callable[[User], int]


class Instant(str):
    """A time as the JSON files hold it (ISO 8601, UTC as stored) that keeps its datetime, so the CSV
    files can write it in the consumer's time zone instead."""

    moment: datetime

    def __new__(cls, moment: datetime) -> "Instant":
        instant = super().__new__(cls, moment.isoformat())
        instant.moment = moment
        return instant


def _iso(value: datetime | date | None) -> str | None:
    if value is None:
        return None
    return Instant(value) if isinstance(value, datetime) else value.isoformat()


def _profile_rows(user: User) -> Iterator[Row]:
    yield {
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "privacy_law": user.jurisdiction,
        "date_joined": _iso(user.date_joined),
        "last_login": _iso(user.last_login),
    }


def _email_rows(user: User) -> Iterator[Row]:
    for address in EmailAddress.objects.filter(user=user).order_by("pk"):
        yield {"email": address.email, "verified": address.verified, "primary": address.primary}


def _security_rows(user: User) -> Iterator[Row]:
    for authenticator in Authenticator.objects.filter(user=user).order_by("pk"):
        yield {
            "type": authenticator.type,
            "created_at": _iso(authenticator.created_at),
            "last_used_at": _iso(authenticator.last_used_at),
        }


CONSENT_COLUMNS = (
    "purpose",
    "notice_version",
    "status",
    "method",
    "duration_type",
    "period_days",
    "granted_at",
    "revoked_at",
    "expires_at",
    "revocation_reason",
    "revocation_note",
    "changed_by",
    "updated_at",
)


def _consent_row(values: dict[str, Any], purposes: dict[int, str], versions: dict[int, int]) -> Row:
    return {
        "purpose": purposes.get(values["purpose_id"], ""),
        "notice_version": versions.get(values["version_id"]),
        "status": values["status"],
        "method": values["method"],
        "duration_type": values["duration_type"],
        "period_days": values["period_days"],
        "granted_at": _iso(values["granted_at"]),
        "revoked_at": _iso(values["revoked_at"]),
        "expires_at": _iso(values["expires_at"]),
        "revocation_reason": values["revocation_reason"],
        "revocation_note": values["revocation_note"],
        "changed_by": values["changed_by"],
        "updated_at": _iso(values["updated_at"]),
    }


def _lookups() -> tuple[dict[int, str], dict[int, int]]:
    purposes = dict(Purpose.objects.values_list("pk", "slug"))
    versions = dict(PurposeVersion.objects.values_list("pk", "number"))
    return purposes, versions


def _consent_rows(user: User) -> Iterator[Row]:
    purposes, versions = _lookups()
    fields = ("purpose_id", "version_id", *CONSENT_COLUMNS[2:])
    for values in Consent.objects.filter(user=user).order_by("pk").values(*fields).iterator(chunk_size=CHUNK):
        yield _consent_row(values, purposes, versions)


def _consent_history_rows(user: User) -> Iterator[Row]:
    purposes, versions = _lookups()
    fields = ("history_id", "history_date", "history_type", "purpose_id", "version_id", *CONSENT_COLUMNS[2:])
    history = Consent.history.filter(user_id=user.pk).order_by("history_date", "history_id").values(*fields)
    changes = {"+": "created", "~": "changed", "-": "deleted"}
    for values in history.iterator(chunk_size=CHUNK):
        row = {"changed_at": _iso(values["history_date"]), "change": changes.get(values["history_type"])}
        row.update(_consent_row(values, purposes, versions))
        yield row


def _receipt_rows(user: User) -> Iterator[Row]:
    receipts = ConsentReceipt.objects.filter(user=user).order_by("issued_at", "pk")
    fields = ("id", "consent__purpose__slug", "app_grant__purpose__slug", "event", "issued_at", "sha256", "jws")
    for values in receipts.values(*fields, "payload").iterator(chunk_size=CHUNK):
        yield {
            "receipt_id": str(values["id"]),
            "purpose": values["consent__purpose__slug"] or values["app_grant__purpose__slug"],
            "event": values["event"],
            "issued_at": _iso(values["issued_at"]),
            "sha256": values["sha256"],
            "jws": values["jws"],
            "payload": values["payload"],
        }


APP_GRANT_COLUMNS = (
    "grant_id",
    "app",
    "partner",
    "purpose",
    "data_categories",
    "status",
    "duration",
    "granted_at",
    "expires_at",
    "lookback_days",
    "ended_at",
    "end_reason",
    "ended_by",
    "authorization_details",
)


def _app_grant_rows(user: User) -> Iterator[Row]:
    grants = (
        AppGrant.objects.filter(user=user)
        .select_related("app__partner", "purpose")
        .prefetch_related("data_categories")
        .order_by("granted_at", "pk")
    )
    for grant in grants:
        yield {
            "grant_id": str(grant.pk),
            "app": grant.app.name,
            "partner": grant.app.partner.name,
            "purpose": grant.purpose.slug,
            "data_categories": sorted(c.slug for c in grant.data_categories.all()),
            "status": grant.status,
            "duration": grant.duration_type,
            "granted_at": _iso(grant.granted_at),
            "expires_at": _iso(grant.expires_at),
            "lookback_days": grant.lookback_days,
            "ended_at": _iso(grant.revoked_at),
            "end_reason": grant.revocation_reason,
            "ended_by": grant.changed_by if grant.revoked_at else "",
            "authorization_details": grant.authorization_details,
        }


def _partner_rows(user: User) -> Iterator[Row]:
    subjects = PartnerSubject.objects.filter(user=user).select_related("partner").order_by("created_at")
    for subject in subjects:
        yield {
            "partner": subject.partner.name,
            "partner_kind": subject.partner.kind,
            "country": subject.partner.country,
            "your_id_at_partner": subject.subject_id,
            "since": _iso(subject.created_at),
        }


def _request_rows(user: User) -> Iterator[Row]:
    requests = PrivacyRequest.objects.filter(user=user).order_by("created_at").prefetch_related("extensions")
    for request in requests:
        yield {
            "request_id": str(request.pk),
            "kind": request.kind,
            "status": request.status,
            "privacy_law": request.jurisdiction,
            "received_at": _iso(request.created_at),
            "due_at": _iso(request.due_at),
            "completed_at": _iso(request.completed_at),
            "cancelled_at": _iso(request.cancelled_at),
            "rejection_reason": request.rejection_reason,
            "extensions": [
                {"months": e.months, "days": e.days, "reason": e.reason, "at": _iso(e.created_at)}
                for e in request.extensions.all()
            ],
        }


def _activity_rows(user: User) -> Iterator[Row]:
    fields = ("occurred_at", "actor_kind", "actor_label", "action", "target_type", "target_id", "data", "hash")
    events = AuditEvent.objects.filter(subject=user).order_by("occurred_at", "pk").values(*fields, "note__text")
    for values in events.iterator(chunk_size=CHUNK):
        values["occurred_at"] = _iso(values["occurred_at"])
        values["action_label"] = AuditAction.label_of(values["action"])
        # Free text (a partner's acknowledgement) is kept beside the sealed event; see audit.models.AuditNote.
        values["note"] = values.pop("note__text") or ""
        yield values


def _access_rows(user: User) -> Iterator[Row]:
    events = (
        AccessEvent.objects.filter(user=user)
        .order_by("accessed_at", "pk")
        .values_list(
            "accessed_at",
            "partner__name",
            "partner__kind",
            "purpose__slug",
            "categories",
            "action",
            "verdict",
            "detail",
            "staff_reason",
            "staff_reference",
        )
    )
    rows = events.iterator(chunk_size=CHUNK)
    for at, partner, kind, purpose, categories, action, verdict, detail, reason, reference in rows:
        yield {
            "accessed_at": _iso(at),
            "partner": partner,
            "partner_kind": kind,
            "purpose": purpose,
            "data_categories": categories,
            "action": action,
            "verdict": verdict,
            "detail": detail,
            "staff_reason": reason,
            "staff_reference": reference,
        }


SECTIONS: list[Section] = [
    Section(
        name="profile",
        title=_("Your profile"),
        description=_(
            "Your account: email address, name, the privacy law you chose, when you joined and last logged in."
        ),
        columns=("email", "first_name", "last_name", "privacy_law", "date_joined", "last_login"),
        rows=_profile_rows,
        count=lambda user: 1,
    ),
    Section(
        name="email_addresses",
        title=_("Email addresses"),
        description=_("Every email address on your account and whether it is verified and primary."),
        columns=("email", "verified", "primary"),
        rows=_email_rows,
        count=lambda user: EmailAddress.objects.filter(user=user).count(),
    ),
    Section(
        name="security",
        title=_("Two-factor authentication"),
        description=_("The second factors you set up (kind and dates only; secrets are never exported)."),
        columns=("type", "created_at", "last_used_at"),
        rows=_security_rows,
        count=lambda user: Authenticator.objects.filter(user=user).count(),
    ),
    Section(
        name="consents",
        title=_("Your consents"),
        description=_("Your current decision for each purpose: status, notice version, method, dates and notes."),
        columns=CONSENT_COLUMNS,
        rows=_consent_rows,
        count=lambda user: Consent.objects.filter(user=user).count(),
    ),
    Section(
        name="consent_history",
        title=_("Consent history"),
        description=_("Every earlier state of your consents, oldest first, with when and how each one changed."),
        columns=("changed_at", "change", *CONSENT_COLUMNS),
        rows=_consent_history_rows,
        count=lambda user: Consent.history.filter(user_id=user.pk).count(),
    ),
    Section(
        name="receipts",
        title=_("Signed consent receipts"),
        description=_(
            "A receipt for every consent event, signed by us (JWS, Ed25519). The signature can be checked "
            "with our public key published at /.well-known/jwks.json; sha256 is the fingerprint of the JWS."
        ),
        columns=("receipt_id", "purpose", "event", "issued_at", "sha256", "jws", "payload"),
        rows=_receipt_rows,
        count=lambda user: ConsentReceipt.objects.filter(user=user).count(),
    ),
    Section(
        name="connected_apps",
        title=_("Connected apps"),
        description=_(
            "Every app you connected to your account: which partner runs it, what it may read, for how long, "
            "and when and why the connection ended."
        ),
        columns=APP_GRANT_COLUMNS,
        rows=_app_grant_rows,
        count=lambda user: AppGrant.objects.filter(user=user).count(),
    ),
    Section(
        name="partners",
        title=_("Partners who received your data"),
        description=_("Each partner that has received your data and the pseudonymous id it knows you by."),
        columns=("partner", "partner_kind", "country", "your_id_at_partner", "since"),
        rows=_partner_rows,
        count=lambda user: PartnerSubject.objects.filter(user=user).count(),
    ),
    Section(
        name="requests",
        title=_("Your privacy requests"),
        description=_("Your requests for a copy of your data or for deletion, with deadlines and any extensions."),
        columns=(
            "request_id",
            "kind",
            "status",
            "privacy_law",
            "received_at",
            "due_at",
            "completed_at",
            "cancelled_at",
            "rejection_reason",
            "extensions",
        ),
        rows=_request_rows,
        count=lambda user: PrivacyRequest.objects.filter(user=user).count(),
    ),
    Section(
        name="access_events",
        title=_("Who accessed your data"),
        description=_(
            "Every access to your data that a partner (or our staff) reported: when, who, for which purpose, "
            "which data, and whether your consent or another legal basis covered it at that moment."
        ),
        columns=ACCESS_LOG_COLUMNS,
        rows=_access_rows,
        count=lambda user: AccessEvent.objects.filter(user=user).count(),
    ),
    Section(
        name="activity",
        title=_("Activity log"),
        description=_(
            "Everything recorded about your account in our audit log: who did what and when (you, our staff, "
            "a partner or the system). Each entry's hash links it to the one before, so gaps can be detected."
        ),
        columns=(
            "occurred_at",
            "actor_kind",
            "actor_label",
            "action",
            "action_label",
            "target_type",
            "target_id",
            "data",
            "note",
            "hash",
        ),
        rows=_activity_rows,
        count=lambda user: AuditEvent.objects.filter(subject=user).count(),
    ),
]
