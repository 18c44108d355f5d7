"""Settings for the privacy portal, read from the environment only (12-factor).

``PORTAL_ENV`` selects ``development`` (the default), ``test`` or ``production``. Every other
knob is an environment variable with a safe default for the embedded set-up (SQLite, a file
broker and a file cache under ``var/``). Secrets come from the environment or a ``*_FILE``
path, never from the repository. The readers are in ``portal/env.py``; one block per topic below.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _
from kombu import Queue

from portal.env import (
    ed25519_pem,
    env_bool,
    env_int,
    env_list,
    env_secret,
    env_secret_list,
    env_str,
    fernet_key,
    local_secret,
    require_in_production,
    token_hex,
    token_urlsafe,
)

# --- Environment and paths -------------------------------------------------------------------

BASE_DIR = Path(__file__).resolve().parent.parent

PORTAL_ENV = env_str("PORTAL_ENV", "development")
if PORTAL_ENV not in {"development", "test", "production"}:
    raise ImproperlyConfigured(f"PORTAL_ENV must be development, test or production, not {PORTAL_ENV!r}")
PRODUCTION = PORTAL_ENV == "production"
TESTING = PORTAL_ENV == "test"

# Everything the running portal writes (SQLite, broker, cache, files, generated secrets).
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", default=PORTAL_ENV == "development")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# The portal's public address, for links in emails, receipts and webhooks.
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

# --- Secrets ---------------------------------------------------------------------------------
# Production must provide every one; development and tests generate each once under var/.
# Each group is checked before any of it is generated, so a refused start leaves no file behind.

SECRET_KEY = env_secret("SECRET_KEY")
require_in_production(PRODUCTION, SECRET_KEY=SECRET_KEY)
SECRET_KEY = SECRET_KEY or local_secret(VAR_DIR / "secret_key", token_urlsafe)

# The audit log's HMAC key and the consent-receipt signing key (Ed25519, PEM).
AUDIT_HMAC_KEY = env_secret("AUDIT_HMAC_KEY")
RECEIPT_SIGNING_KEY = env_secret("RECEIPT_SIGNING_KEY")
require_in_production(PRODUCTION, AUDIT_HMAC_KEY=AUDIT_HMAC_KEY, RECEIPT_SIGNING_KEY=RECEIPT_SIGNING_KEY)
AUDIT_HMAC_KEY = AUDIT_HMAC_KEY or local_secret(VAR_DIR / "audit_hmac_key", token_hex)
RECEIPT_SIGNING_KEY = RECEIPT_SIGNING_KEY or local_secret(VAR_DIR / "receipt_signing_key.pem", ed25519_pem)

# CLIENT_SECRET_HMAC_KEY keys the verifier that OAuth client secrets are stored as: they are
# high-entropy, so a keyed SHA-256 is as safe as a password hash and costs microseconds instead of
# a second of CPU per (possibly hostile) attempt. User passwords keep the slow default hasher.
# WEBHOOK_SECRET_KEY encrypts partners' webhook signing secrets at rest: one or more Fernet keys,
# comma-separated; the first encrypts, all decrypt, so a new key goes first and the old one stays
# until ``manage.py webhook_secrets_reencrypt`` has run.
CLIENT_SECRET_HMAC_KEY = env_secret("CLIENT_SECRET_HMAC_KEY")
WEBHOOK_SECRET_KEYS = env_secret_list("WEBHOOK_SECRET_KEY")
require_in_production(PRODUCTION, CLIENT_SECRET_HMAC_KEY=CLIENT_SECRET_HMAC_KEY, WEBHOOK_SECRET_KEY=WEBHOOK_SECRET_KEYS)
CLIENT_SECRET_HMAC_KEY = CLIENT_SECRET_HMAC_KEY or local_secret(VAR_DIR / "client_secret_hmac_key", token_hex)
WEBHOOK_SECRET_KEYS = WEBHOOK_SECRET_KEYS or [local_secret(VAR_DIR / "webhook_secret_key", fernet_key)]

# --- Applications, middleware, templates -----------------------------------------------------

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
    "drf_spectacular_sidecar",
    "oauth2_provider",
    "django_htmx",
    "simple_history",
    "portal",
    "consents",
    "audit",
    "privacy_requests",
]

MIDDLEWARE = [
    # First, so that it times the whole stack and sees the final status (request id, metrics, log line).
    "portal.middleware.RequestObservabilityMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: shows every page in the signed-in consumer's time zone.
    "portal.timezones.TimeZoneMiddleware",
    "consents.middleware.GlobalPrivacyControlMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "portal.replica.ReplicaPinMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

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
                "portal.context_processors.organisation",
            ],
            # Times, deadlines and durations for consumers (|local_datetime, |deadline, |duration_words).
            "builtins": ["portal.templatetags.portal_time"],
        },
    },
]

# Request bodies above this are refused with 413 (forms and the partner API alike; DRF reads JSON
# through request.body, which enforces it). The largest legitimate body, an access-event batch of
# 1,000 events with every field at its maximum, is about 7.6 MiB (tests/consents/test_api_input_limits.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BODY_BYTES", 10 * 1024 * 1024)

# --- Database --------------------------------------------------------------------------------
# SQLite under var/ by default, PostgreSQL (or any dj-database-url URL) via DATABASE_URL.

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}"),
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
    if TESTING:
        # A file, not memory, so that a real Celery worker process started by a test sees the same data.
        DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-portal.sqlite3")}

# An optional PostgreSQL read replica for the pages that only show records and the partner feed;
# never for anything that decides consent (portal/replica.py says which reads may go there).
DATABASE_REPLICA_URL = env_str("DATABASE_REPLICA_URL")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(
        DATABASE_REPLICA_URL, conn_max_age=env_int("CONN_MAX_AGE", 600), conn_health_checks=True
    )
    # Under test the replica is a second connection to the test database: it sees committed rows only.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["portal.replica.ReplicaRouter"]
# Tests switch replica reads on where they test them, so that the rest runs as without a replica.
REPLICA_READS = bool(DATABASE_REPLICA_URL) and not TESTING
# After a change, the browser reads the primary this long, so the consumer sees their own change.
REPLICA_PIN_SECONDS = env_int("REPLICA_PIN_SECONDS", 5)
# Hot-path reads (portal/prepared.py) run as server-side prepared statements on PostgreSQL; turn
# off behind a pooler that cannot keep them (PgBouncer transaction pooling before 1.21).
DATABASE_PREPARED_STATEMENTS = env_bool("DATABASE_PREPARED_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache -----------------------------------------------------------------------------------
# Redis, when configured, is both the cache and the Celery broker; otherwise files under var/.

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # Short socket timeouts: the partner API's rate limits pass requests through when the cache is
    # unreachable (consents/api/auth.py), and without them an unanswering Redis would hang each one.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

# --- Users, accounts (django-allauth) and two-factor authentication ---------------------------

AUTH_USER_MODEL = "portal.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    # Only verifies partners' OAuth client secrets (see CLIENT_SECRET_HMAC_KEY).
    "consents.api.client_secrets.ClientSecretHasher",
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
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"

# The email address is the login and must be verified.
ACCOUNT_ADAPTER = "portal.adapter.AccountAdapter"
# Adds the hidden field for the browser's time zone to the signup form.
ACCOUNT_SIGNUP_FORM_CLASS = "portal.forms.SignupTimeZoneForm"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Privacy Portal] "
ACCOUNT_REAUTHENTICATION_TIMEOUT = env_int("REAUTHENTICATION_TIMEOUT", 300)
# Adding, removing or making primary an email address needs the password again unless it was
# entered in the last ACCOUNT_REAUTHENTICATION_TIMEOUT seconds: otherwise a stale session could
# swap in its own address and take the account over through a password reset. (Changing the
# password always asks for the current one.)
ACCOUNT_REAUTHENTICATION_REQUIRED = True
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "5/5m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "reauthenticate": "10/m/user",
    # The public authorised-agent form (privacy_requests): per client address, and per consumer
    # address typed in (the key) so nobody can flood one consumer with confirmation emails.
    "agent_request": "10/m/ip,30/h/ip,3/h/key",
}
# The client address that rate limits count against (and that portal.http.client_ip returns).
# Behind a reverse proxy REMOTE_ADDR is the proxy's, so every visitor would share one counter:
# TRUSTED_PROXY_COUNT is the number of proxies you run in front of the portal (the client is the
# address that many entries from the right of X-Forwarded-For), or TRUSTED_CLIENT_IP_HEADER names
# a header your proxy sets to the client address (X-Real-IP, CF-Connecting-IP). Unset: REMOTE_ADDR,
# right only when clients connect to the portal directly. Both are spoofable unless a proxy you
# run sets or appends them, which is why neither is trusted by default.
ALLAUTH_TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = env_str("TRUSTED_CLIENT_IP_HEADER").strip() or None
if ALLAUTH_TRUSTED_PROXY_COUNT and ALLAUTH_TRUSTED_CLIENT_IP_HEADER:
    raise ImproperlyConfigured("Set TRUSTED_PROXY_COUNT or TRUSTED_CLIENT_IP_HEADER, not both")

MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env_str("MFA_TOTP_ISSUER", "Privacy Portal")

# --- Security and headers --------------------------------------------------------------------
# Content Security Policy: nothing inline without a nonce, no third parties.

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
    # HTTPS only, behind a TLS-terminating proxy that sets X-Forwarded-Proto.
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https"

# --- Languages and time zones ----------------------------------------------------------------

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The portal's date formats (day-month-year, 24-hour clock, time of day in Chinese too); every time a
# consumer sees goes through portal.timezones, which adds the zone's abbreviation.
FORMAT_MODULE_PATH = ["portal.formats"]

# --- Static files, media and storage ---------------------------------------------------------
# Static files are served by whitenoise; in development straight from the source folders.

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

# Privacy-request exports go to the "exports" storage: a folder under MEDIA_ROOT by default, an
# S3-compatible bucket when EXPORTS_S3_BUCKET is set, so that a worker on one host writes the file a
# web server on another hands out. Objects are private and encrypted at rest by the store
# (SSE-S3); the download view redirects the owner to a presigned address valid for
# EXPORT_DOWNLOAD_URL_SECONDS, so keep it short. Without keys boto3 uses the host's own credentials
# (instance role, AWS_* variables). The endpoint must be reachable by consumers' browsers.
EXPORTS_S3_BUCKET = env_str("EXPORTS_S3_BUCKET")
EXPORT_DOWNLOAD_URL_SECONDS = env_int("EXPORT_DOWNLOAD_URL_SECONDS", 60)
EXPORTS_STORAGE: dict[str, Any] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
if EXPORTS_S3_BUCKET:
    EXPORTS_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": EXPORTS_S3_BUCKET,
            "endpoint_url": env_str("EXPORTS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("EXPORTS_S3_REGION") or None,
            "access_key": env_secret("EXPORTS_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_secret("EXPORTS_S3_SECRET_ACCESS_KEY") or None,
            "default_acl": "private",
            "object_parameters": {"ServerSideEncryption": "AES256"},
            "querystring_auth": True,
            "querystring_expire": EXPORT_DOWNLOAD_URL_SECONDS,
            # Botocore still presigns with the deprecated SigV2 unless asked.
            "signature_version": "s3v4",
        },
    }
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "exports": EXPORTS_STORAGE,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# --- Celery ----------------------------------------------------------------------------------
# JSON only, late acknowledgement so a killed worker's task is redelivered.

CELERY_BROKER_URL = REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any]
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
else:
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
CELERY_RESULT_BACKEND = REDIS_URL or f"file://{VAR_DIR / 'results'}"
CELERY_RESULT_EXPIRES = timedelta(days=1)
# Nothing reads a task's result. Storing none also keeps `.delay()` from subscribing to the result
# in Redis, whose reconnect loop would hold a consumer's request while Redis is down.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
# Queues by kind, so a burst of one kind of work never waits behind another: ``delivery`` carries
# webhook deliveries and the outbox relay (revocations reach partners), ``requests`` the privacy
# requests (exports, erasure), ``default`` the rest. Every task is routed by its pinned name, and
# a worker started without ``-Q`` consumes all three queues (tests/portal/test_celery_routing.py).
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("default"), Queue("delivery"), Queue("requests")]
CELERY_TASK_ROUTES = {
    "consents.tasks_delivery.outbox_event_deliver": {"queue": "delivery"},
    "consents.tasks_delivery.outbox_events_deliver": {"queue": "delivery"},
    "consents.tasks_delivery.outbox_relay": {"queue": "delivery"},
    "consents.tasks_delivery.partner_webhook_disabled_notify": {"queue": "default"},
    "consents.tasks.consents_expire_due": {"queue": "default"},
    "consents.tasks.consents_remind_expiring": {"queue": "default"},
    "consents.tasks.app_grants_expire_due": {"queue": "default"},
    "consents.tasks.material_change_notify": {"queue": "default"},
    "consents.tasks.material_change_notify_sweep": {"queue": "default"},
    "consents.tasks.flagged_access_notify": {"queue": "default"},
    "consents.tasks.flagged_access_notify_sweep": {"queue": "default"},
    "consents.tasks.monthly_digests_send": {"queue": "default"},
    "consents.tasks.publication_run_process": {"queue": "default"},
    "consents.tasks.publication_runs_resume": {"queue": "default"},
    "portal.requests.tasks.privacy_export_build": {"queue": "requests"},
    "portal.requests.tasks.privacy_deletion_execute": {"queue": "requests"},
    "portal.requests.tasks.privacy_requests_tick": {"queue": "requests"},
    "portal.requests.tasks.privacy_exports_purge_expired": {"queue": "requests"},
    "portal.requests.tasks.consent_proofs_purge_expired": {"queue": "requests"},
    "privacy_requests.tasks.agent_request_dispatch": {"queue": "default"},
    "privacy_requests.tasks.agent_requests_dispatch_pending": {"queue": "default"},
    "portal.tasks.sessions_clear_expired": {"queue": "default"},
    "audit.tasks.audit_chains_verify": {"queue": "default"},
    "audit.tasks.access_event_partitions_maintain": {"queue": "default"},
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django fix-up closes the database connection before and after every task unless this is
# set, which costs a reconnect per delivery (on PostgreSQL a TCP handshake and authentication).
# With it, connections live as CONN_MAX_AGE says; portal/celery.py runs Django's own per-request
# check (close_old_connections) around each task instead, so broken connections are still dropped.
CELERY_DB_REUSE_MAX = 1_000_000

# Periodic tasks. A tick not picked up before the next one is dropped ("expires") rather than
# queued behind it.
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
if REDIS_URL:
    # Beat may run on several hosts: the schedule and a lock live in Redis (portal/beat.py), only the
    # lock holder sends, and another beat takes over once the holder stops, or dies and the lock
    # expires (BEAT_LOCK_TIMEOUT_SECONDS). Beat wakes at least every 5 s to extend its lock, and a
    # waiting beat tries the lock as often.
    CELERY_BEAT_SCHEDULER = "portal.beat.PortalBeatScheduler"
    CELERY_BEAT_MAX_LOOP_INTERVAL = 5
    CELERY_REDBEAT_REDIS_URL = REDIS_URL
    CELERY_REDBEAT_REDIS_OPTIONS = {"socket_connect_timeout": 5, "socket_timeout": 5}
    CELERY_REDBEAT_KEY_PREFIX = "redbeat:"
    CELERY_REDBEAT_LOCK_TIMEOUT = env_int("BEAT_LOCK_TIMEOUT_SECONDS", 30)
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "sessions-clear-expired": {
        "task": "portal.tasks.sessions_clear_expired",
        "schedule": crontab(minute=17, hour=3),
    },
    # End time-bound and one-time consents on time (flow 7).
    "consents-expire-due": {
        "task": "consents.tasks.consents_expire_due",
        "schedule": crontab(),
        "options": {"expires": 55},
    },
    # End connected apps' grants on time (with their tokens), and approvals whose app never connected.
    "app-grants-expire-due": {
        "task": "consents.tasks.app_grants_expire_due",
        "schedule": crontab(),
        "options": {"expires": 55},
    },
    # Authorised agents' requests whose dispatch was lost with the broker: dispatched late, not never.
    "agent-requests-dispatch-pending": {
        "task": "privacy_requests.tasks.agent_requests_dispatch_pending",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 240},
    },
    # Carry on material notice publications whose worker died (consents.services.publication).
    "publication-runs-resume": {
        "task": "consents.tasks.publication_runs_resume",
        "schedule": crontab(),
        "options": {"expires": 55},
    },
    # Remind consumers CONSENT_EXPIRY_REMINDER_DAYS before a time-bound consent ends.
    "consents-remind-expiring": {
        "task": "consents.tasks.consents_remind_expiring",
        "schedule": crontab(minute=7),
        "options": {"expires": 3000},
    },
    # Material-change emails that no task sent (the broker was down when the notice was published).
    "material-change-notify-sweep": {
        "task": "consents.tasks.material_change_notify_sweep",
        "schedule": crontab(minute="*/10"),
        "options": {"expires": 540},
    },
    # Flagged-access emails that no task sent (the cache or the broker was down at ingest).
    "flagged-access-notify-sweep": {
        "task": "consents.tasks.flagged_access_notify_sweep",
        "schedule": crontab(minute="5-59/10"),
        "options": {"expires": 540},
    },
    # The monthly "who accessed your data" email. Hourly, because the 1st comes at a different hour in
    # each consumer's zone; the task works only while it is the 1st somewhere and mails each once.
    "monthly-digests-send": {
        "task": "consents.tasks.monthly_digests_send",
        "schedule": crontab(minute=41),
        "options": {"expires": 3000},
    },
    # Re-send outbox events whose delivery task was lost or whose retry is due.
    "outbox-relay": {
        "task": "consents.tasks_delivery.outbox_relay",
        "schedule": timedelta(seconds=env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 5)),
        "options": {"expires": 30},
    },
    # Privacy requests: deletions due, partner confirmations, overdue requests; then expired files and proofs.
    "privacy-requests-tick": {"task": "portal.requests.tasks.privacy_requests_tick", "schedule": 60.0},
    "privacy-exports-purge-expired": {
        "task": "portal.requests.tasks.privacy_exports_purge_expired",
        "schedule": crontab(minute=7),
    },
    "consent-proofs-purge-expired": {
        "task": "portal.requests.tasks.consent_proofs_purge_expired",
        "schedule": crontab(minute=37, hour=3),
    },
    # The access log's monthly partitions ahead of time (PostgreSQL) and its retention (every database).
    "access-event-partitions-maintain": {
        "task": "audit.tasks.access_event_partitions_maintain",
        "schedule": crontab(minute=53, hour=2),
        "options": {"expires": 3600},
    },
    # A full pass over the audit log; /metrics reports the result and its age.
    "audit-chains-verify": {
        "task": "audit.tasks.audit_chains_verify",
        "schedule": crontab(minute=23, hour=4),
        "options": {"expires": 3600},
    },
}

# --- Partner API: REST framework and the OpenAPI schema --------------------------------------

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_SCHEMA_CLASS": "consents.api.schema.PartnerApiSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["consents.api.parsers.DepthLimitedJSONParser"],
    # Partners authenticate in the API's base view (consents/api/auth.py), never by session.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "consents.api.problems.problem_exception_handler",
}
# Requests per partner per window (DRF rate syntax: N/second, N/minute, N/hour, N/day).
PARTNER_API_RATE = env_str("PARTNER_API_RATE", "1200/minute")

SPECTACULAR_SETTINGS = {
    "TITLE": "Privacy Portal partner API",
    "DESCRIPTION": "Consent checks, event feed, access reporting and acknowledgements for data partners.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar: the CSP allows no third-party scripts.
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
        "GrantStatusEnum": "consents.api.grants.GRANT_STATUSES",
        "GrantDurationTypeEnum": "consents.api.grants.GRANT_DURATION_TYPES",
        "GrantRevocationReasonEnum": "consents.api.grants.GRANT_REVOCATION_REASONS",
        "GrantRevocationRequestReasonEnum": "consents.api.grants.REVOCATION_REQUEST_REASONS",
        "GrantInitiatorEnum": "consents.api.grants.GRANT_INITIATORS",
        "DeliveryStatusEnum": "consents.api.webhook_deliveries.DELIVERY_STATUSES",
        "DeliveryOutcomeEnum": "consents.api.webhook_deliveries.DELIVERY_OUTCOMES",
    },
}

# --- OAuth 2.0 (django-oauth-toolkit) --------------------------------------------------------
# Partners' clients, tied to partner credentials with their own scopes.

OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105 (a model label)
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105 (a model label)
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
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
    # Connected apps' redirect URIs: https only in production, so the demo partner can run on localhost.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"] if PRODUCTION else ["https", "http"],
    "SCOPES": {
        "consents:read": "Check consumers' consent",
        "events:read": "Read the consent and erasure event feed",
        "access:write": "Report data-access events",
        "acks:write": "Acknowledge events",
        "webhooks:manage": "Manage your webhook endpoint, signing secret and deliveries",
    },
    "OAUTH2_VALIDATOR_CLASS": "consents.api.oauth.PartnerOAuth2Validator",
    "SCOPES_BACKEND_CLASS": "consents.api.oauth.PartnerCredentialScopes",
    "CLIENT_SECRET_HASHER": "hmac_sha256",
}
# The token, revocation and introspection endpoints: requests per claimed client_id and per client
# address in fixed windows (DRF rate syntax), answered 429 with Retry-After beyond that. Partners
# need a token an hour per process, so these leave room for a fleet restarting at once.
OAUTH_TOKEN_RATE_PER_CLIENT = env_str("OAUTH_TOKEN_RATE_PER_CLIENT", "60/minute")
OAUTH_TOKEN_RATE_PER_IP = env_str("OAUTH_TOKEN_RATE_PER_IP", "300/minute")
# Introspection per client: a partner's resource servers ask on every call they serve (connected apps).
OAUTH_INTROSPECT_RATE_PER_CLIENT = env_str("OAUTH_INTROSPECT_RATE_PER_CLIENT", "6000/minute")
OAUTH_INTROSPECT_RATE_PER_IP = env_str("OAUTH_INTROSPECT_RATE_PER_IP", "12000/minute")
# Live access tokens one credential may hold; issuing another revokes the oldest.
OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL = env_int("OAUTH_MAX_LIVE_TOKENS_PER_CREDENTIAL", 20)

# Connected apps (authorisation code with PKCE, pushed requests): how long a pushed request_uri
# lives (RFC 9126 suggests 5 to 600 s; the browser is sent on at once) and an app's access token.
CONNECT_REQUEST_URI_SECONDS = env_int("CONNECT_REQUEST_URI_SECONDS", 90)
CONNECT_ACCESS_TOKEN_SECONDS = env_int("CONNECT_ACCESS_TOKEN_SECONDS", 600)

# --- Consents, receipts and access reports ---------------------------------------------------

ONE_TIME_CONSENT_HOURS = env_int("ONE_TIME_CONSENT_HOURS", 24)
CONSENT_EXPIRY_REMINDER_DAYS = env_int("CONSENT_EXPIRY_REMINDER_DAYS", 14)
# A material notice reaches the consents on older notices in batches of this many, each batch its
# own transaction: the longest any consent row stays locked is one batch (bench/material_publication.py).
# A batch is written in bulk (one lock of its consents, one insert per kind of record); each
# consent still costs its signed receipt, ~12 ms on PostgreSQL at load average 16 on 2 cores, so
# 50 kept the longest consent row lock at 0.7 s there (100: 1.6 s).
PUBLICATION_BATCH_SIZE = env_int("PUBLICATION_BATCH_SIZE", 50)
# One publication task works this long, then queues its continuation; a run without progress for
# PUBLICATION_STALLED_SECONDS has lost its worker and is resumed by the beat sweep.
PUBLICATION_TASK_SECONDS = env_int("PUBLICATION_TASK_SECONDS", 60)
PUBLICATION_STALLED_SECONDS = env_int("PUBLICATION_STALLED_SECONDS", 120)
# How far in the future a partner's reported access time may lie (clock skew), in seconds.
ACCESS_EVENT_CLOCK_SKEW_SECONDS = env_int("ACCESS_EVENT_CLOCK_SKEW_SECONDS", 300)
# How long a staff member's stated reason lets them open one consumer's records in the admin.
STAFF_ACCESS_REASON_MINUTES = env_int("STAFF_ACCESS_REASON_MINUTES", 30)

# The organisation's privacy notice and accessibility statement, linked from every page's footer;
# empty means the built-in pages (/privacy-notice/, /accessibility/).
PRIVACY_NOTICE_URL = env_str("CONTROLLER_POLICY_URL")
ACCESSIBILITY_STATEMENT_URL = env_str("ACCESSIBILITY_STATEMENT_URL")

# The data controller named on consent receipts and in every page's footer.
PORTAL_CONTROLLER = {
    "name": env_str("CONTROLLER_NAME", "Privacy Portal"),
    "contact": env_str("CONTROLLER_CONTACT", "Data Protection Officer"),
    "address": env_str("CONTROLLER_ADDRESS"),
    "email": env_str("CONTROLLER_EMAIL", "privacy@localhost"),
    "policy_url": PRIVACY_NOTICE_URL or f"{SITE_URL}/privacy-notice/",
    "jurisdiction": env_str("CONTROLLER_JURISDICTION", "EU"),
    "country": env_str("CONTROLLER_COUNTRY", "IE"),
}

# History is evidence: staff read it, nobody reverts to it from the admin (portal/admin_history.py
# refuses the form's POST; this hides its button).
SIMPLE_HISTORY_REVERT_DISABLED = True

# --- Webhooks and the outbox -----------------------------------------------------------------
# Private and loopback webhook URLs are refused unless WEBHOOK_ALLOW_PRIVATE is on; it defaults
# to on only in development, for the local demo partner.

WEBHOOK_ALLOW_PRIVATE = env_bool("WEBHOOK_ALLOW_PRIVATE", default=PORTAL_ENV == "development")
WEBHOOK_TIMEOUT_SECONDS = 10.0
# After a signing-secret rotation (by staff or by the partner over the API), deliveries are signed
# with the old secret too for this many hours, so the partner can deploy the new one without a gap.
WEBHOOK_SECRET_OVERLAP_HOURS = env_int("WEBHOOK_SECRET_OVERLAP_HOURS", 24)
# How many attempts one partner may have in flight at once, across all workers. Keep it below the
# number of delivery slots (worker processes consuming deliveries), so that a partner whose endpoint
# answers slowly can never hold every slot and delay other partners' withdrawals. `runall` starts 4.
WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER = env_int("WEBHOOK_MAX_IN_FLIGHT_PER_PARTNER", 2)
# The relay leaves events this young to their own delivery task, and re-queues at most this many a run.
OUTBOX_RELAY_GRACE_SECONDS = env_int("OUTBOX_RELAY_GRACE_SECONDS", 5)
OUTBOX_RELAY_BATCH = env_int("OUTBOX_RELAY_BATCH", 500)
# Fault injection for bench/faults.py (issue 14): the process kills itself with SIGKILL after a
# transaction that wrote outbox events commits and before their delivery is queued, to show that
# the relay delivers them anyway. Refused in production.
FAULT_CRASH_AFTER_COMMIT = env_bool("PORTAL_FAULT_CRASH_AFTER_COMMIT", default=False)
if FAULT_CRASH_AFTER_COMMIT and PRODUCTION:
    raise ImproperlyConfigured("PORTAL_FAULT_CRASH_AFTER_COMMIT is a test-only fault and cannot be set in production")

# --- Privacy requests (export and deletion) --------------------------------------------------
# How long an export can be downloaded, the grace period before a deletion starts, and how long
# the pseudonymous proof of consent outlives a deleted account.

EXPORT_TTL_DAYS = env_int("EXPORT_TTL_DAYS", 7)
DELETION_GRACE_DAYS = env_int("DELETION_GRACE_DAYS", 7)
# Authorised agents: how long the consumer's confirmation link stays valid, and the largest signed
# permission document accepted (PDF, PNG or JPEG).
AGENT_REQUEST_CONFIRM_DAYS = env_int("AGENT_REQUEST_CONFIRM_DAYS", 14)
AGENT_DOCUMENT_MAX_BYTES = env_int("AGENT_DOCUMENT_MAX_BYTES", 5 * 1024 * 1024)
CONSENT_PROOF_RETENTION_DAYS = env_int("CONSENT_PROOF_RETENTION_DAYS", 3 * 365)
# Access events are kept this many whole calendar months (UTC) back from the current one, then
# deleted; on PostgreSQL by dropping whole monthly partitions, created ACCESS_EVENT_PARTITIONS_AHEAD
# months ahead by a daily task. 0 keeps them for ever. The per-day rollups the consumer's totals come
# from are kept.
ACCESS_EVENT_RETENTION_MONTHS = env_int("ACCESS_EVENT_RETENTION_MONTHS", 36)
ACCESS_EVENT_PARTITIONS_AHEAD = env_int("ACCESS_EVENT_PARTITIONS_AHEAD", 3)
# A deletion keeps the consumer's address only to tell them it is complete, which waits for every
# partner's confirmation. A partner may never confirm, so the address (and the free text gathered
# meanwhile) goes this many days after the request anyway, checked by the privacy-requests tick. 100
# days: the longest legal deadline with every extension (GDPR one month plus two, at most 92 days;
# CCPA 45 plus 45 days) and a week for late confirmations.
PRIVACY_REQUEST_CONTACT_RETENTION_DAYS = env_int("PRIVACY_REQUEST_CONTACT_RETENTION_DAYS", 100)
# The organisation's time zone for the regulator reports: a CCPA reporting year and the days a
# request took are counted in it, and an "as of" date ends at its midnight.
PRIVACY_REPORTS_TIME_ZONE = env_str("PRIVACY_REPORTS_TIME_ZONE", TIME_ZONE)

# --- Mail ------------------------------------------------------------------------------------
# The console in development, SMTP configured by environment in production. Every email goes
# through portal/emails.py.

MAILERS: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": env_str(
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
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 587),
        "username": env_secret("EMAIL_HOST_USER"),
        "password": env_secret("EMAIL_HOST_PASSWORD"),
        "use_tls": env_bool("EMAIL_USE_TLS", default=True),
        "timeout": 10,
    }
# A flagged access is emailed this many seconds after it arrives, with any others that follow meanwhile.
FLAGGED_ACCESS_NOTIFY_DELAY = env_int("FLAGGED_ACCESS_NOTIFY_DELAY_SECONDS", 180)
# How long the email-settings link in a notification email works (it needs no login).
NOTIFICATION_LINK_MAX_AGE = timedelta(days=env_int("NOTIFICATION_LINK_MAX_AGE_DAYS", 90))
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Privacy Portal <privacy@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Logging and metrics ---------------------------------------------------------------------
# LOG_FORMAT=json (the production default) writes one JSON object per line; text is for people.
# Every record carries the request id (portal/request_id.py); the request line is portal.request's.

LOG_FORMAT = env_str("LOG_FORMAT", "json" if PRODUCTION else "text")
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "portal.logs.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "portal.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # Django's 4xx warnings ("Not Found: /path") name the raw path, which can hold ids and
        # tokens (password-reset and confirmation links); the request line says the same with the
        # route. Server errors are still logged.
        "django.request": {"level": "ERROR"},
    },
}
if LOG_FORMAT == "json":
    # The worker then logs through the handler above, JSON and request id included, instead of
    # installing its own plain-text one on the root logger.
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False
    # runserver's own access line repeats the request line with the raw path and query string.
    LOGGING["loggers"]["django.server"] = {"level": "WARNING"}

# /metrics (portal/monitoring.py) answers a bearer METRICS_TOKEN, or clients at these addresses or
# networks (CIDR), judged by the same client-address rule as the rate limits. Anyone else gets 404.
METRICS_TOKEN = env_secret("METRICS_TOKEN")
METRICS_ALLOWED_ADDRESSES = env_list("METRICS_ALLOWED_ADDRESSES", "" if PRODUCTION else "127.0.0.1,::1")

# --- Partner oversight -----------------------------------------------------------------------
# A partner crossing any of these over the dashboard's period is marked "needs review" on the
# operations dashboard and its scorecard. Rates are percentages.
PARTNER_REVIEW_MIN_ACK_RATE = env_int("PARTNER_REVIEW_MIN_ACK_RATE", 95)
PARTNER_REVIEW_MAX_ACK_P95_HOURS = env_int("PARTNER_REVIEW_MAX_ACK_P95_HOURS", 72)
PARTNER_REVIEW_MAX_FLAGGED_RATE = env_int("PARTNER_REVIEW_MAX_FLAGGED_RATE", 1)
PARTNER_REVIEW_MIN_WEBHOOK_SUCCESS_RATE = env_int("PARTNER_REVIEW_MIN_WEBHOOK_SUCCESS_RATE", 90)

# --- Test overrides, in one place -------------------------------------------------------------

if TESTING:
    # The default hasher costs about a second a login on these machines.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
