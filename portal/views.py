import logging
import sys
import tempfile

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.urls import reverse
from django.utils.translation import check_for_language
from django.utils.translation import gettext as _
from django.views import defaults, i18n
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.selectors import access_summary
from audit.services import Actor
from consents.api.problems import (
    DATABASE_RETRY_AFTER_SECONDS,
    DATABASE_UNAVAILABLE_ERRORS,
    PROBLEM_CONTENT_TYPE,
    database_unavailable_problem,
    suspicious_request_problem,
)
from consents.selectors.consents import consent_summary
from portal.celery import app as celery_app
from portal.forms import NotificationSettingsForm, ProfileForm, TimeZoneForm
from portal.http import AuthenticatedHttpRequest
from portal.models import User
from portal.notifications import KIND_SETTINGS, SETTING_NAMES, TokenError, settings_token_user
from portal.replica import replica_view
from portal.services import notification_settings_update, profile_update, time_zone_prefill, user_language_record
from privacy_requests.selectors import requests_overview

logger = logging.getLogger(__name__)


@replica_view
def home(request: HttpRequest) -> HttpResponse:
    """The landing page for visitors, the consumer's dashboard once signed in."""
    if not isinstance(request.user, User):
        return render(request, "portal/landing.html")
    context = {
        "consents": consent_summary(request.user),
        "access": access_summary(request.user),
        "requests_overview": requests_overview(request.user, limit=3),
    }
    return render(request, "portal/dashboard.html", context)


@require_GET
def privacy_notice(request: HttpRequest) -> HttpResponse:
    """The built-in privacy notice, used unless CONTROLLER_POLICY_URL points to the organisation's own."""
    return render(request, "portal/privacy_notice.html")


@require_GET
def accessibility(request: HttpRequest) -> HttpResponse:
    """The built-in accessibility statement, used unless ACCESSIBILITY_STATEMENT_URL points elsewhere."""
    return render(request, "portal/accessibility.html")


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The consumer's name, the privacy law that sets their requests' deadlines, and their time zone."""
    user = request.user
    initial = {
        "first_name": user.first_name,
        "last_name": user.last_name,
        "jurisdiction": user.jurisdiction,
        "time_zone": user.time_zone,
    }
    form = ProfileForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        profile_update(user=user, actor=Actor.consumer(user), **form.cleaned_data)
        messages.success(request, _("Your profile is saved."))
        return redirect("profile")
    notifications = NotificationSettingsForm(initial={name: getattr(user, name) for name in SETTING_NAMES})
    context = {"form": form, "notifications_form": notifications}
    return render(request, "portal/profile.html", context, status=400 if form.is_bound else 200)


@login_required
@require_POST
def time_zone_prefill_view(request: AuthenticatedHttpRequest) -> JsonResponse:
    """The browser reports its zone (``static/js/time_zone.js``); taken only while the consumer has none.

    Answers the consumer's zone after the call, or 400 with the reason for a name that is no zone.
    """
    form = TimeZoneForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": form.errors["time_zone"][0]}, status=400)
    user = request.user
    taken = time_zone_prefill(user=user, time_zone=form.cleaned_data["time_zone"], actor=Actor.consumer(user))
    if taken:
        user.refresh_from_db(fields=["time_zone"])
    return JsonResponse({"time_zone": user.time_zone, "taken": taken})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.exception("health check: database unreachable")
        return False


def _broker_ok() -> bool:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.exception("health check: broker unreachable")
        return False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness for load balancers: 200 when the database and the broker both answer."""
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    healthy = all(checks.values())
    body = {"status": "ok" if healthy else "unavailable"} | {k: "ok" if v else "error" for k, v in checks.items()}
    return JsonResponse(body, status=200 if healthy else 503)


def _broker_ready() -> bool:
    """The filesystem broker is ready when a message can be written to its folder; any other when it answers."""
    if not celery_app.conf.broker_url.startswith("filesystem:"):
        return _broker_ok()
    try:
        with tempfile.TemporaryFile(dir=celery_app.conf.broker_transport_options["data_folder_in"]):
            return True
    except OSError:
        logger.exception("readiness check: the broker folder is not writable")
        return False


