"""The business audit log: append-only, hash-chained per subject, each row HMAC-sealed."""

from typing import Any, Literal, cast

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.actions import AuditAction


class ActorKind(models.TextChoices):
    CONSUMER = "consumer", _("Consumer")
    STAFF = "staff", _("Staff")
    PARTNER = "partner", _("Partner")
    SYSTEM = "system", _("System")


class AuditChain(models.Model):
    """The head of one hash chain. Locking this row serialises writers of that chain only."""

    key = models.CharField(max_length=64, unique=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, default="")

    class Meta:
        verbose_name = _("audit chain")
        verbose_name_plural = _("audit chains")

    def __str__(self) -> str:
        return self.key


class AuditEvent(models.Model):
    chain = models.CharField(_("chain"), max_length=64, editable=False)
    seq = models.PositiveBigIntegerField(_("sequence"), editable=False)
    occurred_at = models.DateTimeField(_("when"), default=timezone.now, editable=False)
    actor_kind = models.CharField(_("actor"), max_length=16, choices=ActorKind.choices)
    actor_id = models.CharField(_("actor id"), max_length=64, blank=True)
    actor_label = models.CharField(_("actor name"), max_length=200, blank=True)
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("subject"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="audit_events",
    )
    action = models.CharField(_("action"), max_length=64, choices=AuditAction.choices)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    data = models.JSONField(_("details"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64, editable=False)
    hash = models.CharField(_("hash"), max_length=64, editable=False)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        # Reading events is the view permission; these two are separate jobs given to separate roles.
        permissions = [
            ("verify_chain", _("Can verify the audit chains")),
            ("export_trail", _("Can export a consumer's signed audit trail")),
            # The operations dashboard reads aggregates across the apps; its permission lives here
            # because the audit app is the one every other app builds on.
            ("view_operations_dashboard", _("Can view the operations dashboard")),
        ]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="auditevent_unique_chain_seq"),
        ]
        indexes = [
            models.Index(fields=["subject", "-occurred_at", "-id"], name="audit_by_subject_recent"),
            models.Index(fields=["action", "-occurred_at"], name="audit_by_action_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.chain}/{self.seq}"


# Shown where free text (a note, a reason, a partner's words) was erased with the account it was about.
NOTE_REMOVED = _("removed on account deletion")


class AuditNote(models.Model):
    """The free text of an audit event (a partner's or a staff member's note), kept beside its sealed row.

    Free text can name the person, so it must be erasable when their account is deleted, while
    the sealed row must never change. The row's seal therefore covers a salted digest of the
    text (``data["note_sha256"]``), not the text: while the note exists, verification checks it
    against the digest; scrubbing empties the text and the salt together, after which the digest
    neither reveals the text nor confirms a guess at it.
    """

    event = models.OneToOneField(
        AuditEvent, verbose_name=_("audit event"), on_delete=models.CASCADE, primary_key=True, related_name="note"
    )
    text = models.TextField(_("note"), blank=True)
    salt = models.CharField(max_length=32, blank=True, editable=False)
    scrubbed_at = models.DateTimeField(_("removed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("audit note")
        verbose_name_plural = _("audit notes")
        constraints = [
            models.CheckConstraint(
                condition=Q(scrubbed_at__isnull=True) | (Q(text="") & Q(salt="")),
                name="auditnote_scrubbed_is_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"note of {self.event_id}"


class AccessAction(models.TextChoices):
    READ = "read", _("Read")
    EXPORT = "export", _("Exported")
    SHARE = "share", _("Shared onward")
    DELETE = "delete", _("Deleted")


class AccessVerdict(models.TextChoices):
    COVERED = "covered", _("Covered")
    NO_CONSENT = "no_consent", _("No consent at the time")
    OUTSIDE_SHARING = "outside_sharing", _("Outside what was shared")


class StaffAccessReasonCode(models.TextChoices):
    """Why a staff member opens a consumer's records; the consumer reads it beside each access."""

    SUPPORT_REQUEST = "support_request", _("Support request")
    FRAUD_INVESTIGATION = "fraud_investigation", _("Fraud investigation")
    LEGAL_REQUEST = "legal_request", _("Legal request")
    PRIVACY_REQUEST = "privacy_request", _("Privacy request handling")


class AccessEvent(models.Model):
    """A partner (or our staff) used a consumer's data: a fact, stored with a verdict at ingest.

    On PostgreSQL the table is partitioned by month of ``accessed_at`` (migration 0010,
    ``audit.partitions``): the consumer's pages order and filter by it, and retention drops the
    months that happened long enough ago. PostgreSQL wants the partition key in every unique
    constraint, so there the primary key is ``(id, accessed_at)`` and the partner's idempotency key
    ``(partner, partner_event_id, accessed_at)``. Django keeps ``id`` as the primary key: ids still
    come from one sequence and are unique, and the admin, DRF and ``pk`` lookups need a single
    column (a ``CompositePrimaryKey`` would cost the admin and every ``target=event`` audit row).
    A replayed event id is still recognised before insert by ingest, which looks the id up across
    all partitions under a lock on the id's stripe (``consents.services.access._event_ids_lock``),
    so two concurrent reports of one id with different times store one. Nothing has a foreign key
    to this table, and nothing may: it could not point at a partitioned table's ``id`` alone.
    """

    partner = models.ForeignKey(
        "consents.Partner", verbose_name=_("partner"), on_delete=models.PROTECT, related_name="access_events"
    )
    partner_event_id = models.CharField(_("partner's event id"), max_length=100)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("consumer"), on_delete=models.CASCADE, related_name="access_events"
    )
    purpose = models.ForeignKey(
        "consents.Purpose", verbose_name=_("purpose"), on_delete=models.PROTECT, related_name="access_events"
    )
    categories = models.JSONField(_("data categories"), default=list)
    action = models.CharField(_("action"), max_length=16, choices=AccessAction.choices)
    accessed_at = models.DateTimeField(_("accessed at"))
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    detail = models.CharField(_("detail"), max_length=500, blank=True)
    verdict = models.CharField(_("verdict"), max_length=16, choices=AccessVerdict.choices)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("staff member"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    # A staff access carries the reason stated for it and what was opened (a model label such as
    # "consents.consent"); db_default keeps the partners' raw bulk insert (``access_events_insert``) valid.
    staff_reason = models.CharField(
        _("staff's reason"),
        max_length=24,
        choices=StaffAccessReasonCode.choices,
        blank=True,
        default="",
        db_default="",
    )
    staff_reference = models.CharField(_("staff's reference"), max_length=64, blank=True, default="", db_default="")
    staff_records = models.CharField(_("records opened"), max_length=64, blank=True, default="", db_default="")
    content_hash = models.CharField(_("content hash"), max_length=64)

    class Meta:
        verbose_name = _("access event")
        verbose_name_plural = _("access events")
        constraints = [
            models.UniqueConstraint(fields=["partner", "partner_event_id"], name="accessevent_unique_partner_id"),
        ]
        indexes = [
            models.Index(fields=["user", "-accessed_at", "-id"], name="access_timeline_by_user"),
            models.Index(fields=["user", "partner", "-accessed_at"], name="access_by_user_partner"),
            models.Index(fields=["verdict", "-received_at"], name="access_flagged_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.partner} {self.action} {self.user_id} @ {self.accessed_at:%Y-%m-%d %H:%M}"

    @property
    def is_flagged(self) -> bool:
        return self.verdict != AccessVerdict.COVERED


class StaffAccessReason(models.Model):
    """A staff member's stated reason to open one consumer's records, good until ``expires_at``."""

    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("staff member"), on_delete=models.CASCADE, related_name="+"
    )
    consumer = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("consumer"), on_delete=models.CASCADE, related_name="+"
    )
    code = models.CharField(_("reason"), max_length=24, choices=StaffAccessReasonCode.choices)
    reference = models.CharField(_("reference"), max_length=64)
    stated_at = models.DateTimeField(_("stated at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))

    class Meta:
        verbose_name = _("staff access reason")
        verbose_name_plural = _("staff access reasons")
        constraints = [
            models.CheckConstraint(condition=~Q(reference=""), name="staffaccessreason_has_reference"),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("stated_at")), name="staffaccessreason_expires_after"
            ),
        ]
        indexes = [models.Index(fields=["staff", "consumer", "-expires_at"], name="staffreason_current")]

    def __str__(self) -> str:
        return f"{self.code} {self.reference} ({self.staff_id} → {self.consumer_id})"


class AccessDaily(models.Model):
    """Per consumer, partner, purpose and day: how many accesses, how many flagged, and the latest.

    Maintained at ingest so that the consumer's overview never scans their whole history.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    partner = models.ForeignKey("consents.Partner", on_delete=models.CASCADE, related_name="+")
    purpose = models.ForeignKey("consents.Purpose", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    events = models.PositiveIntegerField(default=0)
    flagged = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField()

    class Meta:
        verbose_name = _("daily access count")
        verbose_name_plural = _("daily access counts")
        constraints = [
            models.UniqueConstraint(fields=["user", "partner", "purpose", "day"], name="accessdaily_unique_key"),
        ]
        indexes = [
            models.Index(fields=["user", "-day"], name="accessdaily_by_user_recent"),
            # The operations dashboard sums a period's days per partner.
            models.Index(fields=["day", "partner"], name="accessdaily_by_day_partner"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.partner_id}/{self.purpose_id} {self.day}: {self.events}"


class AccessCategorySeen(models.Model):
    """Which data categories each partner has accessed for a consumer, and when last."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    partner = models.ForeignKey("consents.Partner", on_delete=models.CASCADE, related_name="+")
    category = models.ForeignKey("consents.DataCategory", on_delete=models.CASCADE, related_name="+")
    events = models.PositiveIntegerField(default=0)
    last_accessed_at = models.DateTimeField()

    class Meta:
        verbose_name = _("accessed data category")
        verbose_name_plural = _("accessed data categories")
        constraints = [
            models.UniqueConstraint(fields=["user", "partner", "category"], name="accesscategory_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.partner_id}/{self.category_id}"


def catalogue(field: Literal["partner", "purpose", "category"]) -> "models.Manager[Any]":
    """The manager of the consents model an access-log foreign key points at (partners, purposes, categories).

    consents builds on audit: audit names consents' models only in its foreign keys, and reads them
    through those keys rather than importing them.
    """
    model = AccessCategorySeen if field == "category" else AccessDaily
    related = cast(type[models.Model], model._meta.get_field(field).related_model)
    return related._default_manager


class NotificationKind(models.TextChoices):
    """The emails a consumer can choose to get, each once per what it is about."""

    MATERIAL_CHANGE = "material_change", _("Notice changed")
    FLAGGED_ACCESS = "flagged_access", _("Flagged access")
    MONTHLY_DIGEST = "monthly_digest", _("Monthly summary")


class NotificationSent(models.Model):
    """An email the consumer was sent about one thing (a notice version, flagged accesses up to an
    event, a month), so that a task run twice sends it once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=24, choices=NotificationKind.choices)
    # What the email was about: a notice version's id, the last access event covered, or a month (2026-11).
    key = models.CharField(max_length=32)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("notification sent")
        verbose_name_plural = _("notifications sent")
        constraints = [
            models.UniqueConstraint(fields=["user", "kind", "key"], name="notificationsent_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.key} to {self.user_id}"
