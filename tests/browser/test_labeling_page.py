"""A labeler signs in, listens to each variant, rates and ranks them with the keyboard alone, submits, skips, and
the page loads the next task until there is none."""

import re

import pytest

from labelstudio_site.studio import tasks
from labelstudio_site.studio.models import Assignment, AssignmentStatus, Rating
from tests.browser.test_round_page import CHROMIUM, LAUNCH_ARGS, ROOT, finish_like_a_worker
from tests.studio.test_labeling import labeler, ready_round

# Under var/ (ignored): a test run must not change tracked files; benchmarks/results keeps the published copy.
SCREENSHOT = ROOT / "var" / "screenshots" / "label_page.png"

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed (dev extra)")


@pytest.fixture
def page(live_server, monkeypatch, settings, tmp_path):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test itself are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    settings.MEDIA_ROOT = tmp_path / "media"
    # 1 s of listening per 1.5 s clip keeps the rule real and the test to seconds (audio plays in real time).
    settings.LABEL_MIN_LISTEN_S = 1.0
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(15_000)
        yield page
        browser.close()


@pytest.fixture
def two_covers_ready(monkeypatch):
    """Two covers with three rendered 1.5 s MP3 variants each, ready to label (no worker runs here)."""
    monkeypatch.setattr(tasks.cover_generate_task, "delay", lambda *args: None)
    generation_round = ready_round(covers=2, variants=3, overlap_k=1)
    finish_like_a_worker(generation_round.pk)
    return generation_round


def sign_in_and_open(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/label/")
    sync_api.expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/label/"))
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username)
    page.click("button:has-text('Sign in')")
    sync_api.expect(page).to_have_url(re.compile(r"/label/$"))
    sync_api.expect(page.locator("#variants > li")).to_have_count(3)


def variant(page, key: str):
    return page.locator(f'#variants > li[data-key="{key}"]')


def listen(page, key: str) -> None:
    """Space plays the current variant; wait until the page counts it as heard (1 s of real playback)."""
    page.keyboard.press("Space")
    sync_api.expect(variant(page, key).locator(".lv-heard")).to_have_text("✓ heard", timeout=8_000)


