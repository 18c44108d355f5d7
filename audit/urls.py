from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("access/", views.access_overview_view, name="access"),
    path("access/events/", views.access_timeline, name="access_timeline"),
    path("access/events.csv", views.access_export_csv, name="access_csv"),
    path("activity/", views.activity, name="activity"),
]
