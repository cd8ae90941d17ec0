"""Preference exports: submitted ratings and rankings -> TRL preference pairs (JSONL, Parquet), raw ratings (CSV) and
the CLIP embeddings of the pairs' covers (Parquet).

Streamed end to end: ratings come from a server-side cursor in task order, pairs are written as they are made, and
the Parquet file is filled in row groups as the rows pass, so memory stays flat whatever the export's size (1M ratings:
see benchmarks/export_preferences.py). Files go to a staging folder that becomes the snapshot's folder only when
every file is complete; the row says ``building`` until then.
"""

import csv
import dataclasses
import hashlib
import io
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from generation.config import OFFLINE_PROFILES, PipelineConfig, offline_captioner_id
from generation.features import AcousticFeatures
from generation.instruction import build_instruction
from labelstudio_site.catalog.selectors import catalog_genres
from labelstudio_site.studio.models import (
    Assignment,
    AssignmentStatus,
    Cover,
    GenerationRound,
    LabelerExclusion,
    LabelTask,
    Rating,
    Variant,
)
from labelstudio_site.studio.selectors import cover_embedder_ids, cover_embeddings_get
from labelstudio_site.training.models import DatasetExport, ExportKind, ExportStatus, ModelVersion
from rlhf.pairs import PREFERENCE_FORMAT, Answer, PairOptions, gold_agreement, task_pairs
from rlhf.snapshot import CHUNK_BYTES, write_jsonl_snapshot

# Tasks whose variants are fetched in one query: ~2,000 variant ids per IN list at 4 variants a task.
TASK_BATCH = 500
# Covers per query and per row group of covers.parquet: ~30 MB of float32 vectors at a time (a 512-d CLIP and an
# 896-d captioner vector a cover at full size).
COVER_BATCH = 5_000
RATING_COLUMNS = (
    "rating_id",
    "round_id",
    "task_id",
    "cover_id",
    "assignment_id",
    "labeler_id",
    "variant_id",
    "musicality",
    "compatibility",
    "rank",
    "listened_s",
    "submitted_at",
    "excluded",
)


class ExportError(ValueError):
    """An export that cannot be made; the message says why in a sentence."""


