"""An admin starts a comparison round from the rounds page and, once labelers have answered, reads the newer
version's win rate on the round page."""

import re

import pytest
from django.contrib.auth import get_user_model

from labelstudio_site.studio import services
from labelstudio_site.studio.models import LabelTask
from labelstudio_site.training.models import ModelKind, ModelVersion
from labelstudio_site.training.services import model_version_base_ensure
from tests.browser.test_round_page import CHROMIUM, COVERS, finish_like_a_worker, page, sent_tasks  # noqa: F401
from tests.studio.test_comparison_rounds import label
from tests.studio.test_labeling import labeler

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")


def test_admin_compares_two_versions_and_reads_the_win_rate(page, live_server, sent_tasks):  # noqa: F811
    expect = sync_api.expect
    get_user_model().objects.create_user("boss", password="boss-pass-123", is_staff=True)
    base = model_version_base_ensure(profile="tiny")
    sft = ModelVersion.objects.create(kind=ModelKind.CAPTIONER, name="sft", profile="tiny", adapter_path="/sft")
    for path in COVERS:
        services.cover_create(data=path.read_bytes(), name=path.name)

    page.goto(f"{live_server.url}/studio/admin/rounds/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "boss-pass-123")
    page.click("button:has-text('Sign in')")
    page.check("#id_all_covers")
    page.select_option("#id_captioner_version", label=str(base))
    page.select_option("#id_comparison_version", label=str(sft))
    page.fill("#id_variants_per_cover", "2")
    page.fill("#id_duration_s", "1.5")
    page.click("button:has-text('Start round')")
    expect(page).to_have_url(re.compile(r"/studio/admin/rounds/\d+/$"))
    expect(page.locator("#round p.muted").first).to_contain_text("Comparison of captioners base (tiny) and sft")
    expect(page.locator("#count-total")).to_have_text("8")  # 2 covers x 2 versions x 2 variants
    expect(page.locator("#comparison-summary")).to_have_text("sft (newer) vs base (tiny): no submitted answers yet.")
    assert len(sent_tasks) == 2  # one GPU task per cover renders both versions

    round_id = int(re.search(r"/rounds/(\d+)/", page.url).group(1))
    finish_like_a_worker(round_id)
    LabelTask.objects.filter(round_id=round_id).update(ready=True)
    expect(page.locator("#round-status")).to_have_text("done")
    for name, prefer_newer in (("ann", True), ("bob", True), ("cy", False)):
        user = labeler(name)
        for _ in range(2):
            label(user, prefer_newer=prefer_newer, newer=sft)

    page.reload()
    expect(page.locator("#comparison-summary")).to_have_text(
        "sft (newer) vs base (tiny): win rate 67% [95% CI 67–67%], 2 covers, 24 comparisons"
    )
    expect(page.locator('#comparison-axes tr[data-axis="compatibility"]')).to_contain_text("50%")
    expect(page.locator(".variant summary .version").first).to_have_text("base (tiny)")
