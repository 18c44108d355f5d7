"""Typed readers of the environment for ``portal/settings.py``, and the secrets it generates locally.

Settings read every knob through these, so that the settings module reads as configuration. Only
secrets may come from a file (``NAME_FILE``, as Docker and Kubernetes secrets are mounted).
"""

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

TRUE_VALUES = {"1", "true", "yes", "on"}


def env_str(name: str, default: str = "") -> str:
    """``NAME``, or ``default`` when it is not set."""
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    """``NAME`` as a flag: 1, true, yes or on (any case) are true, anything else false."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in TRUE_VALUES


def env_int(name: str, default: int) -> int:
    """``NAME`` as an integer; ``default`` when it is unset or empty."""
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    """``NAME`` as a comma-separated list, blanks dropped."""
    return _split(os.environ.get(name, default))


def env_secret(name: str) -> str:
    """A secret from ``NAME`` or from the file that ``NAME_FILE`` points to; empty when neither is set."""
    if path := os.environ.get(f"{name}_FILE"):
        return Path(path).read_text().strip()
    return os.environ.get(name, "")


def env_secret_list(name: str) -> list[str]:
    """A comma-separated list of secrets, read as ``env_secret`` does."""
    return _split(env_secret(name))


def require_in_production(production: bool, **values: object) -> None:
    """Refuse to start in production unless every one of these secrets is set.

    Called before any of them is generated locally, so a production set-up missing one of a pair
    leaves no generated file behind.
    """
    if production and not all(values.values()):
        verb = "is" if len(values) == 1 else "are"
        raise ImproperlyConfigured(f"{' and '.join(values)} {verb} required when PORTAL_ENV=production")


def local_secret(path: Path, factory: Callable[[], str]) -> str:
    """A secret generated once into ``path`` (under ``var/``) for development and tests."""
    if not path.exists():
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


def token_hex() -> str:
    """A random 256-bit key, hex-encoded (HMAC keys)."""
    return secrets.token_hex(32)


def token_urlsafe() -> str:
    """A random URL-safe string long enough for Django's ``SECRET_KEY``."""
    return secrets.token_urlsafe(50)


def ed25519_pem() -> str:
    """A new Ed25519 private key in PKCS#8 PEM (the consent-receipt signing key)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


def fernet_key() -> str:
    """A new Fernet key (encrypts partners' webhook signing secrets at rest)."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _split(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]
