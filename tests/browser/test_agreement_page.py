"""An admin signs in, follows a labeled round from the rounds list to its progress and its agreement page, reads
the figures, and excludes the labeler who rates backwards: the page says so and the figures change."""

import re

import pytest
from django.contrib.auth import get_user_model

from labelstudio_site.studio import services
from tests.browser.test_round_page import CHROMIUM, page  # noqa: F401 - page is the fixture of the browser tests
from tests.studio.test_agreement_page import label
from tests.studio.test_agreement_sums import reference_agreement
from tests.studio.test_labeling import labeler, ready_round

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")


@pytest.fixture
def labeled_round():
    """Two covers of three variants, each labeled by four labelers; cy rates backwards."""
    generation_round = ready_round(covers=2, variants=3, overlap_k=4)
    services.round_status_refresh(round_id=generation_round.pk)
    users = {name: labeler(name) for name in ("ann", "bob", "dee", "cy")}
    for _ in range(2):
        label(users["ann"], [1, 3, 5], [2, 3, 4])
        label(users["bob"], [2, 3, 5], [2, 4, 4])
        label(users["dee"], [1, 4, 4], [1, 3, 5])
        label(users["cy"], [5, 3, 1], [4, 3, 1])
    return generation_round


def figure(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def test_admin_sees_progress_and_agreement_and_excludes_a_labeler(page, live_server, labeled_round):  # noqa: F811
    expect = sync_api.expect
    get_user_model().objects.create_user("boss", password="boss-pass-123", is_staff=True)
    page.goto(f"{live_server.url}/studio/admin/rounds/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    page.fill("#id_username", "boss")
    page.fill("#id_password", "boss-pass-123")
    page.click("button:has-text('Sign in')")

    expect(page.locator("#rounds tbody tr")).to_have_count(1)
    expect(page.locator("#rounds tbody tr")).to_contain_text("6 / 6")
    page.click("#rounds a")
    expect(page.locator("#round-status")).to_have_text("done")
    expect(page.locator("#percent-done")).to_have_text("100.0%")
    expect(page.locator("#count-total")).to_have_text("6")
    expect(page.locator("#cover-progress tbody tr")).to_have_count(2)
    expect(page.locator("#failures")).to_have_text("None.")

    page.click("text=labeling agreement")
    expect(page.locator("h1")).to_contain_text("Agreement")
    before = reference_agreement(labeled_round)
    assert before["musicality_alpha"] is not None and before["ranking_w"] is not None
    expect(page.locator("#alpha-musicality")).to_have_text(figure(before["musicality_alpha"]))
    expect(page.locator("#alpha-compatibility")).to_have_text(figure(before["compatibility_alpha"]))
    expect(page.locator("#ranking-w")).to_have_text(figure(before["ranking_w"]))
    expect(page.locator("main, body").first).to_contain_text("24 ratings")
    rows = page.locator("#labelers tbody tr")
    expect(rows).to_have_count(4)
    cy = rows.filter(has=page.locator("td:first-child", has_text=re.compile(r"^cy$")))
    ann = rows.filter(has=page.locator("td:first-child", has_text=re.compile(r"^ann$")))
    # cy disagrees with the others' consensus (negative correlation), ann follows it.
    expect(cy.locator("td").nth(2)).to_have_text(re.compile(r"^-0\.\d\d$"))
    expect(ann.locator("td").nth(2)).to_have_text(re.compile(r"^0\.\d\d$"))

    cy.get_by_role("button", name="Exclude").click()
    expect(page.locator(".messages")).to_contain_text("Excluded the answers of cy.")
    expect(cy.locator(".status")).to_have_text("excluded")
    expect(cy.get_by_role("button", name="Include again")).to_be_visible()
    after = reference_agreement(labeled_round)
    assert after["musicality_alpha"] > before["musicality_alpha"]
    expect(page.locator("#alpha-musicality")).to_have_text(figure(after["musicality_alpha"]))
    expect(page.locator("#ranking-w")).to_have_text(figure(after["ranking_w"]))
    expect(page.locator("main, body").first).to_contain_text("18 ratings")
