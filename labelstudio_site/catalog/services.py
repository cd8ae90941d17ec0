"""Writes of the catalog: importing MusicOSet (rows and cover files)."""

import hashlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

from django.core.files.base import ContentFile
from django.db import models, transaction
from PIL import Image, UnidentifiedImageError

from generation.features import features_from_mapping
from generation.musicoset import MusicOSetCatalog, ReadReport, read_musicoset
from labelstudio_site.catalog.models import Album, Artist, Song, Track
from labelstudio_site.catalog.selectors import album_list

# Rows per INSERT: well under SQLite's 32766 bound variables for the widest model (Album, 16 columns).
BATCH_SIZE = 500
COVER_EXTENSIONS = {".jpg": ".jpg", ".jpeg": ".jpg", ".png": ".png", ".webp": ".webp"}

_M = TypeVar("_M", bound=models.Model)


@dataclass(frozen=True)
class EntityCounts:
    created: int
    updated: int

    @property
    def total(self) -> int:
        return self.created + self.updated


@dataclass(frozen=True)
class CatalogImportResult:
    """What an import did: the reader's report (counts per file, skipped rows) and the rows and files it wrote."""

    report: ReadReport
    artists: EntityCounts
    albums: EntityCounts
    songs: EntityCounts
    tracks: int
    genres: list[str]
    covers_stored: int
    covers_new_files: int
    covers_unreadable: list[str] = field(default_factory=list)


def catalog_import(*, directory: str | Path, covers_dir: str | Path | None = None) -> CatalogImportResult:
    """Import (or re-import) a MusicOSet directory: rows are matched on their MusicOSet ids and updated, never
    duplicated; an album's tracks and artist links are replaced by the files' ones; covers are copied into media
    storage under a content-hash name, so an unchanged cover is never written twice. All rows are written in one
    transaction; the files are read before it opens, so missing input touches no database.

    Args:
        directory: the MusicOSet folder (``albums.csv``, ``artists.csv``, ``songs.csv``, ``tracks.csv``,
            ``acoustic_features.csv``, optional ``splits.csv``).
        covers_dir: an optional folder of ``<album_id>.<jpg|jpeg|png|webp>`` covers, for real MusicOSet whose
            ``image_url`` values are http URLs. Default: none (relative ``image_url`` paths only).

    Raises:
        MusicOSetError: when the folder, a required file or a column is missing; nothing is written then.
    """
    return _catalog_write(catalog=read_musicoset(directory, covers_dir=covers_dir))


@transaction.atomic
def _catalog_write(*, catalog: MusicOSetCatalog) -> CatalogImportResult:
    artist_counts, artist_pk = _upsert(
        Artist,
        [
            Artist(
                musicoset_id=artist.artist_id,
                name=artist.name,
                followers=artist.followers,
                popularity=artist.popularity,
                artist_type=artist.artist_type,
                main_genre=artist.main_genre or "",
                genres=list(artist.genres),
                image_url=artist.image_url,
            )
            for artist in catalog.artists
        ],
        keys=[artist.artist_id for artist in catalog.artists],
        update_fields=["name", "followers", "popularity", "artist_type", "main_genre", "genres", "image_url"],
    )
    song_counts, song_pk = _upsert(
        Song,
        [
            Song(
                musicoset_id=song.song_id,
                name=song.name,
                billboard=song.billboard,
                artist_names=list(song.artist_names),
                popularity=song.popularity,
                explicit=song.explicit,
                song_type=song.song_type,
                genre=song.genre or "",
                features=asdict(song.features) if song.features else None,
            )
            for song in catalog.songs
        ],
        keys=[song.song_id for song in catalog.songs],
        update_fields=["name", "billboard", "artist_names", "popularity", "explicit", "song_type", "genre", "features"],
    )
    covers, new_files, unreadable = _covers_store(catalog)
    album_counts, album_pk = _upsert(
        Album,
        [
            Album(
                musicoset_id=album.album_id,
                name=album.name,
                billboard=album.billboard,
                artist_names=list(album.artist_names),
                popularity=album.popularity,
                total_tracks=album.total_tracks,
                album_type=album.album_type,
                genre=album.genre,
                image_url=album.image_url,
                cover=covers.get(album.album_id, ""),
                split=album.split,
                features=album.features.to_dict(),
                track_count=len(album.song_ids),
            )
            for album in catalog.albums
        ],
        keys=[album.album_id for album in catalog.albums],
        update_fields=[
            "name",
            "billboard",
            "artist_names",
            "popularity",
            "total_tracks",
            "album_type",
            "genre",
            "image_url",
            "cover",
            "split",
            "features",
            "track_count",
        ],
    )

    album_pks = [album_pk[album.album_id] for album in catalog.albums]
    song_pks = [song_pk[song.song_id] for song in catalog.songs]
    # The files are the truth for the albums and songs they name: their links are replaced, not merged.
    for chunk in _chunks(album_pks):
        Track.objects.filter(album_id__in=chunk).delete()
        Album.artists.through.objects.filter(album_id__in=chunk).delete()
    for chunk in _chunks(song_pks):
        Song.artists.through.objects.filter(song_id__in=chunk).delete()
    Track.objects.bulk_create(
        [
            Track(
                album_id=album_pk[track.album_id],
                song_id=song_pk[track.song_id],
                track_number=track.track_number,
                release_date=track.release_date,
                release_date_precision=track.release_date_precision,
            )
            for track in catalog.tracks
        ],
        batch_size=BATCH_SIZE,
    )
    Album.artists.through.objects.bulk_create(
        [
            Album.artists.through(album_id=album_pk[album.album_id], artist_id=artist_pk[artist_id])
            for album in catalog.albums
            for artist_id in dict.fromkeys(album.artist_ids)
            if artist_id in artist_pk
        ],
        batch_size=BATCH_SIZE,
    )
    Song.artists.through.objects.bulk_create(
        [
            Song.artists.through(song_id=song_pk[song.song_id], artist_id=artist_pk[artist_id])
            for song in catalog.songs
            for artist_id in dict.fromkeys(song.artist_ids)
            if artist_id in artist_pk
        ],
        batch_size=BATCH_SIZE,
    )
    return CatalogImportResult(
        report=catalog.report,
        artists=artist_counts,
        albums=album_counts,
        songs=song_counts,
        tracks=len(catalog.tracks),
        genres=catalog.genres,
        covers_stored=len(covers),
        covers_new_files=new_files,
        covers_unreadable=unreadable,
    )


