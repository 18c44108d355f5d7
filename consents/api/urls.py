from django.urls import path, re_path

from consents.api import views
from consents.api.access_events import AccessEventIngestApi

app_name = "api"

urlpatterns = [
    path("ping", views.PingApi.as_view(), name="ping"),
    path("subjects/<str:subject_id>/consents", views.SubjectConsentsApi.as_view(), name="subject-consents"),
    path("subjects/<str:subject_id>/consents/<str:purpose>", views.ConsentCheckApi.as_view(), name="consent-check"),
    path("consents/check", views.BulkConsentCheckApi.as_view(), name="consent-check-bulk"),
    path("events", views.EventFeedApi.as_view(), name="events"),
    path("events/<str:event_id>/ack", views.EventAckApi.as_view(), name="event-ack"),
    path("access-events", AccessEventIngestApi.as_view(), name="access-events"),
    re_path(r"", views.NotFoundApi.as_view(), name="not-found"),
]
