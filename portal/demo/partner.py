"""The demo partner: one catalogue partner made a live integration with the local receiver."""

import json
from pathlib import Path

from django.conf import settings

from audit.services import Actor
from consents.models import PARTNER_SCOPES, Partner, PartnerCredential
from consents.services.partners import partner_credential_create
from portal.models import User

DEMO_PARTNER = "meridian-research-labs"
DEMO_PARTNER_LISTEN = "127.0.0.1:8001"


def demo_partner_ensure(*, staff: User) -> Path:
    """Make one demo partner a live integration: the local ``demo_partner`` receiver and its credentials.

    Its webhook points at the receiver that ``make run`` starts, and an OAuth client lets it
    acknowledge events. The client secret is stored only in ``var/demo_partner.json`` (development
    only), where the receiver reads it; a lost or revoked credential is replaced.
    """
    path = Path(settings.VAR_DIR) / "demo_partner.json"
    partner = Partner.objects.get(slug=DEMO_PARTNER)
    webhook_url = f"http://{DEMO_PARTNER_LISTEN}/webhooks/privacy-portal"
    if partner.webhook_url != webhook_url or partner.webhook_disabled_at is not None:
        partner.webhook_url = webhook_url
        partner.webhook_disabled_at = None
        partner.save(update_fields=["webhook_url", "webhook_disabled_at"])
    config = json.loads(path.read_text()) if path.exists() else {}
    credential = PartnerCredential.objects.filter(
        partner=partner, application__client_id=config.get("client_id", ""), revoked_at__isnull=True
    ).first()
    if credential is None or config.get("webhook_secret") != partner.webhook_secret:
        if credential is None:
            credential, secret = partner_credential_create(
                partner=partner,
                label="demo receiver",
                scopes=PARTNER_SCOPES,
                actor=Actor.staff(staff),
                created_by=staff,
            )
            config["client_id"], config["client_secret"] = credential.application.client_id, secret
        config |= {
            "webhook_secret": partner.webhook_secret,
            "portal_url": settings.SITE_URL,
            "listen": DEMO_PARTNER_LISTEN,
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
    return path
