from django.urls import path, re_path

from consents.api import views
from consents.api.access_events import AccessEventIngestApi
from consents.api.grants import GrantDetailApi, GrantRevocationApi
from consents.api.webhook_deliveries import (
    WebhookDeadLettersRedeliveryApi,
    WebhookDeliveriesApi,
    WebhookDeliveryApi,
    WebhookDeliveryRedeliveryApi,
    WebhookTestApi,
)
from consents.api.webhooks import WebhookEndpointApi, WebhookSecretRotationApi

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
    path("webhook", WebhookEndpointApi.as_view(), name="webhook"),
    path("webhook/secret/rotation", WebhookSecretRotationApi.as_view(), name="webhook-secret-rotation"),
    path("webhook/test", WebhookTestApi.as_view(), name="webhook-test"),
    path("webhook/deliveries", WebhookDeliveriesApi.as_view(), name="webhook-deliveries"),
    path("webhook/deliveries/<str:delivery_id>", WebhookDeliveryApi.as_view(), name="webhook-delivery"),
    path(
        "webhook/deliveries/<str:delivery_id>/redelivery",
        WebhookDeliveryRedeliveryApi.as_view(),
        name="webhook-delivery-redelivery",
    ),
    path("webhook/dead-letters/redelivery", WebhookDeadLettersRedeliveryApi.as_view(), name="webhook-dead-letters"),
    re_path(r"", views.NotFoundApi.as_view(), name="not-found"),
]
