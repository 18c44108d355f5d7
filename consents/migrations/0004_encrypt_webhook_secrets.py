"""Encrypt partners' webhook signing secrets at rest (see consents/models/fields.py).

Three steps: widen the columns (a ciphertext is longer than its secret), encrypt the values
already stored with the first of WEBHOOK_SECRET_KEYS, then switch the fields to the encrypting
field class (no schema change). Reversing decrypts the values back into plain text, which needs the
same key; deliveries keep working on either side, since the secrets themselves do not change.
"""

import consents.models.fields
import consents.models.partners
from django.db import migrations, models

SECRET_FIELDS = ("webhook_secret", "webhook_secret_previous")


def _convert(apps, convert) -> None:
    Partner = apps.get_model("consents", "Partner")
    for partner in Partner.objects.only("pk", *SECRET_FIELDS).iterator():
        for field in SECRET_FIELDS:
            setattr(partner, field, convert(getattr(partner, field)))
        partner.save(update_fields=SECRET_FIELDS)


def encrypt_secrets(apps, schema_editor) -> None:
    from consents.models.fields import secret_encrypt

    _convert(apps, secret_encrypt)


def decrypt_secrets(apps, schema_editor) -> None:
    from consents.models.fields import secret_decrypt

    _convert(apps, secret_decrypt)


class Migration(migrations.Migration):

    dependencies = [
        ("consents", "0003_partner_credential_feed_sequencer"),
    ]

    operations = [
        migrations.AlterField(
            model_name="partner",
            name="webhook_secret",
            field=models.CharField(
                default=consents.models.partners.webhook_secret_generate,
                max_length=255,
                verbose_name="webhook signing secret",
            ),
        ),
        migrations.AlterField(
            model_name="partner",
            name="webhook_secret_previous",
            field=models.CharField(
                blank=True,
                help_text="Still signed with during a rotation, until cleared.",
                max_length=255,
                verbose_name="previous signing secret",
            ),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets, elidable=False),
        migrations.AlterField(
            model_name="partner",
            name="webhook_secret",
            field=consents.models.fields.EncryptedSecretField(
                default=consents.models.partners.webhook_secret_generate,
                max_length=255,
                verbose_name="webhook signing secret",
            ),
        ),
        migrations.AlterField(
            model_name="partner",
            name="webhook_secret_previous",
            field=consents.models.fields.EncryptedSecretField(
                blank=True,
                help_text="Still signed with during a rotation, until cleared.",
                max_length=255,
                verbose_name="previous signing secret",
            ),
        ),
    ]
