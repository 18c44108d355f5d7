from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse


def organisation(request: HttpRequest) -> dict[str, Any]:
    """Who runs the portal and where its privacy notice and accessibility statement are, for every page."""
    controller = settings.PORTAL_CONTROLLER
    return {
        "organisation": {
            "name": controller["name"],
            "email": controller["email"],
            "address": controller["address"],
            "privacy_notice_url": settings.PRIVACY_NOTICE_URL or reverse("privacy_notice"),
            "accessibility_url": settings.ACCESSIBILITY_STATEMENT_URL or reverse("accessibility"),
        }
    }