@dataclass
class PreferenceExportOptions(PairOptions):
    """Which answers go into the export, and how they become pairs (``rlhf.pairs.PairOptions``)."""

    round_ids: list[int] = field(default_factory=list, metadata={"help": "Rounds to export (empty: every round)."})
    exclude_labeler_ids: list[int] = field(
        default_factory=list, metadata={"help": "Labelers left out, besides those excluded on the agreement page."}
    )
    min_gold_agreement: float | None = field(
        default=None,
        metadata={"help": "Leave out labelers whose mean rank correlation with gold rankings is below this."},
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.min_gold_agreement is not None and not -1 <= self.min_gold_agreement <= 1:
            raise ValueError("min_gold_agreement must be between -1 and 1")


def captioner_base_id(version: ModelVersion) -> str:
    """The base model a captioner version's outputs come from (the adapter sits on it)."""
    if version.base_model_id:
        return version.base_model_id
    if version.profile in OFFLINE_PROFILES:
        return offline_captioner_id(version.profile)
    return PipelineConfig(profile="full").checkpoint("captioner")


def _rounds(options: PreferenceExportOptions) -> list[GenerationRound]:
    rounds = GenerationRound.objects.select_related("captioner_version").order_by("pk")
    if options.round_ids:
        rounds = rounds.filter(pk__in=options.round_ids)
        missing = sorted(set(options.round_ids) - set(rounds.values_list("pk", flat=True)))
        if missing:
            raise ExportError(f"there is no round {', '.join(map(str, missing))}")
    return list(rounds)


def _excluded_labelers(options: PreferenceExportOptions, round_ids: list[int]) -> tuple[set[int], dict[int, float]]:
    excluded = set(LabelerExclusion.objects.values_list("labeler_id", flat=True)) | set(options.exclude_labeler_ids)
    gold_answers: list[tuple[int, Sequence[int], dict[int, int]]] = []
    gold_ratings = (
        Rating.objects.filter(
            assignment__status=AssignmentStatus.SUBMITTED,
            assignment__task__round_id__in=round_ids,
            assignment__task__gold_ranking__isnull=False,
        )
        .order_by("assignment_id")
        .values_list("assignment_id", "assignment__labeler_id", "assignment__task__gold_ranking", "variant_id", "rank")
    )
    for _, rows in groupby(gold_ratings.iterator(chunk_size=5000), key=lambda row: row[0]):
        group = list(rows)
        gold_answers.append((group[0][1], group[0][2] or [], {row[3]: row[4] for row in group}))
    gold = gold_agreement(gold_answers)
    if options.min_gold_agreement is not None:
        excluded |= {labeler for labeler, score in gold.items() if score < options.min_gold_agreement}
    return excluded, gold


def _instruction(
    stored_neighbours: list[dict[str, Any]], generation_round: GenerationRound, genres: Sequence[str]
) -> str:
    """The instruction the captioner saw for this cover: rebuilt from the stored neighbours (deterministic)."""
    # Imported here: generation.retrieve loads FAISS, which the web process (it imports this module) never needs.
    from generation.retrieve import Neighbour, rag_instruction

    # The stored neighbours' features were validated when the variant was generated; rebuilt without re-checking.
    neighbours = [
        Neighbour(n["album_id"], n["name"], n["genre"], n["distance"], AcousticFeatures(**n["features"]))
        for n in stored_neighbours
    ]
    if not generation_round.render_settings.get("rag", True) or not neighbours:
        return build_instruction(genres=genres)
    return rag_instruction(genres, neighbours)


@dataclass
class _Counts:
    ratings: int = 0
    answers_used: int = 0
    tasks: int = 0
    pairs: int = 0
    covers: set[int] = field(default_factory=set)
    labelers: set[int] = field(default_factory=set)

    def as_dict(self, excluded: set[int]) -> dict[str, int]:
        return {
            "pairs": self.pairs,
            "ratings": self.ratings,
            "ratings_used": self.answers_used,
            "tasks_with_pairs": self.tasks,
            "covers": len(self.covers),
            "labelers": len(self.labelers),
            "labelers_excluded": len(excluded),
        }


def _pair_rows(
    options: PreferenceExportOptions,
    rounds: dict[int, GenerationRound],
    excluded: set[int],
    counts: _Counts,
    ratings_csv: Any,
) -> Iterator[dict[str, Any]]:
    genres = catalog_genres()
    ratings = (
        Rating.objects.filter(
            assignment__status=AssignmentStatus.SUBMITTED, assignment__task__round_id__in=list(rounds)
        )
        .order_by("assignment__task_id", "assignment_id", "variant_id")
        .values_list(
            "pk",
            "assignment__task__round_id",
            "assignment__task_id",
            "assignment__task__cover_id",
            "assignment_id",
            "assignment__labeler_id",
            "variant_id",
            "musicality",
            "compatibility",
            "rank",
            "listened_s",
        )
    )
    cover_paths: dict[int, str] = {}
    media_root = _media_root()
    batch: list[tuple[int, list[tuple[Any, ...]]]] = []

    def flush() -> Iterator[dict[str, Any]]:
        variant_ids = {row[6] for _, rows in batch for row in rows}
        variant_rows = Variant.objects.filter(pk__any_of=variant_ids).values_list("pk", "raw_text", "audio")
        variants: dict[int, tuple[str, str | None]] = {
            pk: (raw_text, f"{media_root}/{audio}" if audio else None) for pk, raw_text, audio in variant_rows
        }
        # The variants of a task share their cover's neighbours: one variant's are enough to rebuild the instruction.
        neighbours = dict(
            Variant.objects.filter(pk__any_of={rows[0][6] for _, rows in batch}).values_list("pk", "neighbours")
        )
        # Submission times per assignment, not per rating: parsing 1M timestamps cost ~7 s of a 1M-rating export.
        assignment_ids = {row[4] for _, rows in batch for row in rows}
        submitted = {
            pk: at.isoformat() if at else ""
            for pk, at in Assignment.objects.filter(pk__any_of=assignment_ids).values_list("pk", "submitted_at")
        }
        for _, rows in batch:
            ratings_csv.writerows([*row, submitted[row[4]], row[5] in excluded] for row in rows)
        missing_covers = {rows[0][3] for _, rows in batch} - set(cover_paths)
        for cover_id, image in Cover.objects.filter(pk__any_of=missing_covers).values_list("pk", "image"):
            cover_paths[cover_id] = f"{media_root}/{image}"
        for task_id, rows in batch:
            round_id, cover_id = rows[0][1], rows[0][3]
            answers = [Answer(row[5], row[6], row[7], row[8], row[9]) for row in rows if row[5] not in excluded]
            pairs = list(task_pairs(answers, options))
            counts.answers_used += len(answers)
            if not pairs:
                continue
            counts.tasks += 1
            counts.covers.add(cover_id)
            prompt = _instruction(neighbours[rows[0][6]], rounds[round_id], genres)
            images = [cover_paths[cover_id]]
            for pair in pairs:
                chosen, rejected = variants[pair.chosen], variants[pair.rejected]
                counts.pairs += 1
                counts.labelers.update(pair.labeler_ids)
                yield {
                    "prompt": prompt,
                    "chosen": chosen[0],
                    "rejected": rejected[0],
                    "images": images,
                    "margin": pair.margin,
                    "round_id": round_id,
                    "task_id": task_id,
                    "cover_id": cover_id,
                    "chosen_variant_id": pair.chosen,
                    "rejected_variant_id": pair.rejected,
                    "labeler_ids": list(pair.labeler_ids),
                    "chosen_audio": chosen[1],
                    "rejected_audio": rejected[1],
                }
        batch.clear()

    for task_id, group in groupby(ratings.iterator(chunk_size=10_000), key=lambda row: row[2]):
        rows = list(group)
        counts.ratings += len(rows)
        batch.append((task_id, rows))
        if len(batch) >= TASK_BATCH:
            yield from flush()
    yield from flush()


def _media_root() -> str:
    """The absolute media folder the files' paths start with (``images``, audio, covers.parquet's ``image``)."""
    return str(Path(settings.MEDIA_ROOT).resolve())


def _covers_embedders(cover_ids: list[int]) -> list[str]:
    """The embedders every embedded cover of the export has a vector from (its round's CLIP and captioner), in name
    order; none when no cover has one.

    A cover also in a round of another pipeline profile has that profile's vectors too, so the embedders are those
    common to all embedded covers, not any embedder seen.

    Raises:
        ExportError: no embedder is common to them all (rounds of different profiles).
    """
    common: set[str] | None = None
    seen: set[str] = set()
    for start in range(0, len(cover_ids), COVER_BATCH):
        for embedders in cover_embedder_ids(cover_ids=cover_ids[start : start + COVER_BATCH]).values():
            seen.update(embedders)
            common = set(embedders) if common is None else common & set(embedders)
    if common is None:
        return []
    if not common:
        raise ExportError(
            f"the export's covers were embedded by different embedders ({', '.join(sorted(seen))}); export rounds "
            "of one pipeline profile apart"
        )
    return sorted(common)


def _covers_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("cover_id", pa.int64()),
            ("embedder_id", pa.string()),
            ("embedding", pa.list_(pa.float32())),
            ("image", pa.string()),
        ]
    )


