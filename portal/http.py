from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from portal.models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request type of views behind ``login_required``: ``user`` is a real account."""

    user: User
    htmx: HtmxDetails
