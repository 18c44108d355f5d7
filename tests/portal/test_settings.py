import os
import secrets
import subprocess
import sys

from cryptography.fernet import Fernet

from portal.env import ed25519_pem
from tests.conftest import ROOT


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in inherited}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean | env, capture_output=True, text=True, timeout=120
    )


def test_production_settings_pass_check_deploy(tmp_path):
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "PORTAL_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(60),
            "AUDIT_HMAC_KEY": secrets.token_hex(32),
            "RECEIPT_SIGNING_KEY": ed25519_pem(),
            "CLIENT_SECRET_HMAC_KEY": secrets.token_hex(32),
            "WEBHOOK_SECRET_KEY": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
            "ALLOWED_HOSTS": "portal.example.com",
            "PORTAL_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = _manage("check", env={"PORTAL_ENV": "production", "ALLOWED_HOSTS": "x", "PORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_production_refuses_to_start_without_the_partner_secret_keys(tmp_path):
    env = {
        "PORTAL_ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(60),
        "AUDIT_HMAC_KEY": secrets.token_hex(32),
        "RECEIPT_SIGNING_KEY": ed25519_pem(),
        "ALLOWED_HOSTS": "portal.example.com",
        "PORTAL_VAR_DIR": str(tmp_path),
    }
    for missing in ("CLIENT_SECRET_HMAC_KEY", "WEBHOOK_SECRET_KEY"):
        keys = {"CLIENT_SECRET_HMAC_KEY": secrets.token_hex(32), "WEBHOOK_SECRET_KEY": Fernet.generate_key().decode()}
        del keys[missing]
        result = _manage("check", env=env | keys)
        assert result.returncode != 0
        assert "CLIENT_SECRET_HMAC_KEY and WEBHOOK_SECRET_KEY are required" in result.stderr
    assert not (tmp_path / "webhook_secret_key").exists()
    assert not (tmp_path / "client_secret_hmac_key").exists()


def test_development_generates_a_secret_key_once(tmp_path):
    env = {"PORTAL_ENV": "development", "PORTAL_VAR_DIR": str(tmp_path)}
    assert _manage("check", env=env).returncode == 0
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert _manage("check", env=env).returncode == 0
    assert (tmp_path / "secret_key").read_text() == key


def test_unknown_portal_env_is_refused(tmp_path):
    result = _manage("check", env={"PORTAL_ENV": "staging", "PORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "PORTAL_ENV must be" in result.stderr


def test_production_refuses_the_crash_after_commit_fault(tmp_path):
    result = _manage(
        "check",
        env={
            "PORTAL_ENV": "production",
            "PORTAL_FAULT_CRASH_AFTER_COMMIT": "1",
            "SECRET_KEY": secrets.token_urlsafe(60),
            "AUDIT_HMAC_KEY": secrets.token_hex(32),
            "RECEIPT_SIGNING_KEY": ed25519_pem(),
            "CLIENT_SECRET_HMAC_KEY": secrets.token_hex(32),
            "WEBHOOK_SECRET_KEY": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "portal.example.com",
            "PORTAL_VAR_DIR": str(tmp_path),
        },
    )
    assert result.returncode != 0
    assert "PORTAL_FAULT_CRASH_AFTER_COMMIT is a test-only fault" in result.stderr
