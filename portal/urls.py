from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from consents import connect as connect_views
from consents import views as consents_views
from consents.api import connect as connect_api
from consents.api import introspection
from consents.api import oauth as oauth_views
from consents.api.docs import DocsView
from portal import monitoring, views

# Partners' credentials use the client-credentials grant, connected apps the authorisation code (see /connect/).
# Token and revocation are django-oauth-toolkit's views, rate limited; introspection is the portal's own
# lean path (consents/api/introspection.py), limited to the caller's tokens.
oauth_urlpatterns = [
    path("token/", oauth_views.TokenView.as_view(), name="token"),
    path("revoke_token/", oauth_views.RevokeTokenView.as_view(), name="revoke-token"),
    path("introspect/", introspection.IntrospectView.as_view(), name="introspect"),
]

# Connected apps: the pushed request (RFC 9126) and the consumer's consent screen.
connect_urlpatterns = [
    path("par", connect_api.PushedAuthorizationView.as_view(), name="par"),
    path("authorize", connect_views.authorize, name="authorize"),
]

handler400 = views.bad_request
handler500 = views.server_error

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", monitoring.metrics, name="metrics"),
    path("readyz", views.readyz, name="readyz"),
    path("consents/", include("consents.urls")),
    path(
        ".well-known/oauth-authorization-server",
        connect_api.authorization_server_metadata,
        name="oauth-authorization-server",
    ),
    path("connected/", include("consents.connected_urls")),
    path(".well-known/jwks.json", consents_views.jwks, name="jwks"),
    path("", include("audit.urls")),
    path("requests/", include("privacy_requests.urls")),
    path("profile/", views.profile, name="profile"),
    path("privacy-notice/", views.privacy_notice, name="privacy_notice"),
    path("accessibility/", views.accessibility, name="accessibility"),
    path("profile/time-zone/", views.time_zone_prefill_view, name="profile_time_zone"),
    path("profile/notifications/", views.profile_notifications, name="profile_notifications"),
    path("email-settings/<str:token>/", views.notification_settings, name="notification_settings"),
    path(
        "email-settings/<str:token>/unsubscribe/<slug:kind>/",
        views.notification_unsubscribe,
        name="notification_unsubscribe",
    ),
    path("accounts/", include("allauth.urls")),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("admin/", admin.site.urls),
    path("oauth/", include((oauth_urlpatterns, "oauth2_provider"))),
    path("connect/", include((connect_urlpatterns, "connect"))),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", DocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("consents.api.urls")),
]
