"""Consumer pages answer oversized or malformed requests with a clear 413 or 400 page, never a 500."""

from django.urls import reverse

from portal.models import User

MIB = 1024 * 1024


def test_a_20_mib_form_post_gets_a_413_page(client, db):
    body = "email=" + "a" * (20 * MIB)
    response = client.post(reverse("account_signup"), body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert "larger than we accept" in response.content.decode()
    assert not User.objects.exists()


def test_thousands_of_query_parameters_get_a_400_page(client, db):
    query = "&".join(f"p{n}=1" for n in range(5000))
    response = client.get(f"{reverse('account_login')}?{query}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert "could not understand this request" in response.content.decode()


def test_the_413_page_is_translated(client, db):
    body = "email=" + "a" * (11 * MIB)
    response = client.post(
        reverse("account_signup"),
        body,
        content_type="application/x-www-form-urlencoded",
        headers={"accept-language": "zh-hans"},
    )
    assert response.status_code == 413
    assert "larger than we accept" not in response.content.decode()


def test_an_unknown_host_gets_the_400_page_without_touching_the_request_again(client, db):
    response = client.get("/", headers={"host": "portal.evil.example"})
    assert response.status_code == 400
    assert "could not understand this request" in response.content.decode()


def test_api_paths_refused_before_the_view_answer_with_problem_details(client, db):
    # Django refuses the Host in CommonMiddleware, before DRF and its exception handler.
    response = client.get("/api/v1/ping", headers={"host": "portal.evil.example"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "bad_request"
