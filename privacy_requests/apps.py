from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PrivacyRequestsConfig(AppConfig):
    default = True
    name = "privacy_requests"
    label = "privacy_requests"
    verbose_name = _("Privacy requests")
