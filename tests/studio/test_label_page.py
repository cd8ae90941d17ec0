"""The labeling page is a shell for labelers: sign-in first, 403 for everyone else, and no task data in its HTML."""

import pytest
from django.contrib.auth import get_user_model

from labelstudio_site.studio.models import Assignment
from tests.studio.test_labeling import client_for, labeler, ready_round

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_anonymous_users_are_sent_to_sign_in(client):
    response = client.get("/label/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/label/"


def test_staff_who_are_not_labelers_get_403():
    boss = get_user_model().objects.create_user("boss", password="boss-pass-123", is_staff=True)
    assert client_for(boss).get("/label/").status_code == 403


def test_labelers_get_the_app_shell_without_any_task_data():
    generation_round = ready_round(covers=1)
    response = client_for(labeler("ann")).get("/label/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="label-app"' in html
    assert 'data-next-url="/api/label/next/"' in html
    assert "studio/label.js" in html
    assert "csrftoken" in response.cookies  # the script sends it back with every POST
    # Nothing of a task is rendered server-side, and opening the page assigns nothing.
    assert "<audio" not in html and "audio/" not in html and "covers/" not in html
    for variant in generation_round.variants.all():
        assert variant.audio.name not in html
    assert Assignment.objects.count() == 0


def test_the_landing_page_links_signed_in_users_to_the_labeling_page():
    html = client_for(labeler("ann")).get("/").content.decode()
    assert 'href="/label/"' in html
