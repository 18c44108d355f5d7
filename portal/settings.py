"""Settings for the privacy portal, read from the environment only (12-factor).

``PORTAL_ENV`` selects ``development`` (the default), ``test`` or ``production``. Every other
knob is an environment variable with a safe default for the embedded set-up (SQLite, a file
broker and a file cache under ``var/``). Secrets come from the environment or a ``*_FILE``
path, never from the repository.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """A string from ``NAME`` or from the file that ``NAME_FILE`` points to."""
    if path := os.environ.get(f"{name}_FILE"):
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


PORTAL_ENV = os.environ.get("PORTAL_ENV", "development")
if PORTAL_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"PORTAL_ENV must be development, test or production, not {PORTAL_ENV!r}")
PRODUCTION = PORTAL_ENV == "production"
TESTING = PORTAL_ENV == "test"

VAR_DIR = Path(os.environ.get("PORTAL_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _local_secret(filename: str, factory: Any) -> str:
    """A secret generated once into ``var/`` for development and tests."""
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured("SECRET_KEY is required when PORTAL_ENV=production")
    SECRET_KEY = _local_secret("secret_key", lambda: secrets.token_urlsafe(50))


def _ed25519_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode()
    )


# The audit log's HMAC key and the consent-receipt signing key (Ed25519, PEM). Production must
# provide both; development and tests generate them once under var/.
AUDIT_HMAC_KEY = env_str("AUDIT_HMAC_KEY")
RECEIPT_SIGNING_KEY = env_str("RECEIPT_SIGNING_KEY")
if PRODUCTION and not (AUDIT_HMAC_KEY and RECEIPT_SIGNING_KEY):
    raise ImproperlyConfigured("AUDIT_HMAC_KEY and RECEIPT_SIGNING_KEY are required when PORTAL_ENV=production")
AUDIT_HMAC_KEY = AUDIT_HMAC_KEY or _local_secret("audit_hmac_key", lambda: secrets.token_hex(32))
RECEIPT_SIGNING_KEY = RECEIPT_SIGNING_KEY or _local_secret("receipt_signing_key.pem", _ed25519_pem)

ONE_TIME_CONSENT_HOURS = env_int("ONE_TIME_CONSENT_HOURS", 24)
CONSENT_EXPIRY_REMINDER_DAYS = env_int("CONSENT_EXPIRY_REMINDER_DAYS", 14)
# How far in the future a partner's reported access time may lie (clock skew), in seconds.
ACCESS_EVENT_CLOCK_SKEW_SECONDS = env_int("ACCESS_EVENT_CLOCK_SKEW_SECONDS", 300)

DEBUG = env_bool("DEBUG", default=PORTAL_ENV == "development")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = os.environ.get("SITE_URL", "http://localhost:8000").rstrip("/")

# The data controller named on consent receipts.
PORTAL_CONTROLLER = {
    "name": os.environ.get("CONTROLLER_NAME", "Privacy Portal"),
    "contact": os.environ.get("CONTROLLER_CONTACT", "Data Protection Officer"),
    "address": os.environ.get("CONTROLLER_ADDRESS", ""),
    "email": os.environ.get("CONTROLLER_EMAIL", "privacy@localhost"),
    "policy_url": os.environ.get("CONTROLLER_POLICY_URL", f"{SITE_URL}/privacy-notice/"),
    "jurisdiction": os.environ.get("CONTROLLER_JURISDICTION", "EU"),
    "country": os.environ.get("CONTROLLER_COUNTRY", "IE"),
}

INSTALLED_APPS = [
    "portal.apps.PortalAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "rest_framework",
    "drf_spectacular",
    "oauth2_provider",
    "django_htmx",
    "simple_history",
    "portal",
    "consents",
    "audit",
    "privacy_requests",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "consents.middleware.GlobalPrivacyControlMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
AUTH_USER_MODEL = "portal.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite under var/ by default, PostgreSQL (or any dj-database-url URL) via DATABASE_URL.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
        conn_max_age=env_int("CONN_MAX_AGE", 600),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let the web server and the worker share the file; IMMEDIATE
    # transactions take the write lock up front instead of failing half-way with "locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" and PORTAL_ENV == "test":
    # A file, not memory, so that a real Celery worker process started by a test sees the same data.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis, when configured, is both the Celery broker and the cache.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# Accounts (django-allauth): the email address is the login and must be verified.
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_REAUTHENTICATION_TIMEOUT = env_int("REAUTHENTICATION_TIMEOUT", 300)
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "5/5m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "reauthenticate": "10/m/user",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Privacy Portal] "
# Adding, removing or making primary an email address needs the password again unless it was
# entered in the last ACCOUNT_REAUTHENTICATION_TIMEOUT seconds: otherwise a stale session could
# swap in its own address and take the account over through a password reset. (Changing the
# password always asks for the current one.)
ACCOUNT_REAUTHENTICATION_REQUIRED = True
# The client address that rate limits count against (and that portal.http.client_ip returns).
# Behind a reverse proxy REMOTE_ADDR is the proxy's, so every visitor would share one counter:
# TRUSTED_PROXY_COUNT is the number of proxies you run in front of the portal (the client is the
# address that many entries from the right of X-Forwarded-For), or TRUSTED_CLIENT_IP_HEADER names
# a header your proxy sets to the client address (X-Real-IP, CF-Connecting-IP). Unset: REMOTE_ADDR,
# right only when clients connect to the portal directly. Both are spoofable unless a proxy you
# run sets or appends them, which is why neither is trusted by default.
ACCOUNT_ADAPTER = "portal.adapter.AccountAdapter"
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = os.environ.get("TRUSTED_CLIENT_IP_HEADER", "").strip() or None
if ALLAUTH_TRUSTED_PROXY_COUNT and ALLAUTH_TRUSTED_CLIENT_IP_HEADER:
    raise ImproperlyConfigured("Set TRUSTED_PROXY_COUNT or TRUSTED_CLIENT_IP_HEADER, not both")
# Request bodies above this are refused with 413 (forms and the partner API alike; DRF reads JSON
# through request.body, which enforces it). The largest legitimate body, an access-event batch of
# 1,000 events with every field at its maximum, is about 7.6 MiB (tests/consents/test_api_input_limits.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 10 * 1024 * 1024)
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = os.environ.get("MFA_TOTP_ISSUER", "Privacy Portal")
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"

# Email: the console in development, SMTP configured by environment in production.
MAILERS: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": os.environ.get(
            "EMAIL_BACKEND",
            "django.core.mail.backends.smtp.EmailBackend"
            if PRODUCTION
            else "django.core.mail.backends.console.EmailBackend",
        ),
        "OPTIONS": {},
    }
}
if MAILERS["default"]["BACKEND"].endswith("smtp.EmailBackend"):
    MAILERS["default"]["OPTIONS"] = {
        "host": os.environ.get("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 587),
        "username": env_str("EMAIL_HOST_USER"),
        "password": env_str("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", default=True),
        "timeout": 10,
    }
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Privacy Portal <privacy@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Internationalisation: English and Simplified Chinese.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files, served by whitenoise.
STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Security headers. Content Security Policy: nothing inline without a nonce, no third parties.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "object-src": [CSP.NONE],
}
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
if PRODUCTION:
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"

# Celery: JSON only, late acknowledgement so a killed worker's task is redelivered.
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "results").mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # kombu's default is ``control/`` in the working directory; keep every broker file in var/.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_RESULT_BACKEND = REDIS_URL or f"file://{VAR_DIR / 'results'}"
CELERY_RESULT_EXPIRES = timedelta(days=1)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "sessions-clear-expired": {
        "task": "portal.tasks.sessions_clear_expired",
        "schedule": crontab(minute=17, hour=3),
    },
}

# Consent expiry (consent-core, flow 7): end time-bound and one-time consents on time, every
# minute; remind consumers CONSENT_EXPIRY_REMINDER_DAYS before a time-bound consent ends, hourly.
# A tick not picked up before the next one is dropped rather than queued behind it.
CELERY_BEAT_SCHEDULE["consents-expire-due"] = {
    "task": "consents.tasks.consents_expire_due",
    "schedule": crontab(),
    "options": {"expires": 55},
}
CELERY_BEAT_SCHEDULE["consents-remind-expiring"] = {
    "task": "consents.tasks.consents_remind_expiring",
    "schedule": crontab(minute=7),
    "options": {"expires": 3000},
}

# Django REST Framework and the OpenAPI schema.
REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["consents.api.parsers.DepthLimitedJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Privacy Portal partner API",
    "DESCRIPTION": "Consent checks, event feed, access reporting and acknowledgements for data partners.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": 3600,
    # Adopt the OAuth 2.0 Security BCP (RFC 9700) now rather than when the defaults change;
    # partners only use the client-credentials grant, so none of these costs them anything.
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "SCOPES": {
        "consents:read": "Check consumers' consent",
        "events:read": "Read the consent and erasure event feed",
        "access:write": "Report data-access events",
        "acks:write": "Acknowledge events",
    },
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Privacy requests (export and deletion): how long an export can be downloaded, the grace period
# before a deletion starts, and how long the pseudonymous proof of consent outlives a deleted account.
EXPORT_TTL_DAYS = env_int("EXPORT_TTL_DAYS", 7)
DELETION_GRACE_DAYS = env_int("DELETION_GRACE_DAYS", 7)
CONSENT_PROOF_RETENTION_DAYS = env_int("CONSENT_PROOF_RETENTION_DAYS", 3 * 365)
# A deletion keeps the consumer's address only to tell them it is complete, which waits for every
# partner's confirmation. A partner may never confirm, so the address (and the free text gathered
# meanwhile) goes this many days after the request anyway, checked by the privacy-requests tick. 100
# days: the longest legal deadline with every extension (GDPR one month plus two, at most 92 days;
# CCPA 45 plus 45 days) and a week for late confirmations.
PRIVACY_REQUEST_CONTACT_RETENTION_DAYS = env_int("PRIVACY_REQUEST_CONTACT_RETENTION_DAYS", 100)
CELERY_BEAT_SCHEDULE |= {
    "privacy-requests-tick": {"task": "portal.requests.tasks.privacy_requests_tick", "schedule": 60.0},
    "privacy-exports-purge-expired": {
        "task": "portal.requests.tasks.privacy_exports_purge_expired",
        "schedule": crontab(minute=7),
    },
    "consent-proofs-purge-expired": {
        "task": "portal.requests.tasks.consent_proofs_purge_expired",
        "schedule": crontab(minute=37, hour=3),
    },
}

# Partner API: OAuth 2.0 clients tied to partners, per-credential scopes, per-partner throttling.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER["OAUTH2_VALIDATOR_CLASS"] = "consents.api.oauth.PartnerOAuth2Validator"
OAUTH2_PROVIDER["SCOPES_BACKEND_CLASS"] = "consents.api.oauth.PartnerCredentialScopes"
# Requests per partner per window (DRF rate syntax: N/second, N/minute, N/hour, N/day).
PARTNER_API_RATE = os.environ.get("PARTNER_API_RATE", "1200/minute")
REST_FRAMEWORK["EXCEPTION_HANDLER"] = "consents.api.problems.problem_exception_handler"
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "consents.api.schema.PartnerApiSchema"
SPECTACULAR_SETTINGS.update(
    {
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
        "COMPONENT_SPLIT_REQUEST": True,
        "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "consents.api.schema.feed_links"],
        "ENUM_NAME_OVERRIDES": {
            "ConsentStateStatusEnum": "consents.api.views.CONSENT_STATE_STATUSES",
            "CheckResultStatusEnum": "consents.api.views.CHECK_RESULT_STATUSES",
            "EventConsentStatusEnum": "consents.api.views.EVENT_CONSENT_STATUSES",
            "AckStatusEnum": "consents.api.views.ACK_STATUSES",
            "EventTypeEnum": "consents.api.views.EVENT_TYPES",
        },
    }
)
INSTALLED_APPS.append("drf_spectacular_sidecar")

# Webhooks: the outbox relay and delivery to partners' endpoints (consents/outbox.py, webhooks.py,
# tasks_delivery.py). Private and loopback webhook URLs are refused unless WEBHOOK_ALLOW_PRIVATE
# is on; it defaults to on only in development, for the local demo partner.
WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", default=PORTAL_ENV == "development")
WEBHOOK_TIMEOUT_SECONDS = 10.0
OUTBOX_RELAY_GRACE_SECONDS = env_int("OUTBOX_RELAY_GRACE_SECONDS", 5)
OUTBOX_RELAY_BATCH = env_int("OUTBOX_RELAY_BATCH", 500)
# Celery's Django fix-up closes the database connection before and after every task unless this is
# set, which costs a reconnect per delivery (on PostgreSQL a TCP handshake and authentication).
# With it, connections live as CONN_MAX_AGE says; portal/celery.py runs Django's own per-request
# check (close_old_connections) around each task instead, so broken connections are still dropped.
CELERY_DB_REUSE_MAX = 1_000_000
CELERY_BEAT_SCHEDULE["outbox-relay"] = {
    "task": "consents.tasks_delivery.outbox_relay",
    "schedule": timedelta(seconds=env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 5)),
    "options": {"expires": 30},
}

# Partner credentials and webhook secrets (consents/api/oauth.py, client_secrets.py, models/fields.py).
# CLIENT_SECRET_HMAC_KEY keys the verifier that OAuth client secrets are stored as: they are
# high-entropy, so a keyed SHA-256 is as safe as a password hash and costs microseconds instead of
# a second of CPU per (possibly hostile) attempt. User passwords keep the slow default hasher.
# WEBHOOK_SECRET_KEY encrypts partners' webhook signing secrets at rest: one or more Fernet keys,
# comma-separated; the first encrypts, all decrypt, so a new key goes first and the old one stays
# until ``manage.py webhook_secrets_reencrypt`` has run. Production must provide both.
CLIENT_SECRET_HMAC_KEY = env_str("CLIENT_SECRET_HMAC_KEY")
WEBHOOK_SECRET_KEYS = [key.strip() for key in env_str("WEBHOOK_SECRET_KEY").split(",") if key.strip()]
if PRODUCTION and not (CLIENT_SECRET_HMAC_KEY and WEBHOOK_SECRET_KEYS):
    raise ImproperlyConfigured("CLIENT_SECRET_HMAC_KEY and WEBHOOK_SECRET_KEY are required when PORTAL_ENV=production")
CLIENT_SECRET_HMAC_KEY = CLIENT_SECRET_HMAC_KEY or _local_secret(
    "client_secret_hmac_key", lambda: secrets.token_hex(32)
)


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


WEBHOOK_SECRET_KEYS = WEBHOOK_SECRET_KEYS or [_local_secret("webhook_secret_key", _fernet_key)]
PASSWORD_HASHERS.append("consents.api.client_secrets.ClientSecretHasher")
OAUTH2_PROVIDER["CLIENT_SECRET_HASHER"] = "hmac_sha256"  # noqa: S105 (a hasher's name)
# The token, revocation and introspection endpoints: requests per claimed client_id and per client
# address in fixed windows (DRF rate syntax), answered 429 with Retry-After beyond that. Partners
# need a token an hour per process, so these leave room for a fleet restarting at once.
OAUTH_TOKEN_RATE_PER_CLIENT = os.environ.get("OAUTH_TOKEN_RATE_PER_CLIENT", "60/minute")
OAUTH_TOKEN_RATE_PER_IP = os.environ.get("OAUTH_TOKEN_RATE_PER_IP", "300/minute")
# Live access tokens one credential may hold; issuing another revokes the oldest.
OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL = env_int("OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL", 20)

# History is evidence: staff read it, nobody reverts to it from the admin (portal/admin_history.py
# refuses the form's POST; this hides its button).
SIMPLE_HISTORY_REVERT_DISABLED = True

# Test overrides, in one place.
if TESTING:
    # The default hasher costs about a second a login on these machines.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
