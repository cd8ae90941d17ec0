"""Comparison rounds: two captioner versions of one base on the same covers, labeled blind, and the newer version's
win rate on the round page and in the round API (admins only). The win-rate arithmetic itself: test_comparison.py."""

import re
from pathlib import Path

import pytest
import torch
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client

from generation.caption import Captioner
from labelstudio_site.studio import services, tasks
from labelstudio_site.studio.models import (
    Assignment,
    GenerationRound,
    LabelerExclusion,
    LabelTask,
    Variant,
    VariantStatus,
)
from labelstudio_site.studio.tasks import cover_generate_task
from labelstudio_site.training.models import ModelKind, ModelVersion
from labelstudio_site.training.services import model_version_base_ensure
from tests.generation.conftest import TINY
from tests.generation.test_caption import lora_adapter
from tests.studio.test_labeling import labeler, mark_rendered
from tests.studio.test_rounds import COVERS, late_output, make_covers, studio_settings, tiny_index_root  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def sft_adapter(tmp_path_factory) -> str:
    """A LoRA adapter of the tiny captioner twin, standing in for a fine-tuned version."""
    path = tmp_path_factory.mktemp("sft") / "adapter"
    captioner = Captioner.from_config(TINY / "captioner")
    torch.manual_seed(3)
    lora_adapter(captioner, path)
    return str(path)


@pytest.fixture
def base() -> ModelVersion:
    return model_version_base_ensure(profile="tiny")


@pytest.fixture
def sft(base, sft_adapter) -> ModelVersion:
    """Registered after the base version: the newer one."""
    return ModelVersion.objects.create(
        kind=ModelKind.CAPTIONER, name="sft", profile="tiny", adapter_path=sft_adapter, parent=base
    )


def comparison_round(covers, *, first, second, variants=2, **kwargs) -> GenerationRound:
    return services.round_create(
        name="comparison",
        covers=covers,
        captioner_version=first,
        comparison_version=second,
        variants_per_cover=variants,
        seed=kwargs.pop("seed", 17),
        render_settings={"duration_s": 1.0},
        **kwargs,
    )


def staff_client() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    return client


# --- Creating a comparison round ---------------------------------------------------------------------------------


def test_a_comparison_round_queues_both_versions_variants_and_one_task_per_cover(
    base, sft, django_capture_on_commit_callbacks
):
    covers = make_covers(2)
    with django_capture_on_commit_callbacks() as callbacks:
        generation_round = comparison_round(covers, first=base, second=sft, variants=3)
    rows = sorted(generation_round.variants.values_list("cover_id", "captioner_version_id", "index"))
    assert rows == sorted((c.pk, v.pk, i) for c in covers for v in (base, sft) for i in range(3))
    assert len(callbacks) == 2  # one GPU task per cover renders both versions


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("same", "two different captioner versions"),
        ("reward", "is a reward, not a captioner"),
        ("other base", "same base model: 'base (tiny)' runs on the default captioner (tiny profile), 'vlm' on x/vlm"),
        ("other profile", "same base model"),
        ("too many", "16 in all at most: choose 1-8 variants per cover"),
    ],
)
def test_a_comparison_the_services_cannot_run_is_refused_and_creates_nothing(base, change, message):
    variants = 9 if change == "too many" else 2
    second = {
        "same": base,
        "reward": ModelVersion.objects.create(kind=ModelKind.REWARD, name="rm", profile="tiny"),
        "other base": ModelVersion.objects.create(
            kind=ModelKind.CAPTIONER, name="vlm", profile="tiny", base_model_id="x/vlm"
        ),
        "other profile": ModelVersion.objects.create(kind=ModelKind.CAPTIONER, name="big", profile="full"),
        "too many": ModelVersion.objects.create(kind=ModelKind.CAPTIONER, name="sft", profile="tiny"),
    }[change]
    with pytest.raises(services.RoundError, match=re.escape(message)):
        comparison_round(make_covers(1), first=base, second=second, variants=variants)
    assert not GenerationRound.objects.exists() and not Variant.objects.exists() and not LabelTask.objects.exists()


def test_the_database_refuses_a_comparison_with_itself_or_more_than_16_variants_in_all(base, sft):
    values = {"name": "x", "captioner_version": base, "seed": 1, "render_settings": {}, "config_fingerprint": "0"}
    with pytest.raises(IntegrityError), transaction.atomic():
        GenerationRound.objects.create(**values, comparison_version=base, variants_per_cover=2)
    with pytest.raises(IntegrityError), transaction.atomic():
        GenerationRound.objects.create(**values, comparison_version=sft, variants_per_cover=9)
    GenerationRound.objects.create(**values, comparison_version=sft, variants_per_cover=8)
    GenerationRound.objects.create(**values, variants_per_cover=16)


