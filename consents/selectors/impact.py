"""What withdrawing a consent changes, partner by partner, for the withdrawal preview."""

from dataclasses import dataclass

from django.utils.translation import gettext as _

from consents.models import DataCategory, Partner, PartnerKind, PurposeVersion
from consents.models.translations import LocalizedText
from consents.selectors.consents import ConsentCard

# Partners that act only on our instructions (processors): our retention rule binds them. The
# others decide themselves what they keep (controllers), so we can only ask them to delete.
_ON_OUR_INSTRUCTIONS = {PartnerKind.INTERNAL, PartnerKind.SERVICE_PROVIDER}


@dataclass(frozen=True)
class PartnerImpact:
    """One partner that receives the data: who it is, where, what it got and what happens to it now."""

    partner: Partner
    country: str
    categories: list[DataCategory]
    data_already_shared: str
    # How long the partner keeps what it already has, in the page's language when translated
    # (a ``LocalizedText`` so the page can mark another language); None when nobody stated it.
    retention: LocalizedText | None


def _data_already_shared(partner: Partner) -> str:
    if partner.kind == PartnerKind.INTERNAL:
        return _(
            "Our own team stops using your data for this purpose and deletes what it holds when its retention "
            "period ends."
        )
    if partner.kind in _ON_OUR_INSTRUCTIONS:
        return _(
            "It works only on our instructions: we tell it to stop, and it deletes what it holds when its "
            "retention period ends."
        )
    return _(
        "It keeps its own copy under its own privacy policy. We tell it to stop using your data for this purpose "
        "and ask it to delete what it has; it may keep only what the law requires it to keep."
    )


def partner_retention(partner: Partner, version: PurposeVersion) -> LocalizedText | None:
    """The partner's own retention rule; for a partner on our instructions without one, the notice's rule."""
    if rule := partner.l10n.retention:
        return rule
    if partner.kind in _ON_OUR_INSTRUCTIONS:
        return version.l10n.retention
    return None


def withdrawal_impact(card: ConsentCard) -> list[PartnerImpact]:
    """Per partner receiving the purpose's data: full country name, data received, fate of data already shared.

    Reads nothing more than the card already holds (its sharings come with partners and categories).
    """
    return [
        PartnerImpact(
            partner=sharing.partner,
            country=sharing.partner.country_name,
            categories=list(sharing.data_categories.all()),
            data_already_shared=_data_already_shared(sharing.partner),
            retention=partner_retention(sharing.partner, card.version),
        )
        for sharing in card.sharings
    ]
