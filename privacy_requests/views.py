from typing import Any

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from audit.services import Actor
from consents.errors import DomainError
from portal.http import AuthenticatedHttpRequest
from portal.replica import replica_view
from privacy_requests.deadlines import rule_for
from privacy_requests.forms import DeletionConfirmForm
from privacy_requests.models import PrivacyRequest, RequestKind
from privacy_requests.selectors import deletion_consequences, request_active, requests_overview
from privacy_requests.services.requests import (
    cancel_token_read,
    privacy_request_cancel,
    privacy_request_deletion_create,
    privacy_request_download_record,
    privacy_request_export_create,
)
from privacy_requests.storage import export_download_url, export_storage


def _own_request(request: AuthenticatedHttpRequest, pk: Any) -> PrivacyRequest:
    """The signed-in consumer's request; anybody else's is a 404, exactly like a missing one."""
    return get_object_or_404(PrivacyRequest.objects.for_user(request.user).select_related("user"), pk=pk)


@login_required
@require_GET
@replica_view
def request_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(
        request,
        "privacy_requests/requests_list.html",
        {
            "overview": requests_overview(request.user),
            "grace_days": settings.DELETION_GRACE_DAYS,
            "export_ttl_days": settings.EXPORT_TTL_DAYS,
        },
    )


@login_required
@require_POST
@reauthentication_required
def export_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    try:
        export = privacy_request_export_create(user=request.user, language=get_language())
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("requests:list")
    messages.success(
        request, _("We are preparing a copy of your data. This page shows the progress, and we will email you.")
    )
    return redirect(export)


@login_required
@require_http_methods(["GET", "POST"])
@reauthentication_required(allow_get=True)
def deletion_create(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Spell out what a deletion does; schedule it after re-authentication and a typed confirmation."""
    active = request_active(request.user, RequestKind.DELETION)
    if active is not None:
        messages.info(request, _("You have already asked us to delete your account."))
        return redirect(active)
    form = DeletionConfirmForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        try:
            deletion = privacy_request_deletion_create(user=request.user, language=get_language())
        except DomainError as error:
            messages.error(request, error.message)
            return redirect("requests:list")
        messages.success(request, _("Your account is scheduled for deletion. You can still cancel."))
        return redirect(deletion)
    return render(
        request,
        "privacy_requests/deletion_confirm.html",
        {
            "form": form,
            "consequences": deletion_consequences(request.user),
            "rule": rule_for(request.user.jurisdiction),
        },
        status=400 if form.is_bound else 200,
    )


@login_required
@require_GET
@replica_view
def request_detail(request: AuthenticatedHttpRequest, pk: Any) -> HttpResponse:
    privacy_request = _own_request(request, pk)
    return render(
        request,
        "privacy_requests/request_detail.html",
        {
            "privacy_request": privacy_request,
            "extensions": privacy_request.extensions.all(),
            "tasks": privacy_request.partner_tasks.select_related("partner"),
            "rule": rule_for(privacy_request.jurisdiction),
        },
    )


@login_required
@require_GET
@replica_view
def request_status(request: AuthenticatedHttpRequest, pk: Any) -> HttpResponse:
    """The status fragment the request page polls (htmx) while the request is being worked on.

    204 when nothing changed since the state the page shows (``seen``): htmx then leaves the live region
    alone, so a screen reader announces each change once instead of every poll.
    """
    privacy_request = _own_request(request, pk)
    if request.GET.get("seen") == f"{privacy_request.status}-{privacy_request.progress}":
        return HttpResponse(status=204)
    return render(request, "privacy_requests/_request_status.html", {"privacy_request": privacy_request})


@login_required
@require_GET
def request_download(request: AuthenticatedHttpRequest, pk: Any) -> HttpResponseBase:
    privacy_request = _own_request(request, pk)
    if privacy_request.kind != RequestKind.EXPORT:
        raise Http404
    if not privacy_request.file_available:
        expired = privacy_request.file_expires_at is not None and privacy_request.file_expires_at <= timezone.now()
        return render(
            request,
            "privacy_requests/request_download_gone.html",
            {"privacy_request": privacy_request, "expired": expired},
            status=410 if expired else 404,
        )
    return _export_file(request, privacy_request)


@reauthentication_required
def _export_file(request: AuthenticatedHttpRequest, privacy_request: PrivacyRequest) -> HttpResponseBase:
    """The file itself: a copy of all the consumer's data, so a stale session enters the password first.

    Checked after the ownership and availability checks so that somebody else's request is still a
    plain 404; allauth sends the consumer back to this download once the password is entered.
    From an object store the browser fetches the file itself, through a presigned address that
    expires within ``EXPORT_DOWNLOAD_URL_SECONDS``; the download is recorded here all the same.
    """
    name = str(privacy_request.result_file.name)
    filename = f"privacy-export-{privacy_request.created_at:%Y-%m-%d}.zip"
    response: HttpResponseBase
    if url := export_download_url(name=name, filename=filename):
        privacy_request_download_record(request=privacy_request, user=request.user)
        response = HttpResponseRedirect(url)
    else:
        # Opened first, so that a file missing from the folder is not recorded as downloaded.
        handle = export_storage().open(name, "rb")
        privacy_request_download_record(request=privacy_request, user=request.user)
        response = FileResponse(handle, as_attachment=True, filename=filename, content_type="application/zip")
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def request_cancel(request: AuthenticatedHttpRequest, pk: Any) -> HttpResponse:
    privacy_request = _own_request(request, pk)
    try:
        privacy_request_cancel(request=privacy_request, actor=Actor.consumer(request.user))
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The deletion is cancelled. Your account stays as it is."))
    return redirect(privacy_request)


@require_http_methods(["GET", "POST"])
def cancel_link(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed cancellation link: works logged out; a different signed-in consumer gets a 404."""
    try:
        privacy_request, current = cancel_token_read(token)
    except DomainError as error:
        status = 410 if error.code == "link_expired" else 400
        return render(request, "privacy_requests/cancel_link.html", {"error": error.message}, status=status)
    if request.user.is_authenticated and request.user.pk != privacy_request.user_id:
        raise Http404
    cancellable = current and privacy_request.can_cancel
    if request.method == "POST":
        if not cancellable:
            return render(
                request,
                "privacy_requests/cancel_link.html",
                {"privacy_request": privacy_request, "cancellable": False},
                status=409,
            )
        privacy_request_cancel(request=privacy_request, actor=Actor.consumer(privacy_request.user))
        messages.success(request, _("The deletion is cancelled. Your account stays as it is."))
        return redirect("requests:cancel_link", token=token)
    return render(
        request, "privacy_requests/cancel_link.html", {"privacy_request": privacy_request, "cancellable": cancellable}
    )