def _migrations_applied() -> bool:
    """True when the database has every migration this code ships (``migrate`` has nothing left to do)."""
    try:
        executor = MigrationExecutor(connection)
        return not executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        logger.exception("readiness check: could not read the applied migrations")
        return False


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness for load balancers and deployments: the database answers, the broker takes messages and
    every migration is applied. 503 names the failing check, never where or why (that goes to the log)."""
    checks = {"database": _database_ok(), "broker": _broker_ready(), "migrations": _migrations_applied()}
    ready = all(checks.values())
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {k: "ok" if v else "error" for k, v in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: what Django answers when it refuses a request as malformed.

    Django turns an oversized body into a 400 like any other suspicious request; this answers it
    with 413, and API paths get problem details instead of a page. The page renders without the
    request (as Django's own handler does), because the request may be the very thing that is
    broken, for instance an unknown ``Host``.
    """
    suspicious = exception if isinstance(exception, SuspiciousOperation) else SuspiciousOperation()
    if request.path.startswith("/api/"):
        body = suspicious_request_problem(suspicious)
        return JsonResponse(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(suspicious, RequestDataTooBig):
        status = 413
        title = _("Too much data")
        explanation = _("What you sent is larger than we accept. Please send less at a time.")
    else:
        status = 400
        title = _("Bad request")
        explanation = _("We could not understand this request. Please go back and try again.")
    page = loader.get_template("400.html").render({"title": title, "explanation": explanation})
    return HttpResponse(page, status=status)


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: a lost database is 503 with ``Retry-After`` (problem details on API paths), not a 500.

    While PostgreSQL restarts every request fails, usually in the session or authentication
    middleware before any view runs; clients and load balancers should wait and retry. The page
    renders without the request, whose session and user need the very database that is missing.
    Any other error is Django's own 500.
    """
    if not isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE_ERRORS):
        return defaults.server_error(request)
    response: HttpResponse
    if request.path.startswith(("/api/", "/oauth/")):
        response = JsonResponse(database_unavailable_problem(), status=503, content_type=PROBLEM_CONTENT_TYPE)
    else:
        title = _("Service unavailable")
        explanation = _("The Privacy Portal is briefly unavailable. Please try again in a minute.")
        page = loader.get_template("400.html").render({"title": title, "explanation": explanation})
        response = HttpResponse(page, status=503)
    response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
    return response


@login_required
@require_POST
def profile_notifications(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The notifications section of the profile: which emails the consumer gets."""
    form = NotificationSettingsForm(request.POST)
    if form.is_valid():
        notification_settings_update(user=request.user, actor=Actor.consumer(request.user), **form.cleaned_data)
        messages.success(request, _("Your email settings are saved."))
    return redirect(reverse("profile") + "#notifications")


def _token_problem(request: HttpRequest, error: TokenError) -> HttpResponse:
    return render(request, "portal/notification_link_invalid.html", {"expired": error.expired}, status=400)


@never_cache
@require_http_methods(["GET", "POST"])
def notification_settings(request: HttpRequest, token: str) -> HttpResponse:
    """The email settings behind the link in every email, without logging in: the token names the consumer."""
    try:
        user = settings_token_user(token)
    except TokenError as error:
        return _token_problem(request, error)
    form = NotificationSettingsForm(request.POST or None, initial={name: getattr(user, name) for name in SETTING_NAMES})
    if request.method == "POST" and form.is_valid():
        notification_settings_update(user=user, actor=Actor.consumer(user), **form.cleaned_data)
        messages.success(request, _("Your email settings are saved."))
        return redirect("notification_settings", token=token)
    return render(request, "portal/notification_settings.html", {"form": form, "email": user.email})


# Mail clients POST here without a CSRF token (RFC 8058); the signed token is the authorisation, and
# all it can do is turn one kind of email off.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def notification_unsubscribe(request: HttpRequest, token: str, kind: str) -> HttpResponse:
    """One-click unsubscribe (RFC 8058): a POST of ``List-Unsubscribe=One-Click`` turns ``kind`` off.

    A GET (a link scanner, or a person following the header) changes nothing and shows the settings.
    """
    if kind not in KIND_SETTINGS:
        raise Http404
    try:
        user = settings_token_user(token)
    except TokenError as error:
        return _token_problem(request, error)
    if request.method == "GET":
        return redirect("notification_settings", token=token)
    if request.POST.get("List-Unsubscribe") != "One-Click":
        return HttpResponseBadRequest("List-Unsubscribe=One-Click expected", content_type="text/plain")
    notification_settings_update(user=user, actor=Actor.consumer(user), **{KIND_SETTINGS[kind]: False})
    return render(request, "portal/notification_unsubscribed.html", {"settings_token": token})


def set_language(request: HttpRequest) -> HttpResponse:
    """Django's language switch, which also remembers a signed-in consumer's choice for their emails."""
    response = i18n.set_language(request)
    language = request.POST.get("language", "") if request.method == "POST" else ""
    if isinstance(request.user, User) and language and check_for_language(language):
        user_language_record(user=request.user, language=request.POST["language"])
    return response
