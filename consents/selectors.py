"""Reads for the consumer's consent pages."""

from dataclasses import dataclass

from django.db.models import Prefetch

from consents.models import Consent, Purpose, Sharing
from portal.models import User


@dataclass
class ConsentCard:
    purpose: Purpose
    consent: Consent | None
    sharings: list[Sharing]


def consent_cards(user: User) -> list[ConsentCard]:
    """Every published purpose with the consumer's decision about it, in display order."""
    purposes = (
        Purpose.objects.published()
        .select_related("current_version")
        .prefetch_related(
            "current_version__data_categories",
            Prefetch(
                "sharings",
                queryset=Sharing.objects.filter(is_active=True).select_related("partner").order_by("partner__name"),
                to_attr="active_sharings",
            ),
        )
    )
    consents = {c.purpose_id: c for c in Consent.objects.filter(user=user).select_related("version")}
    return [ConsentCard(p, consents.get(p.pk), p.active_sharings) for p in purposes]
