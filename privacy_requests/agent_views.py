"""Authorised agents: the public form an agent fills in, and the link the consumer answers it from."""

from allauth.account.decorators import reauthentication_required
from allauth.core import ratelimit
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from consents.errors import DomainError
from portal.http import AuthenticatedHttpRequest
from privacy_requests.forms import AgentRequestForm
from privacy_requests.services.agents import (
    agent_request_confirm,
    agent_request_decline,
    agent_request_submit,
    confirm_token_read,
)


@require_http_methods(["GET", "POST"])
def agent_submit(request: HttpRequest) -> HttpResponse:
    """The agent's form. The answer is the same page whether or not the address has an account."""
    form = AgentRequestForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        key = request.POST.get("consumer_email", "").strip().lower()
        if not ratelimit.consume(request, action="agent_request", key=key):
            return render(request, "privacy_requests/agent_form.html", {"form": form, "limited": True}, status=429)
        if form.is_valid():
            data = form.cleaned_data
            agent_request_submit(
                kind=data["kind"],
                consumer_email=data["consumer_email"],
                agent_name=data["agent_name"],
                agent_email=data["agent_email"],
                agent_organisation=data["agent_organisation"],
                document=data["document"],
                language=get_language(),
            )
            return redirect("requests:agent_submitted")
    return render(request, "privacy_requests/agent_form.html", {"form": form}, status=400 if form.is_bound else 200)


@require_GET
def agent_submitted(request: HttpRequest) -> HttpResponse:
    return render(request, "privacy_requests/agent_submitted.html")


@login_required
@require_http_methods(["GET", "POST"])
@reauthentication_required(allow_get=True)
def agent_confirm(request: AuthenticatedHttpRequest, token: str) -> HttpResponse:
    """The consumer's link: signed in as the consumer it names (anyone else gets a 404), confirm or decline."""
    try:
        agent_request, nonce = confirm_token_read(token)
    except DomainError as error:
        status = 410 if error.code == "link_expired" else 400
        return render(request, "privacy_requests/agent_confirm.html", {"error": error.message}, status=status)
    if agent_request.user_id != request.user.pk:
        raise Http404
    if request.method == "POST":
        try:
            if request.POST.get("answer") == "decline":
                agent_request_decline(agent_request=agent_request, user=request.user, nonce=nonce)
                messages.success(request, _("Thank you. The request is closed and nothing was done."))
                return redirect("requests:list")
            agent_request = agent_request_confirm(
                agent_request=agent_request, user=request.user, nonce=nonce, language=get_language()
            )
        except DomainError as error:
            return render(
                request,
                "privacy_requests/agent_confirm.html",
                {"agent_request": agent_request, "error": error.message},
                status=409,
            )
        messages.success(request, _("Done: the request your authorised agent made is under way."))
        return redirect(agent_request.privacy_request or "requests:list")
    return render(
        request,
        "privacy_requests/agent_confirm.html",
        {"agent_request": agent_request, "current": agent_request.is_open and nonce == agent_request.confirm_nonce},
    )
