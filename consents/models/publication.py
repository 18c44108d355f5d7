"""The run that asks everyone who agreed to an older notice to decide again, batch by batch."""

from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from consents.models.notices import PurposeVersion


class PublicationRunState(models.TextChoices):
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")


class PublicationRun(models.Model):
    """Progress of a material notice version through the consents granted under older ones.

    Created in the publishing transaction; a task then moves ``last_consent_id`` forward one short
    transaction at a time, so a run cut off anywhere resumes after the last consent it finished.
    """

    version = models.OneToOneField(
        PurposeVersion, verbose_name=_("notice version"), on_delete=models.CASCADE, related_name="publication_run"
    )
    state = models.CharField(
        _("state"), max_length=16, choices=PublicationRunState.choices, default=PublicationRunState.RUNNING
    )
    total = models.PositiveIntegerField(_("consents to process"))
    done = models.PositiveIntegerField(_("consents processed"), default=0)
    last_consent_id = models.BigIntegerField(_("last processed consent id"), default=0)
    # Who published: the re-consent events carry the same actor the synchronous publish gave them.
    actor_kind = models.CharField(_("published by (kind)"), max_length=16)
    actor_id = models.CharField(_("published by (id)"), max_length=64, blank=True)
    actor_label = models.CharField(_("published by"), max_length=255, blank=True)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    # Touched by every batch: a running run not touched for a while has lost its worker.
    updated_at = models.DateTimeField(_("last progress at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.TextField(_("last error"), blank=True)

    class Meta:
        ordering = ["-started_at"]
        verbose_name = _("publication run")
        verbose_name_plural = _("publication runs")
        indexes = [models.Index(fields=["state", "updated_at"], name="publicationrun_stalled")]

    def __str__(self) -> str:
        return str(self.version)

    @property
    def percent(self) -> int:
        """How far the run is, 0 to 100."""
        if self.state == PublicationRunState.DONE or not self.total:
            return 100
        return min(100, self.done * 100 // self.total)

    def eta(self) -> datetime | None:
        """When the run should finish at its pace so far; ``None`` once done or before any progress."""
        if self.state == PublicationRunState.DONE or not self.done:
            return None
        elapsed = (self.updated_at - self.started_at).total_seconds()
        remaining = max(self.total - self.done, 0)
        return self.updated_at + timedelta(seconds=elapsed * remaining / self.done)