def _write_covers(path: Path, cover_ids: list[int]) -> None:
    """One row per cover and embedder, in cover id order, a row group per ``COVER_BATCH`` covers; a cover rendered
    before embeddings were stored gets one row with null ``embedding`` and ``embedder_id``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    embedder_ids = _covers_embedders(cover_ids)
    media_root = _media_root()
    schema = _covers_schema()
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, len(cover_ids), COVER_BATCH):
            chunk = cover_ids[start : start + COVER_BATCH]
            images = dict(Cover.objects.filter(pk__any_of=chunk).values_list("pk", "image"))
            vectors = {
                embedder: cover_embeddings_get(cover_ids=chunk, embedder_id=embedder) for embedder in embedder_ids
            }
            rows: list[tuple[int, str | None, Any]] = []
            for cover_id in chunk:
                found = [embedder for embedder in embedder_ids if cover_id in vectors[embedder]]
                rows += [(cover_id, embedder, vectors[embedder][cover_id]) for embedder in found] or [
                    (cover_id, None, None)
                ]
            columns = {
                "cover_id": [cover_id for cover_id, _, _ in rows],
                "embedder_id": [embedder for _, embedder, _ in rows],
                "embedding": [vector for _, _, vector in rows],
                "image": [f"{media_root}/{images[cover_id]}" for cover_id, _, _ in rows],
            }
            writer.write_table(pa.table(columns, schema=schema))


def _parquet_schema() -> Any:
    import pyarrow as pa

    ids = ("round_id", "task_id", "cover_id", "chosen_variant_id", "rejected_variant_id")
    return pa.schema(
        [
            ("prompt", pa.string()),
            ("chosen", pa.string()),
            ("rejected", pa.string()),
            ("images", pa.list_(pa.string())),
            ("margin", pa.float64()),
            *[(name, pa.int64()) for name in ids],
            ("labeler_ids", pa.list_(pa.int64())),
            ("chosen_audio", pa.string()),
            ("rejected_audio", pa.string()),
        ]
    )


class _ParquetFromJsonl:
    """Appends each chunk of JSONL lines to a Parquet file as one row group, parsed by Arrow's C++ JSON reader.

    Called on the JSONL writer's thread (``write_jsonl_snapshot``'s ``on_chunk``), without the GIL for the parse and
    the encoding: converting row dicts in Python on the main thread had cost a quarter of the export.
    """

    def __init__(self, path: Path) -> None:
        import pyarrow.json as pa_json
        import pyarrow.parquet as pq

        self._schema = _parquet_schema()
        self._writer = pq.ParquetWriter(path, self._schema)
        self._read_json = pa_json.read_json
        self._read_options = pa_json.ReadOptions(use_threads=False, block_size=CHUNK_BYTES + (1 << 20))
        self._parse_options = pa_json.ParseOptions(explicit_schema=self._schema, unexpected_field_behavior="error")

    def __call__(self, chunk: bytes) -> None:
        table = self._read_json(io.BytesIO(chunk), read_options=self._read_options, parse_options=self._parse_options)
        self._writer.write_table(table.select(self._schema.names).cast(self._schema))

    def close(self) -> None:
        self._writer.close()


def preference_export_start(
    *, name: str, options: PreferenceExportOptions, created_by: User | None = None
) -> DatasetExport:
    """Check what can be checked at once and record the export as building (the files are written next).

    Raises:
        ExportError: unknown rounds, rounds of captioners with different base models, no submitted answers.
    """
    rounds = _rounds(options)
    bases = sorted({captioner_base_id(r.captioner_version) for r in rounds})
    if len(bases) > 1:
        raise ExportError(
            f"the rounds hold outputs of captioners on different base models ({', '.join(bases)}); export them apart"
        )
    submitted = LabelTask.objects.filter(round__in=rounds, assignments__status=AssignmentStatus.SUBMITTED).exists()
    if not submitted:
        raise ExportError("the export has no pairs: no label task of these rounds has a submitted answer yet")
    return DatasetExport.objects.create(
        kind=ExportKind.PREFERENCES,
        status=ExportStatus.BUILDING,
        name=name.strip() or f"preferences {options.source} {options.axis}",
        options={**dataclasses.asdict(options), "format": PREFERENCE_FORMAT, "round_ids": [r.pk for r in rounds]},
        captioner_base_model_id=bases[0],
        created_by=created_by,
    )


def preference_export_build(*, export: DatasetExport) -> DatasetExport:
    """Write the files of a building export and mark it ready (or failed with its reason; no files then).

    Raises:
        ExportError: the filters left no pair (the export is marked failed with that sentence first).
    """
    stored = {k: v for k, v in export.options.items() if k != "format"}
    options = PreferenceExportOptions(**stored)
    rounds = {r.pk: r for r in _rounds(options)}
    relative = Path("exports") / f"preferences-{export.pk}"
    final = settings.ALBUMGEN_ARTIFACTS_DIR / relative
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".export-{export.pk}-", dir=final.parent))
    try:
        excluded, gold = _excluded_labelers(options, list(rounds))
        counts = _Counts()
        with (staging / "ratings.csv").open("w", newline="") as raw:
            ratings_csv = csv.writer(raw)
            ratings_csv.writerow(RATING_COLUMNS)
            rows = _pair_rows(options, rounds, excluded, counts, ratings_csv)
            parquet = _ParquetFromJsonl(staging / "pairs.parquet")
            try:
                snapshot = write_jsonl_snapshot(rows, staging / "pairs.jsonl", on_chunk=parquet)
            finally:
                parquet.close()
        if snapshot.rows == 0:
            raise ExportError(
                f"the export has no pairs: {counts.ratings} ratings of {len(rounds)} round(s) gave none with "
                f"source {options.source}, axis {options.axis}, min margin {options.min_margin:g} and "
                f"{len(excluded)} labeler(s) excluded"
            )
        # Written once each at the end: a cover is in the file only when one of its tasks gave a pair.
        _write_covers(staging / "covers.parquet", sorted(counts.covers))
        files = {"covers": "covers.parquet", "jsonl": "pairs.jsonl", "parquet": "pairs.parquet", "csv": "ratings.csv"}
        # The checksum covers the files in name order. covers.parquet, written last, comes first, so pairs.jsonl is
        # read back to be hashed after it (SHA-256 runs at ~1.5 GB/s here: ~3 s of the 4.1 GB of 1.5M pairs).
        checksum = hashlib.sha256()
        for name in sorted(files.values()):
            with (staging / name).open("rb") as handle:
                while block := handle.read(8 << 20):
                    checksum.update(block)
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)
        DatasetExport.objects.filter(pk=export.pk).update(status=ExportStatus.FAILED, error=str(exc)[:2000])
        export.refresh_from_db()
        raise
    with transaction.atomic():
        export.status = ExportStatus.READY
        export.counts = {**counts.as_dict(excluded), "gold_scored_labelers": len(gold)}
        export.directory, export.files, export.checksum = str(relative), files, checksum.hexdigest()
        export.save(update_fields=["status", "counts", "directory", "files", "checksum"])
    return export


def export_file(export: DatasetExport, fmt: str) -> Path:
    """The path of one of a ready export's files.

    Raises:
        ExportError: the export is not ready or has no such format.
    """
    if export.status != ExportStatus.READY or fmt not in export.files:
        raise ExportError(f"export {export.pk} has no {fmt} file ({export.status})")
    return settings.ALBUMGEN_ARTIFACTS_DIR / export.directory / export.files[fmt]
