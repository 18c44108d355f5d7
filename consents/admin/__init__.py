"""Staff screens for the consent domain, split by area: notices, partners, consent records."""

from consents.admin.apps import ConnectedAppAdmin
from consents.admin.credentials import PartnerCredentialAdmin
from consents.admin.notices import DataCategoryAdmin, PurposeAdmin
from consents.admin.outbox import OutboxEventAdmin
from consents.admin.partners import PartnerAdmin, SharingAdmin
from consents.admin.publication import PublicationRunAdmin
from consents.admin.records import ConsentAdmin, ConsentReceiptAdmin

__all__ = [
    "ConnectedAppAdmin",
    "ConsentAdmin",
    "ConsentReceiptAdmin",
    "DataCategoryAdmin",
    "OutboxEventAdmin",
    "PartnerAdmin",
    "PartnerCredentialAdmin",
    "PublicationRunAdmin",
    "PurposeAdmin",
    "SharingAdmin",
]
