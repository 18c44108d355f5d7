from django.urls import path

from consents import connected_views

app_name = "connected"

urlpatterns = [
    path("", connected_views.connected_list, name="list"),
    path("<uuid:grant_id>/withdraw/", connected_views.connected_withdraw, name="withdraw"),
]
