"""The event feed's sequencer: the position of each outbox event in commit order."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class FeedSequencer(models.Model):
    """A single row holding the last feed position handed out.

    Ids and timestamps are assigned before commit, so ordering by them lets a late-committing
    transaction slip behind a partner's cursor. Positions are instead handed out, under a lock
    on this row, only to events that have already committed, so they grow in commit order.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    last_seq = models.BigIntegerField(_("last feed position"), default=0)

    class Meta:
        verbose_name = _("feed sequencer")
        verbose_name_plural = _("feed sequencer")
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="feedsequencer_singleton")]

    def __str__(self) -> str:
        return f"feed @ {self.last_seq}"
