"""The whole pipeline on the tiny profile: report.json, reproducibility by seed, the CLI and its errors."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from generation import config as generation_config
from generation.__main__ import main as cli
from generation.config import PipelineConfig
from generation.images import load_cover_image
from generation.loading import ModelLoadError
from generation.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "fixtures" / "musicoset"
COVER = sorted((CATALOG / "covers").glob("*.png"))[3]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("index")
    assert cli(["build-index", "--catalog", str(CATALOG), "--out", str(out)]) == 0
    return out


def run_once(index_dir: Path, seed: int, **config) -> tuple[dict, list[bytes]]:
    pipeline = Pipeline.load(PipelineConfig(duration_s=4.0, **config), index_dir=index_dir)
    result = pipeline.run(load_cover_image(COVER), variants=3, seed=seed)
    report = result.report()
    del report["timings_s"]
    return report, [v.audio.data for v in result.variants if v.audio]


def test_same_cover_seed_and_config_reproduce_json_and_audio_bytes(index_dir):
    first, first_audio = run_once(index_dir, seed=21)
    again, again_audio = run_once(index_dir, seed=21)
    assert first == again
    assert first_audio == again_audio
    assert len(first_audio) == 3


def test_another_seed_changes_json_and_audio(index_dir):
    first, first_audio = run_once(index_dir, seed=21)
    other, other_audio = run_once(index_dir, seed=22)
    assert [v["raw_text"] for v in first["variants"]] != [v["raw_text"] for v in other["variants"]]
    assert set(first_audio).isdisjoint(other_audio)


def test_run_writes_audio_and_an_explainable_report(index_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli(
        [
            "run",
            str(COVER),
            "--variants",
            "4",
            "--seed",
            "5",
            "--duration",
            "3",
            "--index",
            str(index_dir),
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert len(report["neighbours"]) == 5
    distances = [n["distance"] for n in report["neighbours"]]
    assert distances == sorted(distances)
    assert report["context"]["genre"] in {n["genre"] for n in report["neighbours"]}
    assert "Albums with similar covers" in report["instruction"]
    assert set(report["timings_s"]) == {"embed", "retrieve", "caption", "prompt", "render", "encode"}
    for variant in report["variants"]:
        assert json.loads(variant["raw_text"]) == variant["features"]
        assert variant["features"]["genre"] in variant["prompt"]
        samples, rate = soundfile.read(io.BytesIO(Path(variant["audio_path"]).read_bytes()))
        assert len(samples) / rate == pytest.approx(3.0, rel=0.05)
        assert variant["duration_s"] == pytest.approx(3.0, rel=0.05)
        assert len(variant["peaks"]) == 200 and max(variant["peaks"]) > 0.05


def test_a_result_carries_the_covers_embedding_and_its_report_stays_json(index_dir):
    pipeline = Pipeline.load(PipelineConfig(duration_s=2.0), index_dir=index_dir)
    image = load_cover_image(COVER)
    result = pipeline.run(image, variants=1, seed=4)
    assert result.embedder_id == pipeline.embedder.model_id
    assert result.embedding.dtype == np.float32 and result.embedding.shape == (pipeline.embedder.dimension,)
    assert np.linalg.norm(result.embedding) == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(result.embedding, pipeline.embedder.embed([image])[0], atol=1e-6)
    report = json.loads(json.dumps(result.report()))
    assert report["embedder_id"] == result.embedder_id
    assert report["embedding_dimensions"][result.embedder_id] == pipeline.embedder.dimension
    assert "embedding" not in report and "embeddings" not in report


def test_a_cover_embedder_is_found_by_id_and_an_unknown_one_is_a_sentence(index_dir):
    pipeline = Pipeline.load(PipelineConfig(duration_s=2.0), index_dir=index_dir)
    for embedder in pipeline.cover_embedders:
        assert pipeline.cover_embedder(embedder.model_id).model_id == embedder.model_id
    with pytest.raises(ValueError, match="reads covers embedded by another/clip, but the captioner's pipeline embeds"):
        pipeline.cover_embedder("another/clip")


def test_zero_shot_has_no_neighbours_or_context(index_dir):
    report, audio = run_once(index_dir, seed=3, rag=False)
    assert report["neighbours"] == [] and report["context"] is None
    assert "Albums with similar covers" not in report["instruction"]
    assert len(audio) == 3


def test_a_bad_cover_is_refused_with_a_sentence_and_writes_nothing(index_dir, tmp_path, capsys):
    bad = tmp_path / "cover.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    assert cli(["run", str(bad), "--index", str(index_dir), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: the file is not an image")
    assert not (tmp_path / "out").exists()


def test_a_missing_index_tells_how_to_build_one(tmp_path, capsys):
    assert cli(["run", str(COVER), "--index", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    assert "build-index" in capsys.readouterr().err


def test_a_missing_embedder_path_is_refused(index_dir, tmp_path, capsys):
    code = cli(
        [
            "run",
            str(COVER),
            "--index",
            str(index_dir),
            "--embedder",
            str(tmp_path / "other-clip"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "embedder path" in capsys.readouterr().err


def test_evaluate_prints_the_table(index_dir, capsys):
    assert cli(["evaluate", "--index", str(index_dir), "--limit", "3"]) == 0
    table = capsys.readouterr().out
    for method in (
        "zero-shot constrained",
        "zero-shot unconstrained",
        "RAG constrained",
        "RAG unconstrained",
        "retrieval baseline K=1",
        "retrieval baseline K=20",
    ):
        assert method in table
    assert "3/3" in table


def test_the_musicgen_renderer_reproduces_bytes_too(index_dir):
    first, first_audio = run_once(index_dir, seed=4, renderer="musicgen")
    again, again_audio = run_once(index_dir, seed=4, renderer="musicgen")
    assert first == again and first_audio == again_audio
    assert [v["prompt"] for v in first["variants"]] == [v["prompt"] for v in again["variants"]]


def test_the_fingerprint_covers_the_checkpoints_each_process_resolves(monkeypatch, tmp_path):
    for variable in ("ALBUMGEN_EMBEDDER", "ALBUMGEN_CAPTIONER", "ALBUMGEN_MUSICGEN"):
        monkeypatch.delenv(variable, raising=False)
    full, trained, tiny = (PipelineConfig(profile=profile) for profile in ("full", "trained", "tiny"))
    before = {config.profile: config.fingerprint() for config in (full, trained, tiny)}

    # Two worker environments: another full-size captioner resolved from the environment.
    monkeypatch.setenv("ALBUMGEN_CAPTIONER", "/models/another-internvl")
    assert full.resolved_checkpoints()["captioner"] == "/models/another-internvl"
    assert full.fingerprint() != before["full"]
    assert trained.fingerprint() == before["trained"]  # offline profiles load what fixtures/ ships, whatever is set

    # Two checkouts whose shipped embedder weights differ: the trained profile's fingerprint follows the weights.
    clip = tmp_path / "clip"
    clip.mkdir()
    weights = bytearray((generation_config.SMALL_DIR / "clip" / "model.safetensors").read_bytes())
    weights[-1] ^= 1
    (clip / "model.safetensors").write_bytes(bytes(weights))
    monkeypatch.setattr(generation_config, "SMALL_DIR", tmp_path)
    assert trained.fingerprint() != before["trained"]
    assert tiny.fingerprint() == before["tiny"]

    (clip / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"embedder weights are missing .*build_embedder\.py"):
        trained.fingerprint()
