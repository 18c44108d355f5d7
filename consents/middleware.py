"""Honour the Global Privacy Control signal (``Sec-GPC: 1``) of signed-in consumers."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from consents.services.consents import gpc_signal_honour
from portal.models import User

SESSION_KEY = "gpc_honoured_for"


class GlobalPrivacyControlMiddleware:
    """Opts the consumer out of GPC-covered purposes once, on the first request carrying the signal.

    Cheap on purpose: without the header, or for visitors and staff, it touches nothing; once the
    signal is honoured the session remembers it, so later requests cost no query either.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.headers.get("Sec-GPC", "").strip() == "1":
            user = request.user
            if isinstance(user, User) and not user.is_staff and request.session.get(SESSION_KEY) != user.pk:
                gpc_signal_honour(user=user)
                request.session[SESSION_KEY] = user.pk
        return self.get_response(request)
