"""Reads behind the partner API, every one scoped to the calling partner.

A subject the partner has no pairwise id for, and a purpose it has no active sharing for (or that
is not offered), both come back as "not found", exactly like ids that do not exist at all.
"""

import base64
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.core import signing
from django.db import connection
from django.utils import timezone
from oauth2_provider.models import AccessToken

from audit.timestamps import iso_utc
from consents.models import (
    Consent,
    ConsentStatus,
    EventType,
    LegalBasis,
    OutboxEvent,
    Partner,
    PartnerCredential,
    PartnerStatus,
    PartnerSubject,
    Purpose,
    PurposeVersion,
)
from portal.prepared import fetch_one

STATUS_NONE = "none"
STATUS_NOT_REQUIRED = "not_required"
STATUS_NOT_FOUND = "not_found"


@dataclass(frozen=True)
class ConsentState:
    """The answer to "may this partner use this subject's data for this purpose now?"."""

    subject_id: str
    purpose: str
    status: str
    granted: bool
    legal_basis: str | None
    notice_version: int | None
    granted_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None

    def as_json(self) -> dict:
        """The API representation, built directly (the bulk endpoint renders up to 1,000 of these)."""
        return {
            "subject_id": self.subject_id,
            "purpose": self.purpose,
            "status": self.status,
            "granted": self.granted,
            "legal_basis": self.legal_basis,
            "notice_version": self.notice_version,
            "granted_at": iso_utc(self.granted_at),
            "expires_at": iso_utc(self.expires_at),
            "revoked_at": iso_utc(self.revoked_at),
        }


def _aware(value: datetime | None) -> datetime | None:
    # Raw SQLite rows carry naive UTC datetimes; PostgreSQL's are already aware.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _state(
    *,
    subject_id: str,
    purpose: str,
    legal_basis: str,
    status: str | None,
    granted_at: datetime | None,
    expires_at: datetime | None,
    revoked_at: datetime | None,
    version: int | None,
    material_version: int | None,
    now: datetime,
) -> ConsentState:
    if legal_basis != LegalBasis.CONSENT:
        # Contract, legal obligation, legitimate interest: the use does not depend on consent.
        return ConsentState(subject_id, purpose, STATUS_NOT_REQUIRED, True, legal_basis, None, None, None, None)
    if status is None:
        return ConsentState(subject_id, purpose, STATUS_NONE, False, legal_basis, None, None, None, None)
    if status == ConsentStatus.GRANTED and expires_at is not None and expires_at <= now:
        # Past its end but not yet marked by the expiry job: already not granted.
        status = ConsentStatus.EXPIRED
    if status == ConsentStatus.GRANTED and version is not None and material_version and version < material_version:
        # Given to a notice older than a material one already published, and not yet reached by
        # that notice's publication run: it needs a new decision from the moment of publishing.
        status = ConsentStatus.RECONSENT_REQUIRED
    granted = status == ConsentStatus.GRANTED
    return ConsentState(subject_id, purpose, status, granted, legal_basis, version, granted_at, expires_at, revoked_at)


def not_found_state(subject_id: str, purpose: str) -> ConsentState:
    return ConsentState(subject_id, purpose, STATUS_NOT_FOUND, False, None, None, None, None, None)


METADATA_SECONDS = 5.0
_shared: dict[int, tuple[float, dict[str, tuple[int, str]]]] = {}
_version_numbers: dict[int, int] = {}


def metadata_cache_clear() -> None:
    _shared.clear()
    _version_numbers.clear()


def _shared_purposes(partner_id: int) -> dict[str, tuple[int, str]]:
    """The offered purposes the partner has an active sharing for: slug → (purpose id, legal basis).

    In the purposes' display order. Kept in process memory for ``METADATA_SECONDS``: ending a
    sharing or withdrawing a purpose reaches the API within that time. Consents, the answer
    itself, are never cached.
    """
    now = time.monotonic()
    cached = _shared.get(partner_id)
    if cached is not None and cached[0] > now:
        return cached[1]
    purposes = Purpose.objects.published().filter(sharings__partner_id=partner_id, sharings__is_active=True)
    shared = {slug: (pk, basis) for slug, pk, basis in purposes.values_list("slug", "pk", "legal_basis")}
    _shared[partner_id] = (now + METADATA_SECONDS, shared)
    return shared


def _version_number(version_id: int | None) -> int | None:
    """A notice version's number; versions never change once published, so they are kept."""
    if version_id is None:
        return None
    if version_id not in _version_numbers:
        _version_numbers.update(PurposeVersion.objects.values_list("pk", "number"))
    return _version_numbers.get(version_id)


