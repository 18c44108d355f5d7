from django.urls import path

from consents import views

app_name = "consents"

urlpatterns = [
    path("", views.consent_list, name="list"),
]