def test_labeler_labels_a_task_with_the_keyboard_and_gets_the_next_one(page, live_server, two_covers_ready):
    expect = sync_api.expect
    labeler("ann")
    sign_in_and_open(page, live_server, "ann")
    expect(page.locator("#progress")).to_contain_text("0 done / 1 assigned")
    expect(page.locator("#submit")).to_be_disabled()
    expect(page.locator("#submit-why")).to_contain_text("listen to a")
    first_cover = page.get_attribute("#cover", "src")

    # Blind: only "Variant a/b/c"; no prompt, seed, model version, worker or file name anywhere in the text.
    text = page.inner_text("body")
    assert re.findall(r"Variant [a-z]", text)[:3] == ["Variant a", "Variant b", "Variant c"]
    for secret in ("moody", "jazz", "seed", "tiny", "gpu-worker", ".mp3", "captioner"):
        assert secret not in text.lower()

    # a: Space plays, 4 = musicality, Shift+2 = compatibility; b and c: n moves on, e/r = compatibility.
    listen(page, "a")
    page.keyboard.press("4")
    page.keyboard.press("Shift+Digit2")
    for key, musicality, compatibility in (("b", "5", "e"), ("c", "2", "r")):
        page.keyboard.press("n")
        expect(variant(page, key)).to_have_class(re.compile(r"\bcurrent\b"))
        if key == "c":  # b is heard and rated, c is not heard yet: the page says why it cannot submit
            expect(page.locator("#submit")).to_be_disabled()
            expect(page.locator("#submit-why")).to_contain_text("listen to c")
        listen(page, key)
        page.keyboard.press(musicality)
        page.keyboard.press(compatibility)
    expect(variant(page, "a").locator('input[name="musicality-a"][value="4"]')).to_be_checked()
    expect(variant(page, "a").locator('input[name="compatibility-a"][value="2"]')).to_be_checked()
    expect(variant(page, "b").locator('input[name="compatibility-b"][value="3"]')).to_be_checked()
    expect(variant(page, "c").locator('input[name="musicality-c"][value="2"]')).to_be_checked()
    # Only one variant plays at a time.
    assert page.eval_on_selector_all("#variants audio", "els => els.filter(a => !a.paused).length") <= 1

    # Ranking by keyboard: a down one (b, a, c), then c up one (b, c, a).
    ranking = page.locator("#ranking > li")
    expect(ranking).to_have_text([re.compile("Variant a"), re.compile("Variant b"), re.compile("Variant c")])
    ranking.nth(0).focus()
    page.keyboard.press("Alt+ArrowDown")
    ranking.nth(2).focus()
    page.keyboard.press("u")
    expect(ranking).to_have_text([re.compile("Variant b"), re.compile("Variant c"), re.compile("Variant a")])

    expect(page.locator("#submit")).to_be_enabled()
    expect(page.locator("#submit-why")).to_contain_text("Ready")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    page.keyboard.press("Enter")
    # The next task loads by itself: another cover, nothing heard or rated, progress counts the submission.
    expect(page.locator("#progress")).to_contain_text("1 done / 2 assigned")
    expect(page.locator("#cover")).not_to_have_attribute("src", first_cover)
    expect(page.locator("#variants .lv-heard")).to_have_text(["", "", ""])
    expect(page.locator("#variants input:checked")).to_have_count(0)
    expect(page.locator("#submit")).to_be_disabled()
    expect(page.locator("#alert")).to_be_hidden()

    submitted = Assignment.objects.get(status=AssignmentStatus.SUBMITTED)
    ratings = Rating.objects.filter(assignment=submitted)
    assert ratings.count() == 3
    assert sorted(ratings.values_list("rank", flat=True)) == [1, 2, 3]
    rank_of = {key: ratings.get(variant_id=variant_id) for key, variant_id in zip("abc", submitted.order, strict=True)}
    assert [rank_of[k].rank for k in "bca"] == [1, 2, 3]
    assert (rank_of["a"].musicality, rank_of["a"].compatibility) == (4, 2)
    assert (rank_of["b"].musicality, rank_of["b"].compatibility) == (5, 3)
    assert (rank_of["c"].musicality, rank_of["c"].compatibility) == (2, 4)
    assert all(r.listened_s >= 1.0 for r in ratings)

    # s asks for a reason; skipping the last task leaves none.
    page.keyboard.press("s")
    expect(page.locator("#skip-dialog")).to_be_visible()
    page.check('#skip-dialog input[value="cannot judge"]')
    page.click("#skip-confirm")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("No more tasks — thank you")
    expect(page.locator("#progress")).to_contain_text("2 done / 2 assigned")
    assert Assignment.objects.get(status=AssignmentStatus.SKIPPED).skip_reason == "cannot judge"


def test_submit_stays_disabled_while_a_variant_is_unheard(page, live_server, two_covers_ready):
    expect = sync_api.expect
    labeler("bob")
    sign_in_and_open(page, live_server, "bob")
    for index, key in enumerate("abc"):
        if index:
            page.keyboard.press("j")
        if key != "c":
            listen(page, key)
        page.keyboard.press("3")
        page.keyboard.press("w")
    expect(page.locator("#variants input:checked")).to_have_count(6)
    expect(variant(page, "c").locator(".lv-heard")).to_have_text("")
    expect(page.locator("#submit")).to_be_disabled()
    expect(page.locator("#submit-why")).to_have_text(re.compile(r"listen to c \(1 s left\)"))
    # The ranking also reorders with the mouse: drag c onto the top half of a.
    ranking = page.locator("#ranking > li")
    ranking.nth(2).drag_to(ranking.nth(0), target_position={"x": 20, "y": 3})
    expect(ranking).to_have_text([re.compile("Variant c"), re.compile("Variant a"), re.compile("Variant b")])
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert Assignment.objects.get().status == AssignmentStatus.ASSIGNED
    assert Rating.objects.count() == 0
