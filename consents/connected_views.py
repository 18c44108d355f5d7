"""The consumer's connected apps: what each may read, and withdrawing it (``/connected/``).

Plain forms: withdrawing shows the impact first (GET), then ends the grant (POST) and returns to
the list with a message. Other consumers' grants answer 404.
"""

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from audit.services import Actor
from consents.forms import WithdrawForm
from consents.models import AppGrant, RevocationReason
from consents.selectors.apps import app_grant_for_user, connected_apps_for
from consents.services.apps import app_grant_revoke
from portal.http import AuthenticatedHttpRequest
from portal.replica import replica_view


def _grant_or_404(request: AuthenticatedHttpRequest, grant_id: uuid.UUID) -> AppGrant:
    grant = app_grant_for_user(request.user, grant_id)
    if grant is None:
        raise Http404(_("There is no such connected app."))
    return grant


@login_required
@require_GET
@replica_view
def connected_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    active, past = connected_apps_for(request.user)
    return render(request, "consents/connected.html", {"active": active, "past": past})


@login_required
@require_http_methods(["GET", "POST"])
def connected_withdraw(request: AuthenticatedHttpRequest, grant_id: uuid.UUID) -> HttpResponse:
    """GET: what withdrawing stops and whom we tell. POST: end the grant and every token it issued."""
    grant = _grant_or_404(request, grant_id)
    names = {"app": grant.app.name, "partner": grant.app.partner.name}
    if not grant.is_active:
        messages.info(request, _("“%(app)s” is no longer connected.") % names)
        return redirect("connected:list")
    form = WithdrawForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        app_grant_revoke(
            grant,
            initiator=Actor.consumer(request.user),
            reason=RevocationReason.USER_ACTION,
            note=form.cleaned_data["note"],
        )
        messages.success(
            request,
            _("“%(app)s” is disconnected: it can no longer read your data, and we told %(partner)s.") % names,
        )
        return redirect("connected:list")
    categories = sorted(grant.data_categories.all(), key=lambda c: c.name)
    context = {"grant": grant, "categories": categories, "form": form}
    return render(request, "consents/connected_withdraw.html", context, status=400 if form.errors else 200)
