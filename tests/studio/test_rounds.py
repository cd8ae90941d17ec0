"""Rounds and their variants through the services and the GPU task (run in-process here; real workers in
test_workers.py): validation, the batch lifecycle, idempotency under duplicate delivery, stale attempts, failures."""

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.__main__ import main as generation_cli
from generation.config import TINY_DIR
from generation.images import load_cover_image
from labelstudio_site.studio import services
from labelstudio_site.studio.models import Cover, CoverEmbedding, GenerationRound, RoundStatus, Variant, VariantStatus
from labelstudio_site.studio.selectors import cover_embeddings_get
from labelstudio_site.studio.tasks import cover_generate_task, variants_reap_task
from labelstudio_site.training.models import ModelKind, ModelVersion
from labelstudio_site.training.services import model_version_base_ensure

ROOT = Path(__file__).resolve().parents[2]
COVERS = sorted((ROOT / "fixtures" / "musicoset" / "covers").glob("*.png"))

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def tiny_index_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("indexes")
    assert generation_cli(["build-index", "--out", str(root / "tiny")]) == 0
    return root


@pytest.fixture(autouse=True)
def studio_settings(settings, tmp_path, tiny_index_root):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.ALBUMGEN_INDEX_DIR = tiny_index_root
    return settings


def make_covers(count: int) -> list[Cover]:
    return [services.cover_create(data=path.read_bytes(), name=path.name)[0] for path in COVERS[:count]]


def make_round(covers, *, variants=3, **kwargs) -> GenerationRound:
    settings = {"duration_s": 2.0, **kwargs.pop("render_settings", {})}
    return services.round_create(
        name="test",
        covers=covers,
        captioner_version=model_version_base_ensure(profile="tiny"),
        variants_per_cover=variants,
        seed=kwargs.pop("seed", 17),
        render_settings=settings,
        **kwargs,
    )


def run_batch(generation_round, cover) -> int:
    return cover_generate_task.apply(args=(generation_round.pk, cover.pk)).get()


def audio_files(settings) -> list[Path]:
    folder = Path(settings.MEDIA_ROOT) / "audio"
    return sorted(folder.iterdir()) if folder.exists() else []


def test_a_round_creates_one_queued_variant_per_cover_and_index():
    covers = make_covers(2)
    generation_round = make_round(covers, variants=3)
    assert generation_round.status == RoundStatus.QUEUED
    rows = list(generation_round.variants.values_list("cover_id", "index", "status", "seed"))
    assert sorted(rows) == sorted((c.pk, i, VariantStatus.QUEUED, 17) for c in covers for i in range(3))
    assert len(generation_round.config_fingerprint) == 16


def test_the_task_renders_every_variant_of_a_cover_in_one_batch(studio_settings):
    covers = make_covers(2)
    generation_round = make_round(covers, variants=3)
    assert run_batch(generation_round, covers[0]) == 3
    generation_round.refresh_from_db()
    assert generation_round.status == RoundStatus.RUNNING  # the second cover is still queued
    assert run_batch(generation_round, covers[1]) == 3
    generation_round.refresh_from_db()
    assert generation_round.status == RoundStatus.DONE and generation_round.finished_at
    for variant in generation_round.variants.all():
        assert variant.status == VariantStatus.DONE and variant.attempts == 1
        assert variant.features["genre"] in variant.prompt
        assert len(variant.neighbours) == 5 and len(variant.peaks) == 200
        assert variant.duration_s == pytest.approx(2.0, rel=0.05)
        assert set(variant.timings) >= {"embed", "caption", "render", "encode"}
        # Blind: the stored name is random, nothing in it tells the variant, seed or version.
        assert re.fullmatch(r"audio/[0-9a-f]{32}\.mp3", variant.audio.name)
    assert len(audio_files(studio_settings)) == 6


def test_a_duplicate_delivery_stores_nothing_twice(studio_settings):
    (cover,) = make_covers(1)
    generation_round = make_round([cover], variants=2)
    assert run_batch(generation_round, cover) == 2
    assert run_batch(generation_round, cover) == 0
    assert generation_round.variants.count() == 2
    assert set(generation_round.variants.values_list("attempts", flat=True)) == {1}
    assert len(audio_files(studio_settings)) == 2


