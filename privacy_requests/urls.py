from django.urls import path

from privacy_requests import agent_views, views

app_name = "requests"

urlpatterns = [
    path("", views.request_list, name="list"),
    path("export/", views.export_create, name="export"),
    path("delete/", views.deletion_create, name="delete"),
    path("cancel/<str:token>/", views.cancel_link, name="cancel_link"),
    path("agent/", agent_views.agent_submit, name="agent"),
    path("agent/sent/", agent_views.agent_submitted, name="agent_submitted"),
    path("agent/confirm/<str:token>/", agent_views.agent_confirm, name="agent_confirm"),
    path("<uuid:pk>/", views.request_detail, name="detail"),
    path("<uuid:pk>/status/", views.request_status, name="status"),
    path("<uuid:pk>/download/", views.request_download, name="download"),
    path("<uuid:pk>/cancel/", views.request_cancel, name="cancel"),
]