# The single check is the API's hottest path: one statement answers both "is this caller still
# allowed in?" and "what did the subject decide?". The caller's live state is three primary-key
# lookups (the token exists — revocation deletes it —, its credential is not revoked, the partner's
# status); the consent is two unique-index lookups (the pairwise id, then the consent) and the
# purpose's primary key for its latest material notice, read fresh because it decides; the sharing
# is already resolved from memory. The consent side's columns come back only when the live state
# admits the caller (the join's condition), so a refused caller's row carries nothing about the
# subject, and what the caller is told is decided by the live state alone.
# Raw SQL because building the equivalent ORM query costs several times more than running it.
_CHECK_SQL = (
    "SELECT live.token_id, live.credential_active, live.partner_status,"  # noqa: S608 (table names only)
    " consent.subject_found, consent.status, consent.granted_at, consent.expires_at, consent.revoked_at,"
    " consent.version_id, consent.material_version_number"
    f" FROM (SELECT (SELECT id FROM {AccessToken._meta.db_table} WHERE id = %s) AS token_id,"
    f" (SELECT revoked_at IS NULL FROM {PartnerCredential._meta.db_table} WHERE id = %s) AS credential_active,"
    f" (SELECT status FROM {Partner._meta.db_table} WHERE id = %s) AS partner_status) live"
    " LEFT JOIN (SELECT 1 AS subject_found, c.status, c.granted_at, c.expires_at, c.revoked_at, c.version_id,"
    " p.material_version_number"
    f" FROM {PartnerSubject._meta.db_table} ps"
    f" LEFT JOIN {Consent._meta.db_table} c ON c.user_id = ps.user_id AND c.purpose_id = %s"
    f" LEFT JOIN {Purpose._meta.db_table} p ON p.id = c.purpose_id"
    " WHERE ps.subject_id = %s AND ps.partner_id = %s) consent"
    " ON live.token_id IS NOT NULL AND live.credential_active AND live.partner_status = %s"
)


@dataclass(frozen=True)
class LiveState:
    """A partner token's state in the database now: what the token cache can never vouch for."""

    token_exists: bool  # revoking a token (or its credential, or rotating the secret) deletes it
    credential_active: bool
    partner_status: str | None  # None: the partner is gone

    @property
    def authenticated(self) -> bool:
        return self.token_exists and self.credential_active and self.partner_status is not None

    @property
    def admitted(self) -> bool:
        return self.authenticated and self.partner_status == PartnerStatus.ACTIVE


def consent_state_live(
    *, token_id: int, credential_id: int, partner_id: int, subject_id: str, purpose: str
) -> tuple[LiveState, ConsentState | None]:
    """The caller's live state and one subject's consent to one purpose, in one statement.

    The consent is ``None`` when out of the partner's reach, and always when the live state does not
    admit the caller (the statement returns nothing of it then). Only ``consents.api.auth`` calls
    this, for views that declare ``live_state_combined``: it refuses the caller before any consent
    is used.
    """
    shared = _shared_purposes(partner_id).get(purpose)
    # An unshared purpose still runs the statement (matching no consent): the live state decides first.
    purpose_id, legal_basis = shared if shared is not None else (None, "")
    row = fetch_one(
        _CHECK_SQL,
        [token_id, credential_id, partner_id, purpose_id, subject_id, partner_id, PartnerStatus.ACTIVE.value],
    )
    # The live part is scalar subqueries: always one row, whatever exists.
    token_found, credential_active, partner_status, subject_found, *consent = row or (None,) * 10
    live = LiveState(token_found is not None, bool(credential_active), partner_status)
    if not live.admitted or shared is None or subject_found is None:
        return live, None
    status, granted_at, expires_at, revoked_at, version_id, material_version = consent
    return live, _state(
        subject_id=subject_id,
        purpose=purpose,
        legal_basis=legal_basis,
        status=status,
        granted_at=_aware(granted_at),
        expires_at=_aware(expires_at),
        revoked_at=_aware(revoked_at),
        version=_version_number(version_id),
        material_version=material_version,
        now=timezone.now(),
    )


def _consent_rows(user_ids: Iterable[int], purpose_ids: Iterable[int]) -> dict[tuple[int, int], tuple]:
    rows = Consent.objects.filter(user_id__in=set(user_ids), purpose_id__in=set(purpose_ids)).values_list(
        "user_id",
        "purpose_id",
        "status",
        "granted_at",
        "expires_at",
        "revoked_at",
        "version__number",
        "purpose__material_version_number",
    )
    return {(row[0], row[1]): row[2:] for row in rows}


def _states_for(
    pairs: Sequence[tuple[str, str]],
    subjects: dict[str, int],
    purposes: dict[str, tuple[int, str]],
    consents: dict[tuple[int, int], tuple],
) -> list[ConsentState]:
    now = timezone.now()
    results = []
    for subject_id, slug in pairs:
        user_id = subjects.get(subject_id)
        purpose = purposes.get(slug)
        if user_id is None or purpose is None:
            results.append(not_found_state(subject_id, slug))
            continue
        status, granted_at, expires_at, revoked_at, version, material_version = consents.get(
            (user_id, purpose[0]), (None, None, None, None, None, None)
        )
        results.append(
            _state(
                subject_id=subject_id,
                purpose=slug,
                legal_basis=purpose[1],
                status=status,
                granted_at=granted_at,
                expires_at=expires_at,
                revoked_at=revoked_at,
                version=version,
                material_version=material_version,
                now=now,
            )
        )
    return results


