"""Webhook signing secrets are encrypted at rest, decrypt for signing, and survive key rotation."""

import importlib

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from consents.models import Partner
from tests.factories import PartnerFactory

migration = importlib.import_module("consents.migrations.0004_encrypt_webhook_secrets")


def stored_columns(partner: Partner) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT webhook_secret, webhook_secret_previous FROM consents_partner WHERE id = %s", [partner.pk]
        )
        return cursor.fetchone()


def test_webhook_secrets_are_encrypted_at_rest(db, settings):
    partner = PartnerFactory(webhook_secret_previous="whsec_" + "B" * 43 + "=")
    secret, previous = stored_columns(partner)

    assert "whsec_" not in secret
    assert "whsec_" not in previous
    fernet = Fernet(settings.WEBHOOK_SECRET_KEYS[0])
    assert fernet.decrypt(secret.encode()).decode() == partner.webhook_secret
    assert fernet.decrypt(previous.encode()).decode() == partner.webhook_secret_previous


def test_the_model_and_value_reads_give_the_plain_secret(db):
    partner = PartnerFactory(webhook_secret_previous="")
    loaded = Partner.objects.get(pk=partner.pk)

    assert loaded.webhook_secret == partner.webhook_secret
    assert loaded.webhook_secret.startswith("whsec_")
    assert Partner.objects.values_list("webhook_secret", "webhook_secret_previous").get(pk=partner.pk) == (
        partner.webhook_secret,
        "",
    )
    assert stored_columns(partner)[1] == ""  # no previous secret stays a blank column


def test_a_new_key_put_first_still_reads_old_secrets_and_reencrypt_moves_them(db, settings, capsys):
    partner = PartnerFactory()
    old_key = settings.WEBHOOK_SECRET_KEYS[0]
    new_key = Fernet.generate_key().decode()
    settings.WEBHOOK_SECRET_KEYS = [new_key, old_key]

    assert Partner.objects.get(pk=partner.pk).webhook_secret == partner.webhook_secret
    call_command("webhook_secrets_reencrypt")

    assert "1 partners" in capsys.readouterr().out
    assert Fernet(new_key).decrypt(stored_columns(partner)[0].encode()).decode() == partner.webhook_secret
    settings.WEBHOOK_SECRET_KEYS = [new_key]
    assert Partner.objects.get(pk=partner.pk).webhook_secret == partner.webhook_secret


def test_a_missing_key_fails_loudly_rather_than_using_the_ciphertext(db, settings):
    partner = PartnerFactory()
    settings.WEBHOOK_SECRET_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_SECRET_KEY"):
        Partner.objects.get(pk=partner.pk)


def test_the_migration_encrypts_existing_plain_secrets_and_reverses(db):
    partner = PartnerFactory()
    plain = ("whsec_" + "C" * 43 + "=", "whsec_" + "D" * 43 + "=")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE consents_partner SET webhook_secret = %s, webhook_secret_previous = %s WHERE id = %s",
            [*plain, partner.pk],
        )
    # The models as the migration's RunPython step sees them: plain columns.
    before = MigrationExecutor(connection).loader.project_state(("consents", "0003_partner_credential_feed_sequencer"))

    migration.encrypt_secrets(before.apps, None)

    assert all("whsec_" not in column for column in stored_columns(partner))
    assert Partner.objects.values_list("webhook_secret", "webhook_secret_previous").get(pk=partner.pk) == plain

    migration.decrypt_secrets(before.apps, None)

    assert stored_columns(partner) == plain
