from django.urls import path

from privacy_requests import views

app_name = "requests"

urlpatterns = [
    path("", views.request_list, name="list"),
    path("export/", views.export_create, name="export"),
    path("delete/", views.deletion_create, name="delete"),
    path("cancel/<str:token>/", views.cancel_link, name="cancel_link"),
    path("<uuid:pk>/", views.request_detail, name="detail"),
    path("<uuid:pk>/status/", views.request_status, name="status"),
    path("<uuid:pk>/download/", views.request_download, name="download"),
    path("<uuid:pk>/cancel/", views.request_cancel, name="cancel"),
]
