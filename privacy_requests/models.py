"""Privacy requests, their extensions and per-partner erasure tasks, and the pseudonymous proof of consent."""

import secrets
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib import admin
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from simple_history.models import HistoricalRecords

from audit.models import NOTE_REMOVED
from consents.models import OutboxEvent, Partner
from portal.models import Jurisdiction

if TYPE_CHECKING:
    from portal.models import User


class RequestKind(models.TextChoices):
    EXPORT = "export", _("Copy of your data")
    DELETION = "deletion", _("Deletion of your account")


class RequestStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PROCESSING = "processing", _("Processing")
    WAITING_PARTNERS = "waiting_partners", _("Waiting for partners")
    COMPLETED = "completed", _("Completed")
    REJECTED = "rejected", _("Rejected")
    CANCELLED = "cancelled", _("Cancelled")


ACTIVE_STATUSES = (RequestStatus.RECEIVED, RequestStatus.PROCESSING, RequestStatus.WAITING_PARTNERS)


def export_upload_to(instance: "PrivacyRequest", filename: str) -> str:
    # A random name: the path reveals neither the consumer nor the request.
    return f"exports/{secrets.token_hex(16)}.zip"


class PrivacyRequestQuerySet(models.QuerySet["PrivacyRequest"]):
    def for_user(self, user: "User") -> "PrivacyRequestQuerySet":
        return self.filter(user=user)

    def active(self) -> "PrivacyRequestQuerySet":
        return self.filter(status__in=ACTIVE_STATUSES)

    def overdue(self, at: datetime | None = None) -> "PrivacyRequestQuerySet":
        return self.active().filter(due_at__lte=at or timezone.now())

    def deletions_due(self, at: datetime | None = None) -> "PrivacyRequestQuerySet":
        """Deletions whose grace period has ended and that have not started yet."""
        return self.filter(
            kind=RequestKind.DELETION, status=RequestStatus.RECEIVED, grace_ends_at__lte=at or timezone.now()
        )

    def contacts_expired(self, at: datetime | None = None) -> "PrivacyRequestQuerySet":
        """Deletions still waiting for partners whose contact retention is over."""
        cutoff = (at or timezone.now()) - timedelta(days=settings.PRIVACY_REQUEST_CONTACT_RETENTION_DAYS)
        return self.filter(kind=RequestKind.DELETION, status=RequestStatus.WAITING_PARTNERS, created_at__lte=cutoff)

    def files_expired(self, at: datetime | None = None) -> "PrivacyRequestQuerySet":
        return self.exclude(result_file="").filter(file_expires_at__lte=at or timezone.now())


