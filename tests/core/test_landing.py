"""The landing page points a newcomer to the labeler sign-in and the admin; the demo accounts can sign in."""

import pytest
from django.contrib.auth import get_user_model

from labelstudio_site.core.services import demo_accounts_ensure
from labelstudio_site.studio.roles import LABELERS_GROUP

pytestmark = pytest.mark.django_db


def make_demo_accounts():
    return demo_accounts_ensure(
        admin_username="boss", admin_password="boss-pass-123", labeler_username="ears", labeler_password="ears-pass-123"
    )


def test_landing_links_to_sign_in_admin_api_and_health(client):
    html = client.get("/").content.decode()
    for href in ('href="/accounts/login/"', 'href="/admin/"', 'href="/api/docs/"', 'href="/healthz"'):
        assert href in html


def test_demo_accounts_have_their_roles_and_are_not_duplicated():
    make_demo_accounts()
    admin, labeler = make_demo_accounts()
    assert get_user_model().objects.filter(username__in=["boss", "ears"]).count() == 2
    assert admin.is_superuser and admin.is_staff
    assert not labeler.is_staff
    assert list(labeler.groups.values_list("name", flat=True)) == [LABELERS_GROUP]


def test_labeler_signs_in_from_the_landing_page_and_sees_their_name(client):
    make_demo_accounts()
    response = client.post("/accounts/login/", {"username": "ears", "password": "ears-pass-123"}, follow=True)
    html = response.content.decode()
    assert "Signed in as <strong>ears</strong>" in html
    assert 'href="/admin/"' in html  # the landing card, not the staff-only nav link
    assert html.count('href="/admin/"') == 1


def test_wrong_password_is_refused_with_a_message(client):
    make_demo_accounts()
    response = client.post("/accounts/login/", {"username": "ears", "password": "nope"})
    assert response.status_code == 200
    assert "did not match" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_admin_reaches_the_admin_site_and_labeler_does_not(client):
    make_demo_accounts()
    client.login(username="ears", password="ears-pass-123")
    assert client.get("/admin/").status_code == 302
    client.login(username="boss", password="boss-pass-123")
    assert client.get("/admin/").status_code == 200


def test_openapi_schema_is_served(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "AlbumGen Studio API"


def test_the_offline_demo_says_it_runs_tiny_random_weights(client, settings):
    settings.ALBUMGEN_PROFILE = "tiny"
    assert "Offline demo:" in client.get("/").content.decode()
    settings.ALBUMGEN_PROFILE = "full"
    assert "Offline demo:" not in client.get("/").content.decode()


def test_labelers_get_a_start_labeling_button_and_admins_do_not(client):
    make_demo_accounts()
    client.login(username="ears", password="ears-pass-123")
    assert 'href="/label/"' in client.get("/").content.decode()
    client.login(username="boss", password="boss-pass-123")
    html = client.get("/").content.decode()
    assert 'href="/label/"' not in html and "not as a labeler" in html