# The bulk check looks up only the requested pairs, driven by a VALUES list: two unique-index
# lookups per pair, whatever the number of subjects, purposes or consents.
_BULK_SQL = (
    "WITH requested (subject_id, purpose_id) AS (VALUES {pairs})"  # noqa: S608
    " SELECT requested.subject_id, requested.purpose_id, c.status, c.granted_at, c.expires_at, c.revoked_at,"
    " c.version_id, p.material_version_number"
    " FROM requested"
    f" JOIN {PartnerSubject._meta.db_table} ps ON ps.subject_id = requested.subject_id AND ps.partner_id = %s"
    f" LEFT JOIN {Consent._meta.db_table} c ON c.user_id = ps.user_id AND c.purpose_id = requested.purpose_id"
    f" LEFT JOIN {Purpose._meta.db_table} p ON p.id = c.purpose_id"
)


def consent_states_bulk(*, partner_id: int, pairs: Sequence[tuple[str, str]]) -> list[ConsentState]:
    """One result per (subject id, purpose) pair, in order, in one query whatever the count."""
    if not pairs:
        return []
    purposes = _shared_purposes(partner_id)
    wanted = list(dict.fromkeys((subject, purposes[slug][0]) for subject, slug in pairs if slug in purposes))
    rows: list[tuple] = []
    if wanted:
        with connection.cursor() as cursor:
            cursor.execute(
                _BULK_SQL.format(pairs=", ".join(["(%s, %s)"] * len(wanted))),
                [value for pair in wanted for value in pair] + [partner_id],
            )
            rows = cursor.fetchall()
    slugs = {pk: (slug, basis) for slug, (pk, basis) in purposes.items()}
    now = timezone.now()
    found = {}
    for subject_id, purpose_id, status, granted_at, expires_at, revoked_at, version_id, material_version in rows:
        slug, legal_basis = slugs[int(purpose_id)]
        found[(subject_id, slug)] = _state(
            subject_id=subject_id,
            purpose=slug,
            legal_basis=legal_basis,
            status=status,
            granted_at=_aware(granted_at),
            expires_at=_aware(expires_at),
            revoked_at=_aware(revoked_at),
            version=_version_number(version_id),
            material_version=material_version,
            now=now,
        )
    return [found.get(pair) or not_found_state(*pair) for pair in pairs]


def subject_consent_states(*, partner_id: int, subject_id: str) -> list[ConsentState] | None:
    """Every purpose the partner receives for this subject; ``None`` when the subject is not its."""
    user_id = (
        PartnerSubject.objects.filter(partner_id=partner_id, subject_id=subject_id)
        .values_list("user_id", flat=True)
        .first()
    )
    if user_id is None:
        return None
    purposes = _shared_purposes(partner_id)  # in the purposes' display order
    consents = _consent_rows([user_id], (pk for pk, _basis in purposes.values()))
    return _states_for([(subject_id, slug) for slug in purposes], {subject_id: user_id}, purposes, consents)


_cursor_signer = signing.Signer(salt="consents.api.feed-cursor")


def _encoded_length(raw: int) -> int:
    """Characters of unpadded URL-safe base64 for ``raw`` bytes."""
    return (4 * raw + 2) // 3


# A cursor is unpadded URL-safe base64 of "<partner id>.<feed position>:<signature>": both numbers
# are 64-bit (1 to 19 digits), the signature is Django's base64 HMAC. Published in the schema.
_SIGNATURE_LENGTH = len(_cursor_signer.signature(""))
FEED_CURSOR_MIN_LENGTH = _encoded_length(1 + 1 + 1 + 1 + _SIGNATURE_LENGTH)
FEED_CURSOR_MAX_LENGTH = _encoded_length(19 + 1 + 19 + 1 + _SIGNATURE_LENGTH)
FEED_CURSOR_PATTERN = rf"^[A-Za-z0-9_-]{{{FEED_CURSOR_MIN_LENGTH},{FEED_CURSOR_MAX_LENGTH}}}$"


def feed_cursor_encode(*, partner_id: int, seq: int) -> str:
    """An opaque cursor: the feed position, signed and bound to the partner."""
    signed = _cursor_signer.sign(f"{partner_id}.{seq}")
    return base64.urlsafe_b64encode(signed.encode()).decode().rstrip("=")


def feed_cursor_decode(*, partner_id: int, cursor: str) -> int:
    """The feed position in a cursor this partner was given; ``ValueError`` for anything else."""
    try:
        signed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        owner, _sep, seq = _cursor_signer.unsign(signed).partition(".")
    except (ValueError, signing.BadSignature) as exc:
        raise ValueError("invalid cursor") from exc
    if owner != str(partner_id) or not seq.isdigit():
        raise ValueError("invalid cursor")
    return int(seq)


def feed_page(*, partner_id: int, after: int, limit: int) -> list[tuple[int, dict]]:
    """The partner's next events in commit order: (feed position, event) pairs."""
    events = (
        OutboxEvent.objects.filter(partner_id=partner_id, feed_seq__gt=after)
        .exclude(event_type=EventType.WEBHOOK_TEST)
        .order_by("feed_seq")
        .values_list("feed_seq", "payload")[:limit]
    )
    return [(seq, payload) for seq, payload in events if seq is not None]