class PrivacyRequest(models.Model):
    """A consumer's request for a copy of their data or for the deletion of their account."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("consumer"),
        on_delete=models.CASCADE,
        related_name="privacy_requests",
    )
    kind = models.CharField(_("kind"), max_length=16, choices=RequestKind.choices)
    status = models.CharField(_("status"), max_length=24, choices=RequestStatus.choices, default=RequestStatus.RECEIVED)
    jurisdiction = models.CharField(_("privacy law"), max_length=8, choices=Jurisdiction.choices)
    language = models.CharField(_("language"), max_length=16, default="en")
    created_at = models.DateTimeField(_("received at"), default=timezone.now)
    due_at = models.DateTimeField(_("due by"))
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    rejected_at = models.DateTimeField(_("rejected at"), null=True, blank=True)
    rejection_reason = models.TextField(_("reason for rejection"), blank=True)
    escalated_at = models.DateTimeField(
        _("escalated to staff at"), null=True, blank=True, help_text=_("Set when the due date passed unfinished.")
    )

    progress = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    result_file = models.FileField(_("result file"), upload_to=export_upload_to, max_length=200, blank=True)
    file_size = models.PositiveBigIntegerField(_("file size (bytes)"), null=True, blank=True)
    file_expires_at = models.DateTimeField(_("download expires at"), null=True, blank=True)
    file_deleted_at = models.DateTimeField(_("file deleted at"), null=True, blank=True)
    download_count = models.PositiveIntegerField(_("downloads"), default=0)
    last_downloaded_at = models.DateTimeField(_("last downloaded at"), null=True, blank=True)

    grace_ends_at = models.DateTimeField(_("grace period ends at"), null=True, blank=True)
    cancel_nonce = models.CharField(_("cancel token nonce"), max_length=32, blank=True, editable=False)
    # Kept only until a deletion completes, to tell the consumer it is done after the account is scrubbed,
    # and never longer than PRIVACY_REQUEST_CONTACT_RETENTION_DAYS after the request (a partner may never confirm).
    contact_email = models.EmailField(_("contact address until completion"), blank=True, editable=False)

    objects = PrivacyRequestQuerySet.as_manager()
    history = HistoricalRecords(
        excluded_fields=["contact_email", "cancel_nonce", "progress"], table_name="portal_historicalprivacyrequest"
    )

    class Meta:
        # The tables were created when the models lived in the portal app (privacy_requests/migrations/0001).
        db_table = "portal_privacyrequest"
        ordering = ["-created_at"]
        verbose_name = _("privacy request")
        verbose_name_plural = _("privacy requests")
        # Every field is read-only in the admin; deciding a request is its own permission. The
        # regulator reports (privacy_requests/reports/) hang off this model for want of their own.
        permissions = [
            ("decide_privacyrequest", _("Can extend or reject a privacy request")),
            ("view_regulator_reports", _("Can view the regulator reports")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(kind="export", status__in=["received", "processing"]),
                name="privacyrequest_one_active_export",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(kind="deletion", status__in=["received", "processing", "waiting_partners"]),
                name="privacyrequest_one_active_deletion",
            ),
            models.CheckConstraint(condition=Q(progress__lte=100), name="privacyrequest_progress_percent"),
            models.CheckConstraint(condition=Q(due_at__gt=models.F("created_at")), name="privacyrequest_due_after"),
            models.CheckConstraint(
                condition=~Q(status="completed") | Q(completed_at__isnull=False),
                name="privacyrequest_completed_has_date",
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | (Q(rejected_at__isnull=False) & ~Q(rejection_reason="")),
                name="privacyrequest_rejected_has_reason",
            ),
            models.CheckConstraint(
                condition=~Q(status="cancelled") | (Q(kind="deletion") & Q(cancelled_at__isnull=False)),
                name="privacyrequest_only_deletion_cancelled",
            ),
            models.CheckConstraint(
                condition=~Q(kind="deletion") | Q(grace_ends_at__isnull=False),
                name="privacyrequest_deletion_has_grace",
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="privacyrequest_by_user_recent"),
            models.Index(fields=["status", "due_at"], name="privacyrequest_queue_by_due"),
            models.Index(fields=["kind", "status", "grace_ends_at"], name="privacyrequest_grace_ending"),
            models.Index(fields=["file_expires_at"], condition=~Q(result_file=""), name="privacyrequest_file_expiry"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {str(self.pk)[:8]}"

    def get_absolute_url(self) -> str:
        return reverse("requests:detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def is_overdue(self) -> bool:
        return self.is_active and self.due_at <= timezone.now()

    @property
    def can_cancel(self) -> bool:
        return self.kind == RequestKind.DELETION and self.status == RequestStatus.RECEIVED

    @property
    def file_available(self) -> bool:
        return bool(self.result_file) and self.file_expires_at is not None and self.file_expires_at > timezone.now()


class PrivacyRequestExtension(models.Model):
    """Staff extended the deadline; the law lets them, with a reason the consumer is told."""

    request = models.ForeignKey(
        PrivacyRequest, verbose_name=_("request"), on_delete=models.CASCADE, related_name="extensions"
    )
    months = models.PositiveSmallIntegerField(_("months"), default=0)
    days = models.PositiveSmallIntegerField(_("days"), default=0)
    reason = models.TextField(_("reason"))
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("extended by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    previous_due_at = models.DateTimeField(_("previous due date"))
    new_due_at = models.DateTimeField(_("new due date"))
    created_at = models.DateTimeField(_("extended at"), default=timezone.now)
    # Staff write the reason for the consumer and may name them; it is erased with their account.
    text_removed_at = models.DateTimeField(_("reason removed at"), null=True, blank=True, editable=False)

    history = HistoricalRecords(table_name="portal_historicalprivacyrequestextension")

    class Meta:
        db_table = "portal_privacyrequestextension"
        ordering = ["created_at"]
        verbose_name = _("deadline extension")
        verbose_name_plural = _("deadline extensions")
        constraints = [
            models.CheckConstraint(condition=Q(months__gt=0) | Q(days__gt=0), name="extension_extends_something"),
            models.CheckConstraint(
                condition=~Q(reason="") | Q(text_removed_at__isnull=False), name="extension_has_reason"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request} +{self.months}m {self.days}d"

    @admin.display(description=_("reason"))
    def reason_shown(self) -> str:
        return self.reason or (str(NOTE_REMOVED) if self.text_removed_at else "")


class PartnerTaskState(models.TextChoices):
    PENDING = "pending", _("Waiting for confirmation")
    ACKNOWLEDGED = "acknowledged", _("Confirmed by the partner")
    FAILED = "failed", _("Partner reported a failure")
    RECORDED = "recorded", _("Confirmation recorded by staff")


DONE_TASK_STATES = (PartnerTaskState.ACKNOWLEDGED, PartnerTaskState.RECORDED)


class PrivacyRequestPartnerTask(models.Model):
    """One partner's part of a deletion: told through the outbox, done when it acknowledges."""

    request = models.ForeignKey(
        PrivacyRequest, verbose_name=_("request"), on_delete=models.CASCADE, related_name="partner_tasks"
    )
    partner = models.ForeignKey(
        Partner, verbose_name=_("partner"), on_delete=models.PROTECT, related_name="privacy_tasks"
    )
    event = models.ForeignKey(
        OutboxEvent,
        verbose_name=_("erasure event"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="privacy_tasks",
    )
    state = models.CharField(
        _("state"), max_length=16, choices=PartnerTaskState.choices, default=PartnerTaskState.PENDING
    )
    acked_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    ack_detail = models.CharField(_("partner's detail"), max_length=1000, blank=True)
    staff_note = models.TextField(
        _("staff note"), blank=True, help_text=_("How the confirmation arrived when it did not come through the API.")
    )
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("recorded by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    # The partner's detail and the staff note are free text that may name the consumer; both are
    # erased once the deletion is done (or its contact retention ends), the facts above stay.
    text_removed_at = models.DateTimeField(_("notes removed at"), null=True, blank=True, editable=False)

    history = HistoricalRecords(table_name="portal_historicalprivacyrequestpartnertask")

    class Meta:
        db_table = "portal_privacyrequestpartnertask"
        ordering = ["partner__name"]
        verbose_name = _("partner erasure task")
        verbose_name_plural = _("partner erasure tasks")
        permissions = [
            ("record_privacyrequestpartnertask", _("Can record a partner's confirmation received by other means"))
        ]
        constraints = [
            models.UniqueConstraint(fields=["request", "partner"], name="partnertask_unique_request_partner"),
            models.CheckConstraint(
                condition=~Q(state__in=["acknowledged", "recorded"]) | Q(acked_at__isnull=False),
                name="partnertask_done_has_date",
            ),
            models.CheckConstraint(
                condition=~Q(state="recorded") | ~Q(staff_note="") | Q(text_removed_at__isnull=False),
                name="partnertask_recorded_has_note",
            ),
        ]
        indexes = [models.Index(fields=["state", "request"], name="partnertask_open_by_request")]

    def __str__(self) -> str:
        return f"{self.partner} · {self.get_state_display()}"

    @property
    def is_done(self) -> bool:
        return self.state in DONE_TASK_STATES

    @admin.display(description=_("partner's detail"))
    def ack_detail_shown(self) -> str:
        return self.ack_detail or (str(NOTE_REMOVED) if self.text_removed_at else "")

    @admin.display(description=_("staff note"))
    def staff_note_shown(self) -> str:
        return self.staff_note or (str(NOTE_REMOVED) if self.text_removed_at else "")


class ConsentProof(models.Model):
    """What survives a deletion: a consent receipt under the pseudonymous principal id, until its retention ends.

    The signed receipt (JWS) is kept whole so its hash and signature still verify; it names the
    principal only by the pseudonymous id. Rows are immutable and have no history table, so that
    purging them leaves nothing behind.
    """

    principal_id = models.CharField(_("pseudonymous principal id"), max_length=80)
    receipt_id = models.UUIDField(_("receipt id"), unique=True)
    purpose_slug = models.SlugField(_("purpose"), max_length=64)
    notice_version = models.PositiveIntegerField(_("notice version"))
    event = models.CharField(_("event"), max_length=24)
    issued_at = models.DateTimeField(_("issued at"))
    receipt_sha256 = models.CharField(_("SHA-256 of the receipt"), max_length=64)
    jws = models.TextField(_("signed receipt (JWS)"))
    kept_since = models.DateTimeField(_("kept since"), default=timezone.now)
    retain_until = models.DateTimeField(_("kept until"))

    class Meta:
        db_table = "portal_consentproof"
        ordering = ["principal_id", "issued_at"]
        verbose_name = _("consent proof")
        verbose_name_plural = _("consent proofs")
        indexes = [
            models.Index(fields=["principal_id", "issued_at"], name="consentproof_by_principal"),
            models.Index(fields=["retain_until"], name="consentproof_purge_due"),
        ]

    def __str__(self) -> str:
        return f"{self.principal_id} · {self.purpose_slug} v{self.notice_version} {self.event}"


class AgentRequestKind(models.TextChoices):
    EXPORT = "export", _("A copy of the consumer's data")
    DELETION = "deletion", _("Deletion of the consumer's account")
    OPT_OUT = "opt_out", _("Opt-out of the sale or sharing of the consumer's data")


class AgentRequestStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    AWAITING_CONSUMER = "awaiting_consumer", _("Waiting for the consumer or staff")
    CONFIRMED = "confirmed", _("Confirmed by the consumer")
    VERIFIED = "verified", _("Agent's authority verified by staff")
    DECLINED = "declined", _("Declined by the consumer")
    REJECTED = "rejected", _("Agent's authority not accepted by staff")
    NO_ACCOUNT = "no_account", _("Closed: no account for that address")


class AgentRequest(models.Model):
    """A request an authorised agent made for a consumer (CCPA, Cal. Code Regs. tit. 11, § 7063).

    Nothing happens for the consumer until they confirm it (emailed link, signed in as themselves)
    or staff verify the agent's power of attorney; it then becomes an ordinary privacy request (or
    an opt-out of sale/sharing) that keeps the date the agent's request was received.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(_("kind"), max_length=16, choices=AgentRequestKind.choices)
    status = models.CharField(
        _("status"), max_length=24, choices=AgentRequestStatus.choices, default=AgentRequestStatus.RECEIVED
    )
    consumer_email = models.EmailField(_("consumer's email address"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("consumer"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="agent_requests",
    )
    agent_name = models.CharField(_("agent's name"), max_length=200)
    agent_email = models.EmailField(_("agent's email address"))
    agent_organisation = models.CharField(_("agent's organisation"), max_length=200, blank=True)
    # The key of the signed permission in the private ``exports`` storage (never a public URL).
    document_name = models.CharField(_("permission document"), max_length=200, blank=True, editable=False)
    document_type = models.CharField(_("document type"), max_length=64, blank=True)
    document_size = models.PositiveIntegerField(_("document size (bytes)"), default=0)
    language = models.CharField(_("language"), max_length=16, default="en")
    received_at = models.DateTimeField(_("received at"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("verified by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    confirm_nonce = models.CharField(max_length=32, blank=True, editable=False)
    privacy_request = models.OneToOneField(
        PrivacyRequest,
        verbose_name=_("privacy request"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="agent_request",
    )

    class Meta:
        ordering = ["-received_at"]
        verbose_name = _("authorised agent request")
        verbose_name_plural = _("authorised agent requests")
        permissions = [("verify_agentrequest", _("Can verify an authorised agent's power of attorney"))]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=["awaiting_consumer", "confirmed", "verified", "declined"])
                | Q(user__isnull=False),
                name="agentrequest_matched_has_consumer",
            ),
            models.CheckConstraint(
                condition=~Q(status__in=["confirmed", "verified", "declined"]) | Q(decided_at__isnull=False),
                name="agentrequest_decided_has_date",
            ),
        ]
        indexes = [models.Index(fields=["status", "received_at"], name="agentrequest_queue")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} · {self.agent_label}"

    @property
    def agent_label(self) -> str:
        """The agent as the consumer reads it: name, and organisation when given."""
        return f"{self.agent_name} ({self.agent_organisation})" if self.agent_organisation else self.agent_name

    @property
    def is_open(self) -> bool:
        return self.status == AgentRequestStatus.AWAITING_CONSUMER