def test_a_rendered_cover_stores_the_rounds_clip_and_captioner_embeddings_of_it_once():
    from generation.caption import Captioner
    from generation.embed import Embedder

    covers = make_covers(2)
    generation_round = make_round(covers, variants=2)
    for cover in covers:
        assert run_batch(generation_round, cover) == 2
    clip = Embedder.from_config(TINY_DIR / "clip")
    captioner = Captioner.from_config(TINY_DIR / "captioner").image_embedder
    rows = CoverEmbedding.objects.order_by("cover_id", "embedder_id")
    assert [(r.cover_id, r.embedder_id, r.dimension) for r in rows] == [
        (cover.pk, embedder_id, dimension)
        for cover in covers
        for embedder_id, dimension in sorted(
            [(clip.model_id, clip.dimension), (captioner.model_id, captioner.dimension)]
        )
    ]
    for embedder in (clip, captioner):
        stored = cover_embeddings_get(cover_ids=[c.pk for c in covers], embedder_id=embedder.model_id)
        for cover in covers:
            expected = embedder.embed([load_cover_image(cover.image.path)])[0]
            assert stored[cover.pk].dtype == np.float32 and np.allclose(stored[cover.pk], expected, atol=1e-5)
    first_vectors = [stored[cover.pk] for cover in covers]
    assert not np.allclose(*first_vectors), "two covers, one captioner vector"

    # A redelivered task whose first attempt died after storing the embedding renders the batch again and keeps it.
    first = list(CoverEmbedding.objects.filter(cover=covers[0]).order_by("pk").values_list("pk", "created_at"))
    generation_round.variants.filter(cover=covers[0]).update(status=VariantStatus.QUEUED)
    assert run_batch(generation_round, covers[0]) == 2
    assert list(CoverEmbedding.objects.filter(cover=covers[0]).order_by("pk").values_list("pk", "created_at")) == first


def test_an_embedding_is_stored_once_per_embedder_and_only_when_finite():
    (cover,) = make_covers(1)
    services.cover_embedding_store(cover_id=cover.pk, embedder_id="clip-a", vector=[0.6, 0.8])
    services.cover_embedding_store(cover_id=cover.pk, embedder_id="clip-a", vector=np.array([1.0, 0.0]))
    services.cover_embedding_store(cover_id=cover.pk, embedder_id="clip-b", vector=np.array([0.0, 1.0, 0.0]))
    assert cover_embeddings_get(cover_ids=[cover.pk], embedder_id="clip-a")[cover.pk].tolist() == pytest.approx(
        [0.6, 0.8]
    )
    assert CoverEmbedding.objects.get(embedder_id="clip-b").dimension == 3
    assert cover_embeddings_get(cover_ids=[cover.pk], embedder_id="clip-c") == {}
    for vector, message in (([], "non-empty"), ([[1.0], [0.0]], "shape"), ([0.5, float("nan")], "NaN")):
        with pytest.raises(ValueError, match=message):
            services.cover_embedding_store(cover_id=cover.pk, embedder_id="clip-d", vector=vector)
    assert CoverEmbedding.objects.count() == 2


def test_a_stale_attempt_cannot_overwrite_the_attempt_that_replaced_it(studio_settings):
    (cover,) = make_covers(1)
    generation_round = make_round([cover], variants=2)
    args = {"round_id": generation_round.pk, "cover_id": cover.pk, "version_id": generation_round.captioner_version_id}
    first = services.batch_claim(**args, worker="a")
    # The first worker looks dead: the reaper requeues its batch and a second worker claims it.
    assert services.variants_reap_stale(stale_after_s=-1) == {(generation_round.pk, cover.pk, args["version_id"])}
    second = services.batch_claim(**args, worker="b")
    assert second.attempt == first.attempt + 1
    output = late_output(raw_text="{}")
    assert services.batch_store(claim=first, outputs=[output, output.__class__(**{**output.__dict__, "index": 1})]) == 0
    assert set(generation_round.variants.values_list("status", "worker")) == {(VariantStatus.RUNNING, "b")}


def late_output(*, raw_text: str) -> services.VariantOutput:
    """What a worker presumed dead stores when it finishes after all: variant 0, failed as late."""
    return services.VariantOutput(
        index=0,
        neighbours=[],
        raw_text=raw_text,
        features=None,
        error="late",
        prompt="",
        audio=None,
        audio_extension="",
        audio_mime="",
        peaks=[],
        duration_s=None,
        timings={},
    )


def test_the_reaper_task_requeues_only_batches_past_the_deadline(studio_settings):
    (cover,) = make_covers(1)
    generation_round = make_round([cover], variants=2)
    services.batch_claim(
        round_id=generation_round.pk, cover_id=cover.pk, version_id=generation_round.captioner_version_id, worker="a"
    )
    studio_settings.ALBUMGEN_STALE_AFTER_S = 3600
    assert variants_reap_task.apply().get() == 0
    studio_settings.ALBUMGEN_STALE_AFTER_S = -1
    assert variants_reap_task.apply().get() == 1
    assert set(generation_round.variants.values_list("status", flat=True)) == {VariantStatus.QUEUED}