def _upsert(
    model: type[_M], rows: Sequence[_M], *, keys: Sequence[str], update_fields: list[str]
) -> tuple[EntityCounts, dict[str, int]]:
    """Insert or update rows on their ``musicoset_id``; return the counts and the primary key of every id."""
    manager = model._default_manager
    # The catalog tables hold nothing but imported rows: loading all ids beats an IN list of 20,000 values.
    existing = set(manager.values_list("musicoset_id", flat=True))
    manager.bulk_create(
        rows, batch_size=BATCH_SIZE, update_conflicts=True, unique_fields=["musicoset_id"], update_fields=update_fields
    )
    pks: dict[str, int] = dict(manager.values_list("musicoset_id", "pk"))
    created = sum(key not in existing for key in keys)
    return EntityCounts(created=created, updated=len(keys) - created), pks


def _chunks(values: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(values), BATCH_SIZE):
        yield values[start : start + BATCH_SIZE]


def _covers_store(catalog: MusicOSetCatalog) -> tuple[dict[str, str], int, list[str]]:
    """Copy every album's cover file into media storage; return {album id: stored name}, new files, unreadable ids.

    An album whose cover was not found this time keeps the cover an earlier import stored.
    """
    storage = Album._meta.get_field("cover").storage
    previous = {key: name for key, name in Album.objects.values_list("musicoset_id", "cover") if name}
    stored: dict[str, str] = {}
    new_files = 0
    unreadable: list[str] = []
    for album in catalog.albums:
        if album.cover_path is None:
            if album.album_id in previous:
                stored[album.album_id] = previous[album.album_id]
            continue
        data = album.cover_path.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
        except (UnidentifiedImageError, OSError, SyntaxError):
            unreadable.append(album.album_id)
            continue
        extension = COVER_EXTENSIONS.get(album.cover_path.suffix.lower(), album.cover_path.suffix.lower())
        # A content-hash name: re-imports find the file already there, and identical covers share one file.
        name = f"catalog/covers/{hashlib.sha256(data).hexdigest()[:32]}{extension}"
        if not storage.exists(name):
            name = storage.save(name, ContentFile(data))
            new_files += 1
        stored[album.album_id] = name
    return stored, new_files, unreadable


def catalog_index_build(*, profile: str, embedder: str | None, out_dir: Path) -> dict[str, object]:
    """Embed every album cover of the catalog and save the retrieval index (tied to the embedder's id).

    Args:
        profile: ``tiny`` or ``full``; picks the embedder unless ``embedder`` names one.
        embedder: a CLIP hub id or local path, or None for the profile's.
        out_dir: where the index is written; a previous index there is replaced.

    Raises:
        ValueError: the catalog has no album with a cover.
    """
    albums = list(album_list(with_cover=True))
    if not albums:
        raise ValueError("the catalog has no album with a cover: run import_musicoset first")
    # Imported here so that the web process, which imports this module, never loads torch.
    from generation.config import PipelineConfig
    from generation.images import load_cover_image
    from generation.pipeline import load_embedder
    from generation.retrieve import CatalogEntry, RetrievalIndex

    genres = sorted({album.genre for album in albums})
    model = load_embedder(PipelineConfig(profile=profile, embedder=embedder))
    images = []
    for album in albums:
        with album.cover.open("rb") as cover:
            images.append(load_cover_image(cover.read()))
    entries = [
        CatalogEntry(album.musicoset_id, album.name, album.genre, features_from_mapping(album.features, genres))
        for album in albums
    ]
    RetrievalIndex.build(model.embed(images), entries, embedder_id=model.model_id).save(out_dir)
    return {"covers": len(entries), "genres": len(genres), "embedder_id": model.model_id}
