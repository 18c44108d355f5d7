"""What withdrawing a consent changes, partner by partner, for the withdrawal preview."""

from dataclasses import dataclass

from django.utils.translation import gettext as _

from consents.models import DataCategory, Partner, PartnerKind, PurposeVersion
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


def _data_already_shared(partner: Partner, version: PurposeVersion) -> str:
    retention = version.retention
    if partner.kind == PartnerKind.INTERNAL:
        return _(
            "Our own team stops using your data for this purpose and deletes what it holds as the notice says: "
            "%(retention)s."
        ) % {"retention": retention}
    if partner.kind in _ON_OUR_INSTRUCTIONS:
        return _(
            "It works only on our instructions: we tell it to stop, and it deletes what it holds as the notice "
            "says: %(retention)s."
        ) % {"retention": retention}
    return _(
        "It keeps its own copy under its own privacy policy. We tell it to stop using your data for this purpose "
        "and ask it to delete what it has; it may keep only what the law requires it to keep."
    )


def withdrawal_impact(card: ConsentCard) -> list[PartnerImpact]:
    """Per partner receiving the purpose's data: full country name, data received, fate of data already shared.

    Reads nothing more than the card already holds (its sharings come with partners and categories).
    """
    return [
        PartnerImpact(
            partner=sharing.partner,
            country=sharing.partner.country_name,
            categories=list(sharing.data_categories.all()),
            data_already_shared=_data_already_shared(sharing.partner, card.version),
        )
        for sharing in card.sharings
    ]
