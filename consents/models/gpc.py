"""Global Privacy Control: the record that a consumer's browser signal was honoured."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class GpcSignal(models.Model):
    """One row per consumer whose browser sent ``Sec-GPC: 1``.

    The signal is honoured once: the row's existence means later requests change nothing, so a
    consent the consumer gives explicitly afterwards is respected.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, verbose_name=_("consumer"), on_delete=models.CASCADE, related_name="gpc_signal"
    )
    honoured_at = models.DateTimeField(_("honoured at"), default=timezone.now)
    purposes = models.JSONField(
        _("purposes opted out"),
        default=list,
        blank=True,
        help_text=_("Identifiers of the purposes the signal withdrew or refused."),
    )

    class Meta:
        verbose_name = _("Global Privacy Control signal")
        verbose_name_plural = _("Global Privacy Control signals")

    def __str__(self) -> str:
        return f"{self.user} · GPC {self.honoured_at:%Y-%m-%d %H:%M}"