def test_a_broken_cover_fails_its_variants_with_the_reason_and_retry_requeues_them(studio_settings):
    covers = make_covers(2)
    generation_round = make_round(covers, variants=2)
    Path(covers[0].image.path).write_bytes(b"not an image any more")
    assert run_batch(generation_round, covers[0]) == 0
    assert run_batch(generation_round, covers[1]) == 2
    generation_round.refresh_from_db()
    assert generation_round.status == RoundStatus.FAILED
    failed = generation_round.variants.filter(status=VariantStatus.FAILED)
    assert failed.count() == 2
    assert all(v.error.startswith("cover image: the file is not an image") for v in failed)

    Path(covers[0].image.path).write_bytes(COVERS[0].read_bytes())
    assert services.round_retry_failed(generation_round=generation_round) == {
        (generation_round.pk, covers[0].pk, generation_round.captioner_version_id)
    }
    assert run_batch(generation_round, covers[0]) == 2
    generation_round.refresh_from_db()
    assert generation_round.status == RoundStatus.DONE


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"covers": []}, "at least one cover"),
        ({"variants": 0}, "between 1 and 16"),
        ({"variants": 17}, "between 1 and 16"),
        ({"overlap_k": 0}, "overlap k must be between 1 and 50"),
        ({"overlap_k": 51}, "overlap k must be between 1 and 50"),
        ({"gold_rate": 1.5}, "gold rate must be between 0 and 1"),
        ({"seed": -1}, "seed must be between 0 and 9223372036854775807"),
        ({"seed": 2**63}, "seed must be between 0 and 9223372036854775807"),
        ({"render_settings": {"duration_s": -1}}, "duration_s"),
        ({"render_settings": {"renderer": "theremin"}}, "renderer"),
        ({"render_settings": {"volume": 11}}, "unknown render settings: volume"),
    ],
)
def test_bad_rounds_are_refused_and_create_nothing(change, message):
    covers = change.pop("covers", None)
    with pytest.raises(services.RoundError, match=message):
        make_round(make_covers(1) if covers is None else covers, **change)
    assert GenerationRound.objects.count() == 0 and Variant.objects.count() == 0


def test_a_reward_model_is_not_a_captioner_version():
    reward = ModelVersion.objects.create(kind=ModelKind.REWARD, name="rm", profile="tiny")
    with pytest.raises(services.RoundError, match="not a captioner"):
        services.round_create(name="x", covers=make_covers(1), captioner_version=reward, variants_per_cover=2)
    assert GenerationRound.objects.count() == 0


def png(size=(64, 64), color=(10, 20, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def test_cover_intake_stores_each_image_once_and_reports_the_rest(studio_settings):
    report = services.covers_intake(
        files=[("a.png", png()), ("again.png", png()), ("notes.txt", b"hello"), ("empty.png", b"")], source="upload"
    )
    assert len(report.created) == 1
    assert [name for name, _ in report.duplicates] == ["again.png"]
    assert [name for name, _ in report.rejected] == ["notes.txt", "empty.png"]
    assert Cover.objects.count() == 1
    cover = Cover.objects.get()
    assert re.fullmatch(r"covers/[0-9a-f]{32}\.png", cover.image.name)
    assert (cover.width, cover.height) == (64, 64)


def test_import_covers_and_start_round_commands(tmp_path, capsys):
    from django.core.management import call_command

    folder = tmp_path / "in"
    folder.mkdir()
    for path in COVERS[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"nope")
    call_command("import_covers", str(folder))
    assert "covers: 3 stored, 0 duplicates, 1 rejected" in capsys.readouterr().out
    call_command("start_round", "--all-covers", "--variants", "2", "--seed", "5", "--duration", "2")
    assert "round" in capsys.readouterr().out
    generation_round = GenerationRound.objects.get()
    assert generation_round.variants.count() == 6 and generation_round.seed == 5

    with pytest.raises(SystemExit) as stop:
        call_command("start_round", "--covers", "999", "--variants", "2")
    assert stop.value.code == 2
    assert "there are no covers 999" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        call_command("start_round", "--all-covers", "--captioner-version", "999")
    assert "no captioner version 999" in capsys.readouterr().err
    assert GenerationRound.objects.count() == 1


def test_start_round_unless_any_starts_only_the_first_round(capsys):
    from django.core.management import call_command

    make_covers(2)
    call_command("start_round", "--all-covers", "--variants", "2", "--unless-any")
    call_command("start_round", "--all-covers", "--variants", "2", "--unless-any")
    assert "none started" in capsys.readouterr().out
    assert GenerationRound.objects.count() == 1


def test_a_worker_that_resolves_other_models_than_the_rounds_fails_it_with_why_and_renders_nothing(
    studio_settings, monkeypatch
):
    # A full-size captioner version: its checkpoints come from the environment of each process.
    version = ModelVersion.objects.create(kind=ModelKind.CAPTIONER, name="full base", profile="full")
    monkeypatch.setenv("ALBUMGEN_CAPTIONER", "org/captioner-the-web-resolves")
    covers = make_covers(1)
    generation_round = services.round_create(
        name="pinned", covers=covers, captioner_version=version, variants_per_cover=2, seed=3
    )
    monkeypatch.setenv("ALBUMGEN_CAPTIONER", "org/captioner-this-worker-resolves")

    assert run_batch(generation_round, covers[0]) == 0
    errors = set(generation_round.variants.values_list("status", "error"))
    assert len(errors) == 1
    status, error = errors.pop()
    assert status == VariantStatus.FAILED
    assert "org/captioner-this-worker-resolves" in error and generation_round.config_fingerprint in error
    assert "ALBUMGEN_CAPTIONER" in error
    assert audio_files(studio_settings) == []