# --- Generation on the GPU worker (the task runs in-process here) ------------------------------------------------


def run_cover(generation_round, cover) -> int:
    return cover_generate_task.apply(args=(generation_round.pk, cover.pk)).get()


def test_one_task_renders_both_versions_of_a_cover_from_one_retrieval(base, sft):
    covers = make_covers(2)
    generation_round = comparison_round(covers, first=base, second=sft, variants=2)
    assert run_cover(generation_round, covers[0]) == 4
    done = Variant.objects.filter(round=generation_round, cover=covers[0])
    assert set(done.values_list("status", flat=True)) == {VariantStatus.DONE}
    by_version = {version.pk: list(done.filter(captioner_version=version).order_by("index")) for version in (base, sft)}
    # The same neighbours for both versions; the adapter changes what the captioner writes.
    assert [v.neighbours for v in by_version[base.pk]] == [v.neighbours for v in by_version[sft.pk]]
    assert [v.raw_text for v in by_version[base.pk]] != [v.raw_text for v in by_version[sft.pk]]
    assert LabelTask.objects.get(round=generation_round, cover=covers[0]).ready
    assert not LabelTask.objects.get(round=generation_round, cover=covers[1]).ready
    assert run_cover(generation_round, covers[0]) == 0  # a duplicate delivery finds nothing to claim
    # A message queued by the release before comparison rounds (round, cover, version) renders the cover's batches.
    assert cover_generate_task.apply(args=(generation_round.pk, covers[1].pk, base.pk)).get() == 4

    # Each version's variants are exactly those a plain round of that version with the same seed makes.
    plain = services.round_create(
        name="plain sft",
        covers=[covers[0]],
        captioner_version=sft,
        variants_per_cover=2,
        seed=17,
        render_settings={"duration_s": 1.0},
    )
    assert run_cover(plain, covers[0]) == 2
    alone = list(plain.variants.order_by("index"))
    assert [v.raw_text for v in alone] == [v.raw_text for v in by_version[sft.pk]]
    assert [Path(v.audio.path).read_bytes() for v in alone] == [
        Path(v.audio.path).read_bytes() for v in by_version[sft.pk]
    ]


def test_a_dead_workers_batches_are_requeued_as_one_task_and_its_late_results_are_dropped(
    base, sft, django_capture_on_commit_callbacks
):
    (cover,) = make_covers(1)
    generation_round = comparison_round([cover], first=base, second=sft, variants=1)
    dead = services.cover_batches_claim(round_id=generation_round.pk, cover_id=cover.pk, worker="dead")
    assert [claim.config.adapter for claim in dead] == [None, sft.adapter_path]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batches = services.variants_reap_stale(stale_after_s=-1)
    assert batches == {(generation_round.pk, cover.pk, base.pk), (generation_round.pk, cover.pk, sft.pk)}
    assert len(callbacks) == 1  # one task for the cover, not one per batch
    assert run_cover(generation_round, cover) == 2
    late = late_output(raw_text="late")
    assert sum(services.batch_store(claim=claim, outputs=[late]) for claim in dead) == 0
    variants = Variant.objects.filter(round=generation_round)
    assert variants.count() == 2
    assert set(variants.values_list("status", "attempts")) == {(VariantStatus.DONE, 2)}


def test_a_missing_adapter_fails_the_covers_batches_with_the_reason_and_retry_runs_both(base, sft, sft_adapter):
    (cover,) = make_covers(1)
    generation_round = comparison_round([cover], first=base, second=sft, variants=1)
    ModelVersion.objects.filter(pk=sft.pk).update(adapter_path=sft_adapter + "-gone")
    assert run_cover(generation_round, cover) == 0
    failed = Variant.objects.filter(round=generation_round, status=VariantStatus.FAILED)
    assert failed.count() == 2
    assert all("no LoRA adapter at" in v.error for v in failed)
    ModelVersion.objects.filter(pk=sft.pk).update(adapter_path=sft_adapter)
    assert len(services.round_retry_failed(generation_round=generation_round)) == 2
    assert run_cover(generation_round, cover) == 2


# --- Blind labeling ----------------------------------------------------------------------------------------------


def ready_comparison_round(covers: int, *, first, second, variants=2, overlap_k=3) -> GenerationRound:
    """A comparison round whose variants are marked rendered (rendering is tested above)."""
    generation_round = comparison_round(
        make_covers(covers), first=first, second=second, variants=variants, overlap_k=overlap_k
    )
    return mark_rendered(generation_round)


