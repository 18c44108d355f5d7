from django.contrib import admin
from django.urls import include, path

from consents import views as consents_views
from portal import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("consents/", include("consents.urls")),
    path(".well-known/jwks.json", consents_views.jwks, name="jwks"),
    path("", include("audit.urls")),
    path("requests/", include("portal.requests.urls")),
    path("profile/", views.profile, name="profile"),
    path("accounts/", include("allauth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
]
