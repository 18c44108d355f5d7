"""A model field that keeps a secret encrypted at rest, for secrets we must use in clear later.

Partners' webhook signing secrets cannot be hashed: every delivery signs with them. They are
encrypted with Fernet (AES-128-CBC and HMAC-SHA256) under ``WEBHOOK_SECRET_KEYS``, which live in
the environment, not the database, so a copy of the database or a backup does not reveal them.
Several keys can be configured: the first encrypts, any decrypts, so keys rotate without downtime
(``manage.py webhook_secrets_reencrypt`` moves stored values to the first key).

In Python the attribute holds the plain secret; only the column holds the ciphertext. An empty
value stays empty, so "no previous secret" is still a blank column.
"""

from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def secret_fernet() -> MultiFernet:
    """The cipher for the configured keys (looked up on each use, so settings overrides apply)."""
    return _fernet(tuple(settings.WEBHOOK_SECRET_KEYS))


def secret_encrypt(value: str) -> str:
    return secret_fernet().encrypt(value.encode()).decode() if value else ""


def secret_decrypt(value: str) -> str:
    if not value:
        return ""
    try:
        return secret_fernet().decrypt(value.encode()).decode()
    except InvalidToken as exc:
        # Never fall back to treating the column as clear text: that would hide a wrong key.
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with WEBHOOK_SECRET_KEY; is the key that encrypted it missing?"
        ) from exc


def secret_reencrypt(value: str) -> str:
    """The same secret encrypted under the first (current) key."""
    return secret_fernet().rotate(value.encode()).decode() if value else ""


class EncryptedSecretField(models.CharField):
    """A short secret, plain in Python, Fernet-encrypted in the database.

    ``max_length`` bounds the column, which must hold the ciphertext (about 2.4 times the secret
    plus 100 characters). Lookups on the column cannot work, since each encryption differs.
    """

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return None if value is None else secret_decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        return value if value is None else secret_encrypt(value)