def test_labelers_get_both_versions_variants_mixed_and_nothing_that_tells_them_apart(base, sft):
    ready_comparison_round(1, first=base, second=sft, variants=3, overlap_k=30)
    versions = dict(Variant.objects.values_list("pk", "captioner_version_id"))
    patterns = set()
    for n in range(30):
        client = Client()
        client.force_login(labeler(f"labeler{n}"))
        response = client.post("/api/label/next/")
        body = response.json()
        assert [v["key"] for v in body["variants"]] == list("abcdef")
        assert all(set(v) == {"key", "audio_url", "duration_s", "peaks"} for v in body["variants"])
        assert "sft" not in response.content.decode() and "base" not in response.content.decode()
        order = Assignment.objects.get(pk=body["assignment_id"]).order
        patterns.add(tuple(versions[variant_id] == sft.pk for variant_id in order))
    # Drawn per assignment, not grouped by version: of the 20 arrangements of 3 + 3, 30 labelers see many (the
    # chance that all 30 share one is 20 ** -29), and not only the two where each version keeps its own half.
    assert len(patterns) > 5
    assert patterns - {(False,) * 3 + (True,) * 3, (True,) * 3 + (False,) * 3}


# --- Win rate on the round page and in the API -------------------------------------------------------------------


def label(user, *, prefer_newer: bool, newer: ModelVersion) -> None:
    """Submit the labeler's next task: the preferred version's variants ranked first and rated musicality 5 (the
    others 3); compatibility 3 everywhere."""
    assignment = services.assignment_next_for(labeler=user, ttl_s=600)
    versions = dict(Variant.objects.filter(pk__in=assignment.order).values_list("pk", "captioner_version_id"))
    keys = services.variant_keys(len(assignment.order))
    preferred = {
        key for key, v in zip(keys, assignment.order, strict=True) if (versions[v] == newer.pk) == prefer_newer
    }
    answers = {
        key: services.VariantAnswer(musicality=5 if key in preferred else 3, compatibility=3, listened_s=10)
        for key in keys
    }
    ranking = sorted(keys, key=lambda key: key not in preferred)
    services.assignment_submit(
        assignment_id=assignment.pk, labeler=user, answers=answers, ranking=ranking, min_listen_s=5
    )


@pytest.fixture
def answered(base, sft):
    """Two covers, 2 + 2 variants each; ann and bob prefer the newer version, cy the older."""
    # The newer version (sft, registered later) is the comparison version here, the older one the round's main
    # captioner: "newer" follows the versions' registration, not their place in the round.
    generation_round = ready_comparison_round(2, first=sft, second=base)
    ann, bob, cy = labeler("ann"), labeler("bob"), labeler("cy")
    for _ in range(2):
        label(ann, prefer_newer=True, newer=sft)
        label(bob, prefer_newer=True, newer=sft)
        label(cy, prefer_newer=False, newer=sft)
    return generation_round, cy


def test_the_api_gives_the_newer_versions_win_rate_with_its_interval(answered, sft, base):
    generation_round, _ = answered
    comparison = staff_client().get(f"/api/rounds/{generation_round.pk}/").json()["comparison"]
    assert comparison["newer"] == {"id": sft.pk, "name": "sft"}
    assert comparison["older"] == {"id": base.pk, "name": "base (tiny)"}
    assert comparison["answers"] == 6 and comparison["confidence"] == 0.95 and comparison["resamples"] == 2000
    # Per cover: ann and bob 4 of 4 pairs each, cy 0 of 4; both covers alike, so every resample gives 8/12.
    assert comparison["ranking"] == {
        "win_rate": pytest.approx(2 / 3),
        "ci_low": pytest.approx(2 / 3),
        "ci_high": pytest.approx(2 / 3),
        "covers": 2,
        "comparisons": 24,
    }
    assert comparison["musicality"]["win_rate"] == pytest.approx(2 / 3)
    assert comparison["compatibility"]["win_rate"] == 0.5  # all ties


def test_excluded_labelers_are_left_out_and_the_page_shows_the_line(answered):
    generation_round, cy = answered
    LabelerExclusion.objects.create(labeler=cy)
    client = staff_client()
    ranking = client.get(f"/api/rounds/{generation_round.pk}/").json()["comparison"]["ranking"]
    assert (ranking["win_rate"], ranking["ci_low"], ranking["ci_high"]) == (1.0, 1.0, 1.0)
    html = client.get(f"/studio/admin/rounds/{generation_round.pk}/").content.decode()
    summary = re.search(r'<p id="comparison-summary">(.*?)</p>', html, re.S).group(1)
    text = " ".join(re.sub(r"<[^>]+>", "", summary).split())
    assert text == "sft (newer) vs base (tiny): win rate 100% [95% CI 100–100%], 2 covers, 16 comparisons"
    assert '<tr data-axis="compatibility"><td>compatibility rating</td><td>50%</td>' in html


