from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render

from consents.selectors import consent_cards
from portal.http import AuthenticatedHttpRequest


@login_required
def consent_list(request: AuthenticatedHttpRequest) -> HttpResponse:
    return render(request, "consents/list.html", {"cards": consent_cards(request.user)})
