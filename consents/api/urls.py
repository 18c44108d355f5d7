from django.urls import path, re_path

from consents.api import views
from consents.api.access_events import AccessEventIngestApi
from consents.api.grants import GrantDetailApi, GrantRevocationApi

app_name = "api"

urlpatterns = [
    path("ping", views.PingApi.as_view(), name="ping"),
    path("subjects/<str:subject_id>/consents", views.SubjectConsentsApi.as_view(), name="subject-consents"),
    path("subjects/<str:subject_id>/consents/<str:purpose>", views.ConsentCheckApi.as_view(), name="consent-check"),
    path("consents/check", views.BulkConsentCheckApi.as_view(), name="consent-check-bulk"),
    path("events", views.EventFeedApi.as_view(), name="events"),
    path("events/<str:event_id>/ack", views.EventAckApi.as_view(), name="event-ack"),
    path("access-events", AccessEventIngestApi.as_view(), name="access-events"),
    path("grants/<str:grant_id>", GrantDetailApi.as_view(), name="grant"),
    path("grants/<str:grant_id>/revocation", GrantRevocationApi.as_view(), name="grant-revocation"),
    re_path(r"", views.NotFoundApi.as_view(), name="not-found"),
]
