"""The demo partner: one catalogue partner made a live integration with the local receiver."""

import json
from pathlib import Path

from django.conf import settings
from django.contrib.auth.hashers import check_password

from audit.services import Actor
from consents.models import (
    PARTNER_SCOPES,
    WEBHOOKS_MANAGE_SCOPE,
    ConnectedApp,
    DataCategory,
    Partner,
    PartnerCredential,
    Purpose,
)
from consents.services.apps import connected_app_create, connected_app_rotate_secret
from consents.services.partners import partner_credential_create, partner_credential_revoke
from portal.models import User

DEMO_PARTNER = "meridian-research-labs"
DEMO_PARTNER_LISTEN = "127.0.0.1:8001"
# The demo partner's connected app: a fixed client id so the demo and its docs can name it; the
# secret is generated at seed time and kept only in var/demo_partner.json.
DEMO_APP_CLIENT_ID = "meridian-offers-demo"
DEMO_APP_NAME = "Meridian Offers"
DEMO_APP_PURPOSE = "personalised-offers"
DEMO_APP_CATEGORIES = ("transaction-history", "account-balances", "contact-details")


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
    app_config = demo_app_ensure(partner=partner, staff=staff, config=config)
    credential = PartnerCredential.objects.filter(
        partner=partner, application__client_id=config.get("client_id", ""), revoked_at__isnull=True
    ).first()
    if credential is not None and WEBHOOKS_MANAGE_SCOPE not in credential.scope_list:
        # Seeded before the receiver asked for its test event at start-up: replace it with one that may.
        partner_credential_revoke(credential=credential, actor=Actor.staff(staff))
        credential = None
    if (
        credential is None
        or config.get("webhook_secret") != partner.webhook_secret
        or app_config != {k: config.get(k) for k in app_config}
    ):
        if credential is None:
            credential, secret = partner_credential_create(
                partner=partner,
                label="demo receiver",
                scopes=PARTNER_SCOPES,
                actor=Actor.staff(staff),
                created_by=staff,
            )
            config["client_id"], config["client_secret"] = credential.application.client_id, secret
        config |= app_config | {
            "webhook_secret": partner.webhook_secret,
            "portal_url": settings.SITE_URL,
            "listen": DEMO_PARTNER_LISTEN,
        }
        path.write_text(json.dumps(config, indent=2))
        path.chmod(0o600)
    return path


def demo_app_ensure(*, partner: Partner, staff: User, config: dict[str, str]) -> dict[str, str]:
    """The demo partner's connected app, redirecting to its ``/callback``; returns its client id and secret.

    The secret is the one in ``config`` while it still works; otherwise (first seed, lost file) the
    app gets a new one, so a re-seed never leaves the demo partner with a secret the portal refuses.
    """
    redirect_uri = f"http://{DEMO_PARTNER_LISTEN}/callback"
    actor = Actor.staff(staff)
    app = ConnectedApp.objects.select_related("application").filter(application__client_id=DEMO_APP_CLIENT_ID).first()
    if app is None:
        app, secret = connected_app_create(
            partner=partner,
            name=DEMO_APP_NAME,
            redirect_uris=[redirect_uri],
            purposes=[Purpose.objects.get(slug=DEMO_APP_PURPOSE)],
            data_categories=DataCategory.objects.filter(slug__in=DEMO_APP_CATEGORIES),
            max_duration_days=90,
            max_lookback_days=365,
            actor=actor,
            created_by=staff,
        )
        app.application.client_id = DEMO_APP_CLIENT_ID
        app.application.save(update_fields=["client_id"])
        return {"app_client_id": DEMO_APP_CLIENT_ID, "app_client_secret": secret}
    secret = config.get("app_client_secret", "")
    if not secret or not check_password(secret, app.application.client_secret):
        secret = connected_app_rotate_secret(app=app, actor=actor)
    return {"app_client_id": DEMO_APP_CLIENT_ID, "app_client_secret": secret}
