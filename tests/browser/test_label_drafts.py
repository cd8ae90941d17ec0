"""A labeler's unsent ratings and ranking survive a reload of the labeling page, and are gone once sent."""

import re

import pytest

from labelstudio_site.studio.models import Assignment, AssignmentStatus, Rating
from tests.browser.test_labeling_page import (  # noqa: F401 - page and two_covers_ready are fixtures
    listen,
    page,
    sign_in_and_open,
    two_covers_ready,
    variant,
)
from tests.browser.test_round_page import CHROMIUM
from tests.studio.test_labeling import labeler

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")


def drafts(page) -> dict:  # noqa: F811
    return page.evaluate(
        "() => Object.fromEntries(Object.keys(localStorage).filter(k => k.startsWith('albumgen-label-draft-'))"
        ".map(k => [k, JSON.parse(localStorage.getItem(k))]))"
    )


def test_ratings_and_ranking_survive_a_reload_until_submitted(page, live_server, two_covers_ready):  # noqa: F811
    expect = sync_api.expect
    labeler("eve")
    sign_in_and_open(page, live_server, "eve")
    assignment = Assignment.objects.get(status=AssignmentStatus.ASSIGNED)
    # Rate a (4, 2) and b (musicality 5), and move a below b: nothing is sent yet.
    page.keyboard.press("4")
    page.keyboard.press("Shift+Digit2")
    page.keyboard.press("n")
    page.keyboard.press("5")
    ranking = page.locator("#ranking > li")
    ranking.nth(0).focus()
    page.keyboard.press("Alt+ArrowDown")
    expect(ranking).to_have_text([re.compile("Variant b"), re.compile("Variant a"), re.compile("Variant c")])
    assert drafts(page) == {
        f"albumgen-label-draft-{assignment.pk}": {
            "ratings": {"a": {"musicality": 4, "compatibility": 2}, "b": {"musicality": 5}},
            "ranking": ["b", "a", "c"],
        }
    }

    page.reload()
    expect(page.locator("#variants > li")).to_have_count(3)
    expect(variant(page, "a").locator('input[name="musicality-a"][value="4"]')).to_be_checked()
    expect(variant(page, "a").locator('input[name="compatibility-a"][value="2"]')).to_be_checked()
    expect(variant(page, "b").locator('input[name="musicality-b"][value="5"]')).to_be_checked()
    expect(page.locator("#variants input:checked")).to_have_count(3)
    expect(ranking).to_have_text([re.compile("Variant b"), re.compile("Variant a"), re.compile("Variant c")])
    assert Rating.objects.count() == 0
    # Listening is measured again after a reload: the draft does not count as heard.
    expect(page.locator("#submit-why")).to_contain_text("listen to a")

    # Finish the task: listen to each variant, complete the ratings, submit. The draft goes with the submission.
    listen(page, "a")
    page.keyboard.press("n")
    listen(page, "b")
    page.keyboard.press("w")
    page.keyboard.press("n")
    listen(page, "c")
    page.keyboard.press("3")
    page.keyboard.press("e")
    expect(page.locator("#submit")).to_be_enabled()
    page.keyboard.press("Enter")
    expect(page.locator("#progress")).to_contain_text("1 done / 2 assigned")
    expect(page.locator("#variants input:checked")).to_have_count(0)
    ratings = {r.variant_id: r for r in Rating.objects.filter(assignment=assignment)}
    by_key = dict(zip("abc", assignment.order, strict=True))
    assert (ratings[by_key["a"]].musicality, ratings[by_key["a"]].compatibility) == (4, 2)
    assert [ratings[by_key[k]].rank for k in "bac"] == [1, 2, 3]
    assert f"albumgen-label-draft-{assignment.pk}" not in drafts(page)
