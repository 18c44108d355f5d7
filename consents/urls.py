from django.urls import path

from consents import views

app_name = "consents"

urlpatterns = [
    path("", views.consent_list, name="list"),
    path("receipts/", views.receipt_list, name="receipt_list"),
    path("receipts/<uuid:receipt_id>/", views.receipt_detail, name="receipt_detail"),
    path("receipts/<uuid:receipt_id>/download", views.receipt_download, name="receipt_download"),
    path("receipts/<uuid:receipt_id>/download.json", views.receipt_download_json, name="receipt_download_json"),
    path("<slug:slug>/card/", views.consent_card_view, name="card"),
    path("<slug:slug>/grant/", views.consent_grant_view, name="grant"),
    path("<slug:slug>/withdraw/", views.consent_withdraw, name="withdraw"),
    path("<slug:slug>/review/", views.consent_review, name="review"),
]