def test_before_any_answer_the_page_says_so_and_plain_rounds_have_no_comparison(base, sft):
    generation_round = ready_comparison_round(1, first=base, second=sft)
    client = staff_client()
    html = client.get(f"/studio/admin/rounds/{generation_round.pk}/").content.decode()
    assert "sft (newer) vs base (tiny): no submitted answers yet." in html
    assert client.get(f"/api/rounds/{generation_round.pk}/").json()["comparison"]["ranking"]["win_rate"] is None
    plain = services.round_create(name="plain", covers=make_covers(1), captioner_version=base, variants_per_cover=2)
    assert client.get(f"/api/rounds/{plain.pk}/").json()["comparison"] is None
    assert 'id="comparison"' not in client.get(f"/studio/admin/rounds/{plain.pk}/").content.decode()


def test_labelers_and_anonymous_users_get_no_win_rate(answered):
    generation_round, _ = answered
    anonymous = Client()
    assert anonymous.get(f"/api/rounds/{generation_round.pk}/").status_code in (401, 403)
    assert anonymous.get(f"/studio/admin/rounds/{generation_round.pk}/").status_code == 302  # to sign in
    client = Client()
    client.force_login(labeler("dee"))
    assert client.get(f"/api/rounds/{generation_round.pk}/").status_code == 403
    assert client.get(f"/studio/admin/rounds/{generation_round.pk}/").status_code == 403


# --- Launching from the rounds page, the API and the command -----------------------------------------------------


def form_data(covers, version, **changes) -> dict:
    return {
        "covers": [c.pk for c in covers],
        "captioner_version": version.pk,
        "variants_per_cover": 2,
        "audio_renderer": "synth",
        "duration_s": 1,
        "overlap_k": 3,
        **changes,
    }


def test_the_rounds_page_starts_a_comparison_round_or_says_why_not(base, sft, monkeypatch):
    monkeypatch.setattr(tasks.cover_generate_task, "delay", lambda *args: None)
    covers = make_covers(2)
    client = staff_client()
    form = client.get("/studio/admin/rounds/").content.decode()
    assert '<label for="id_comparison_version">Compare with version</label>' in form
    other = ModelVersion.objects.create(kind=ModelKind.CAPTIONER, name="vlm", profile="tiny", base_model_id="x/vlm")
    response = client.post("/studio/admin/rounds/", form_data(covers, base, comparison_version=other.pk))
    assert response.status_code == 400
    assert "the versions to compare must be captioners on the same base model" in response.content.decode()
    assert not GenerationRound.objects.exists()

    response = client.post("/studio/admin/rounds/", form_data(covers, base, comparison_version=sft.pk))
    assert response.status_code == 302
    generation_round = GenerationRound.objects.get()
    assert generation_round.comparison_version == sft and generation_round.variants.count() == 8
    listing = client.get("/studio/admin/rounds/").content.decode()
    assert "base (tiny) vs sft" in listing


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"comparison_version_id": 999}, "there is no captioner version 999"),
        ({"comparison_version_id": "base"}, "two different captioner versions"),
        ({"variants_per_cover": 9}, "choose 1-8 variants per cover"),
    ],
)
def test_the_round_api_refuses_a_bad_comparison_with_400(base, sft, changes, message):
    if changes.get("comparison_version_id") == "base":
        changes = {"comparison_version_id": base.pk}
    payload = {
        "cover_ids": [c.pk for c in make_covers(1)],
        "captioner_version_id": base.pk,
        "comparison_version_id": sft.pk,
        "duration_s": 1.0,
        **changes,
    }
    response = staff_client().post("/api/rounds/", payload, content_type="application/json")
    assert response.status_code == 400
    assert message in str(response.json())
    assert not GenerationRound.objects.exists()


def test_the_round_api_starts_a_comparison_round(base, sft, django_capture_on_commit_callbacks):
    payload = {
        "cover_ids": [c.pk for c in make_covers(2)],
        "captioner_version_id": base.pk,
        "comparison_version_id": sft.pk,
        "variants_per_cover": 3,
        "duration_s": 1.0,
    }
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client().post("/api/rounds/", payload, content_type="application/json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["captioner_version"], body["comparison_version"], body["variants_per_cover"]) == (base.pk, sft.pk, 3)
    assert Variant.objects.filter(round_id=body["id"]).count() == 12 and len(callbacks) == 2


def test_start_round_compares_two_versions(base, sft, capsys):
    make_covers(2)
    call_command(
        "start_round", "--all-covers", "--captioner-version", str(base.pk), "--compare-version", str(sft.pk),
        "--variants", "2",
    )  # fmt: skip
    assert "variants with each of captioner base (tiny) and captioner sft" in capsys.readouterr().out
    assert GenerationRound.objects.get().variants.count() == 8
    with pytest.raises(SystemExit) as stop:
        call_command("start_round", "--all-covers", "--compare-version", "999")
    assert stop.value.code == 2
    assert "no captioner version 999" in capsys.readouterr().err
