"""The business audit log: append-only, hash-chained per subject, each row HMAC-sealed."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


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
    action = models.CharField(_("action"), max_length=64)
    target_type = models.CharField(_("target type"), max_length=64, blank=True)
    target_id = models.CharField(_("target id"), max_length=64, blank=True)
    data = models.JSONField(_("details"), default=dict, blank=True)
    prev_hash = models.CharField(_("previous hash"), max_length=64, editable=False)
    hash = models.CharField(_("hash"), max_length=64, editable=False)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="auditevent_unique_chain_seq"),
        ]
        indexes = [
            models.Index(fields=["subject", "-occurred_at", "-id"], name="audit_by_subject_recent"),
            models.Index(fields=["action", "-occurred_at"], name="audit_by_action_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.action} #{self.chain}/{self.seq}"
