"""Read MusicOSet as published: tab-separated files, Python-literal artist and genre columns, Spotify features.

MusicOSet (Silva, Rigo and Moro, 2019) ships ``artists.csv``, ``albums.csv``, ``songs.csv``, ``tracks.csv`` and
``acoustic_features.csv``; every field may be double-quoted. Columns are looked up by their header names, so their
order does not matter and extra columns are ignored. Rows that cannot be trusted are skipped and reported with
file, line and reason; nothing else is dropped silently.

Rules the reader applies (the README's catalog section repeats them):

- A feature outside the range the captioner's schema allows (``generation.features``) skips the song's feature
  row: key -1 (Spotify's "no key detected"), time signatures outside 3-7 (Spotify writes 0 or 1 when none was
  detected; clamping would invent a metre), tempo outside 40-220 BPM (0 means undetected), loudness above 0 dB.
- An album's features: the mean of its tracks' 0-1 features, tempo and loudness; the most common key, mode and
  time signature, ties going to the earliest track. Its genre: the ``main_genre`` of its first artist that has
  one, else of the first artist of its tracks that has one. Albums without a genre or without any track with
  features are reported and dropped, and so are their tracks.
- Split: ``splits.csv`` (``album_id<TAB>split``, split ``train`` or ``test``) when present; albums it does not
  list get a split derived from a hash of the album id (15% test), stable across machines and catalog versions.
- Covers: a file ``<album_id>.<jpg|jpeg|png|webp>`` in ``covers_dir`` when given, else a relative ``image_url``
  resolved inside the catalog directory (the fixture's ``covers/<album_id>.png``). Real MusicOSet's http URLs are
  never fetched.
"""

import ast
import csv
import hashlib
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from generation.features import (
    LOUDNESS_RANGE,
    MEAN_DIGITS,
    MODES,
    PITCH_CLASSES,
    TEMPO_RANGE,
    TIME_SIGNATURE_RANGE,
    UNIT_FEATURES,
    AcousticFeatures,
)

ARTISTS_FILE = "artists.csv"
ALBUMS_FILE = "albums.csv"
SONGS_FILE = "songs.csv"
TRACKS_FILE = "tracks.csv"
FEATURES_FILE = "acoustic_features.csv"
SPLITS_FILE = "splits.csv"

# The columns the reader needs from each file, as MusicOSet names them.
COLUMNS: dict[str, tuple[str, ...]] = {
    ARTISTS_FILE: ("artist_id", "name", "followers", "popularity", "artist_type", "main_genre", "genres", "image_url"),
    ALBUMS_FILE: ("album_id", "name", "billboard", "artists", "popularity", "total_tracks", "album_type", "image_url"),
    SONGS_FILE: ("song_id", "song_name", "billboard", "artists", "popularity", "explicit", "song_type"),
    TRACKS_FILE: ("song_id", "album_id", "track_number", "release_date", "release_date_precision"),
    FEATURES_FILE: (
        "song_id",
        "duration_ms",
        "key",
        "mode",
        "time_signature",
        "acousticness",
        "danceability",
        "energy",
        "instrumentalness",
        "liveness",
        "loudness",
        "speechiness",
        "valence",
        "tempo",
    ),
    SPLITS_FILE: ("album_id", "split"),
}
REQUIRED_FILES = (ARTISTS_FILE, ALBUMS_FILE, SONGS_FILE, TRACKS_FILE, FEATURES_FILE)
SPLITS = ("train", "test")
TEST_PERCENT = 15
COVER_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
# MusicOSet writes "-" where Spotify knows no genre for an artist.
NO_GENRE = frozenset({"", "-", "nan", "none", "null"})

_T = TypeVar("_T")


class MusicOSetError(Exception):
    """A directory that cannot be read as MusicOSet at all: missing, or lacking a required file or column."""


class _BadRow(ValueError):
    """One row that is skipped; the message is the reason the report gives."""


@dataclass(frozen=True)
class SkippedRow:
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileCounts:
    """Data rows of one file: ``read == kept + skipped``."""

    read: int = 0
    kept: int = 0
    skipped: int = 0


@dataclass
class ReadReport:
    """What the reader did with every file: counts per file, each skipped row, albums that have no cover file."""

    files: dict[str, FileCounts] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)
    albums_without_cover: list[str] = field(default_factory=list)

    def skip(self, file: str, line: int, reason: str) -> None:
        self.files.setdefault(file, FileCounts()).skipped += 1
        self.skipped.append(SkippedRow(file, line, reason))

    def keep(self, file: str) -> None:
        self.files.setdefault(file, FileCounts()).kept += 1

    @property
    def skipped_count(self) -> int:
        return len(self.skipped)


@dataclass(frozen=True)
class Artist:
    artist_id: str
    name: str
    followers: int | None
    popularity: int | None
    artist_type: str
    main_genre: str | None
    genres: tuple[str, ...]
    image_url: str


@dataclass(frozen=True)
class SongFeatures:
    """One song's row of ``acoustic_features.csv``, with key and mode as names; genre comes from the song's album."""

    duration_ms: int
    key: str
    mode: str
    time_signature: int
    tempo: float
    loudness: float
    acousticness: float
    danceability: float
    energy: float
    instrumentalness: float
    liveness: float
    speechiness: float
    valence: float

    def to_acoustic(self, genre: str) -> AcousticFeatures:
        """The song's features in the captioner's contract, under the given genre."""
        values = {name: getattr(self, name) for name in ("tempo", "loudness", *UNIT_FEATURES)}
        return AcousticFeatures(genre=genre, key=self.key, mode=self.mode, time_signature=self.time_signature, **values)


@dataclass(frozen=True)
class Song:
    song_id: str
    name: str
    billboard: str
    artist_ids: tuple[str, ...]
    artist_names: tuple[str, ...]
    popularity: int | None
    explicit: bool
    song_type: str
    features: SongFeatures | None
    genre: str | None
    album_ids: tuple[str, ...]

    @property
    def acoustic_features(self) -> AcousticFeatures | None:
        """The song's features in the captioner's contract, when it has features and a genre."""
        if self.features is None or self.genre is None:
            return None
        return self.features.to_acoustic(self.genre)


@dataclass(frozen=True)
class Track:
    song_id: str
    album_id: str
    track_number: int
    release_date: str
    release_date_precision: str


@dataclass(frozen=True)
class Album:
    album_id: str
    name: str
    billboard: str
    artist_ids: tuple[str, ...]
    artist_names: tuple[str, ...]
    popularity: int | None
    total_tracks: int | None
    album_type: str
    image_url: str
    cover_path: Path | None
    genre: str
    features: AcousticFeatures
    song_ids: tuple[str, ...]
    feature_song_count: int
    split: str


@dataclass
class MusicOSetCatalog:
    """A read catalog: rows in file order, albums with aggregated features, and the report."""

    directory: Path
    artists: list[Artist]
    albums: list[Album]
    songs: list[Song]
    tracks: list[Track]
    report: ReadReport

    @property
    def genres(self) -> list[str]:
        """The genre vocabulary: the sorted distinct album genres."""
        return sorted({album.genre for album in self.albums})


def read_musicoset(directory: str | Path, *, covers_dir: str | Path | None = None) -> MusicOSetCatalog:
    """Read a MusicOSet directory (the published files, plus an optional ``splits.csv``).

    Args:
        directory: the folder holding ``albums.csv``, ``artists.csv``, ``songs.csv``, ``tracks.csv`` and
            ``acoustic_features.csv``.
        covers_dir: an optional folder of cover files named ``<album_id>.<jpg|jpeg|png|webp>``; it takes precedence
            over relative ``image_url`` paths. Default: none.

    Returns:
        The catalog; ``catalog.report`` lists counts per file and every skipped row.

    Raises:
        MusicOSetError: when the directory or a required file or column is missing (one sentence).
    """
    root = Path(directory)
    if not root.is_dir():
        raise MusicOSetError(f"the MusicOSet directory {root} does not exist.")
    missing = [name for name in REQUIRED_FILES if not (root / name).is_file()]
    if missing:
        raise MusicOSetError(f"the MusicOSet directory {root} lacks {', '.join(missing)}.")
    covers = Path(covers_dir) if covers_dir is not None else None
    if covers is not None and not covers.is_dir():
        raise MusicOSetError(f"the covers directory {covers} does not exist.")
    for name in (*REQUIRED_FILES, SPLITS_FILE):
        if (root / name).is_file():
            _check_header(root / name)

    report = ReadReport(files={name: FileCounts() for name in REQUIRED_FILES})
    artists = _read_artists(root, report)
    albums = _read_albums(root, report)
    songs = _read_songs(root, report)
    features = _read_features(root, report, songs)
    tracks = _read_tracks(root, report, albums, songs)
    splits = _read_splits(root, report, albums) if (root / SPLITS_FILE).is_file() else {}
    return _assemble(root, covers, report, artists, albums, songs, features, tracks, splits)


def aggregate_features(songs: Sequence[SongFeatures], *, genre: str) -> AcousticFeatures:
    """An album's features from its tracks' features.

    Args:
        songs: the album's songs with features, in track order (ties of the votes go to the earliest).
        genre: the album's genre.

    Returns:
        Means (rounded to 4 decimals) of tempo, loudness and the 0-1 features; the most common key, mode and time
        signature.
    """
    if not songs:
        raise ValueError("an album needs at least one song with features")
    means = {
        name: round(math.fsum(getattr(song, name) for song in songs) / len(songs), MEAN_DIGITS)
        for name in ("tempo", "loudness", *UNIT_FEATURES)
    }
    return AcousticFeatures(
        genre=genre,
        key=_most_common([song.key for song in songs]),
        mode=_most_common([song.mode for song in songs]),
        time_signature=_most_common([song.time_signature for song in songs]),
        **means,
    )


def split_for(album_id: str) -> str:
    """The split an album gets when ``splits.csv`` does not name it: a hash of its id, 15% ``test``.

    Args:
        album_id: the MusicOSet (Spotify) album id.
    """
    bucket = int.from_bytes(hashlib.sha256(album_id.encode()).digest()[:8], "big") % 100
    return "test" if bucket < TEST_PERCENT else "train"


def _most_common(values: Sequence[_T]) -> _T:
    counts = Counter(values)
    best = max(counts.values())
    return next(value for value in values if counts[value] == best)


# --- reading rows -------------------------------------------------------------------------------------------------


def _open(path: Path) -> Any:
    # utf-8-sig: a file saved by a spreadsheet may start with a byte-order mark.
    return path.open(encoding="utf-8-sig", newline="")


def _check_header(path: Path) -> None:
    with _open(path) as handle:
        header = [column.strip() for column in next(csv.reader(handle, delimiter="\t"), [])]
    missing = [column for column in COLUMNS[path.name] if column not in header]
    if missing:
        raise MusicOSetError(f"{path.name} in {path.parent} lacks the column(s) {', '.join(missing)}.")


def _rows(path: Path, report: ReadReport) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, {column: text}) for each data row with the header's field count; report the others."""
    file = path.name
    counts = report.files.setdefault(file, FileCounts())
    with _open(path) as handle:
        reader = csv.reader(handle, delimiter="\t")
        header = [column.strip() for column in next(reader)]
        previous_end = reader.line_num
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                counts.read += 1
                report.skip(file, previous_end + 1, f"malformed CSV ({exc})")
                previous_end = reader.line_num
                continue
            # A quoted field may span lines; the row starts on the line after the previous row ended.
            line = previous_end + 1
            previous_end = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            counts.read += 1
            if len(row) != len(header):
                report.skip(file, line, f"expected {len(header)} fields, found {len(row)}")
                continue
            yield line, dict(zip(header, row, strict=True))


def _text(row: dict[str, str], column: str) -> str:
    return row[column].strip()


def _id(row: dict[str, str], column: str) -> str:
    value = _text(row, column)
    if not value:
        raise _BadRow(f"empty {column}")
    return value


def _int(row: dict[str, str], column: str) -> int:
    text = _text(row, column)
    try:
        return int(text)
    except ValueError:
        pass
    # pandas writes integer columns with missing values as floats ("4.0").
    try:
        number = float(text)
    except ValueError:
        raise _BadRow(f"{column} {text!r} is not an integer") from None
    if not number.is_integer():
        raise _BadRow(f"{column} {text!r} is not an integer")
    return int(number)


def _optional_int(row: dict[str, str], column: str) -> int | None:
    return _int(row, column) if _text(row, column) else None


def _float(row: dict[str, str], column: str, low: float, high: float) -> float:
    text = _text(row, column)
    try:
        number = float(text)
    except ValueError:
        raise _BadRow(f"{column} {text!r} is not a number") from None
    if not math.isfinite(number):
        raise _BadRow(f"{column} {text!r} is not a finite number")
    if not low <= number <= high:
        raise _BadRow(f"{column} {number:g} is outside [{low:g}, {high:g}]")
    return number


def _bool(row: dict[str, str], column: str) -> bool:
    text = _text(row, column).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise _BadRow(f"{column} {row[column]!r} is not true or false")


def _literal(row: dict[str, str], column: str) -> Any:
    text = _text(row, column)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        raise _BadRow(f"{column} {text[:60]!r} is not a Python literal") from None


def _artist_column(row: dict[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(artist ids, artist names) from "{'<id>': 'Name', ...}", or ((), names) from "['Name', ...]"."""
    value = _literal(row, "artists")
    if isinstance(value, dict):
        if not all(isinstance(key, str) and isinstance(name, str) for key, name in value.items()):
            raise _BadRow("artists holds something other than id: name strings")
        return tuple(value), tuple(value.values())
    if isinstance(value, list | tuple):
        if not all(isinstance(name, str) for name in value):
            raise _BadRow("artists holds something other than name strings")
        return (), tuple(value)
    raise _BadRow("artists is neither a dict of id: name nor a list of names")


def _genre(text: str) -> str | None:
    genre = text.strip()
    return None if genre.lower() in NO_GENRE else genre


def _read_artists(root: Path, report: ReadReport) -> dict[str, Artist]:
    artists: dict[str, Artist] = {}
    for line, row in _rows(root / ARTISTS_FILE, report):
        try:
            artist_id = _id(row, "artist_id")
            if artist_id in artists:
                raise _BadRow(f"duplicate artist_id {artist_id}")
            genres = _literal(row, "genres") if _text(row, "genres") else []
            if not isinstance(genres, list | tuple) or not all(isinstance(genre, str) for genre in genres):
                raise _BadRow("genres is not a list of strings")
            artists[artist_id] = Artist(
                artist_id=artist_id,
                name=_text(row, "name"),
                followers=_optional_int(row, "followers"),
                popularity=_optional_int(row, "popularity"),
                artist_type=_text(row, "artist_type"),
                main_genre=_genre(row["main_genre"]),
                genres=tuple(genres),
                image_url=_text(row, "image_url"),
            )
        except _BadRow as exc:
            report.skip(ARTISTS_FILE, line, str(exc))
            continue
        report.keep(ARTISTS_FILE)
    return artists


@dataclass(frozen=True)
class _AlbumRow:
    line: int
    album_id: str
    name: str
    billboard: str
    artist_ids: tuple[str, ...]
    artist_names: tuple[str, ...]
    popularity: int | None
    total_tracks: int | None
    album_type: str
    image_url: str


def _read_albums(root: Path, report: ReadReport) -> dict[str, _AlbumRow]:
    albums: dict[str, _AlbumRow] = {}
    for line, row in _rows(root / ALBUMS_FILE, report):
        try:
            album_id = _id(row, "album_id")
            if album_id in albums:
                raise _BadRow(f"duplicate album_id {album_id}")
            artist_ids, artist_names = _artist_column(row)
            albums[album_id] = _AlbumRow(
                line=line,
                album_id=album_id,
                name=_text(row, "name"),
                billboard=_text(row, "billboard"),
                artist_ids=artist_ids,
                artist_names=artist_names,
                popularity=_optional_int(row, "popularity"),
                total_tracks=_optional_int(row, "total_tracks"),
                album_type=_text(row, "album_type"),
                image_url=_text(row, "image_url"),
            )
        except _BadRow as exc:
            report.skip(ALBUMS_FILE, line, str(exc))
    # Kept counts for albums are settled in _assemble: an album can still be dropped there.
    return albums


@dataclass(frozen=True)
class _SongRow:
    song_id: str
    name: str
    billboard: str
    artist_ids: tuple[str, ...]
    artist_names: tuple[str, ...]
    popularity: int | None
    explicit: bool
    song_type: str


def _read_songs(root: Path, report: ReadReport) -> dict[str, _SongRow]:
    songs: dict[str, _SongRow] = {}
    for line, row in _rows(root / SONGS_FILE, report):
        try:
            song_id = _id(row, "song_id")
            if song_id in songs:
                raise _BadRow(f"duplicate song_id {song_id}")
            artist_ids, artist_names = _artist_column(row)
            songs[song_id] = _SongRow(
                song_id=song_id,
                name=_text(row, "song_name"),
                billboard=_text(row, "billboard"),
                artist_ids=artist_ids,
                artist_names=artist_names,
                popularity=_optional_int(row, "popularity"),
                explicit=_bool(row, "explicit"),
                song_type=_text(row, "song_type"),
            )
        except _BadRow as exc:
            report.skip(SONGS_FILE, line, str(exc))
            continue
        report.keep(SONGS_FILE)
    return songs


def _read_features(root: Path, report: ReadReport, songs: dict[str, _SongRow]) -> dict[str, SongFeatures]:
    features: dict[str, SongFeatures] = {}
    for line, row in _rows(root / FEATURES_FILE, report):
        try:
            song_id = _id(row, "song_id")
            if song_id not in songs:
                raise _BadRow(f"unknown song_id {song_id} (not in {SONGS_FILE})")
            if song_id in features:
                raise _BadRow(f"duplicate song_id {song_id}")
            key = _int(row, "key")
            if key == -1:
                raise _BadRow("unknown key -1 (no key detected)")
            if not 0 <= key < len(PITCH_CLASSES):
                raise _BadRow(f"key {key} is not a pitch class 0-11")
            mode = _int(row, "mode")
            if mode not in (0, 1):
                raise _BadRow(f"mode {mode} is neither 1 (major) nor 0 (minor)")
            signature = _int(row, "time_signature")
            low, high = TIME_SIGNATURE_RANGE
            if not low <= signature <= high:
                raise _BadRow(f"time_signature {signature} is outside {low}-{high}")
            duration_ms = _int(row, "duration_ms")
            if duration_ms <= 0:
                raise _BadRow(f"duration_ms {duration_ms} is not positive")
            units = {name: _float(row, name, 0.0, 1.0) for name in UNIT_FEATURES}
            features[song_id] = SongFeatures(
                duration_ms=duration_ms,
                key=PITCH_CLASSES[key],
                mode=MODES[0] if mode == 1 else MODES[1],
                time_signature=signature,
                tempo=_float(row, "tempo", *TEMPO_RANGE),
                loudness=_float(row, "loudness", *LOUDNESS_RANGE),
                **units,
            )
        except _BadRow as exc:
            report.skip(FEATURES_FILE, line, str(exc))
            continue
        report.keep(FEATURES_FILE)
    return features


@dataclass(frozen=True)
class _TrackRow:
    line: int
    track: Track


def _read_tracks(
    root: Path, report: ReadReport, albums: dict[str, _AlbumRow], songs: dict[str, _SongRow]
) -> list[_TrackRow]:
    tracks: list[_TrackRow] = []
    seen: set[tuple[str, str]] = set()
    for line, row in _rows(root / TRACKS_FILE, report):
        try:
            song_id, album_id = _id(row, "song_id"), _id(row, "album_id")
            if song_id not in songs:
                raise _BadRow(f"unknown song_id {song_id} (not in {SONGS_FILE})")
            if album_id not in albums:
                raise _BadRow(f"unknown album_id {album_id} (not in {ALBUMS_FILE})")
            if (song_id, album_id) in seen:
                raise _BadRow(f"duplicate track: song {song_id} on album {album_id}")
            track = Track(
                song_id=song_id,
                album_id=album_id,
                track_number=_int(row, "track_number"),
                release_date=_text(row, "release_date"),
                release_date_precision=_text(row, "release_date_precision"),
            )
        except _BadRow as exc:
            report.skip(TRACKS_FILE, line, str(exc))
            continue
        seen.add((song_id, album_id))
        tracks.append(_TrackRow(line, track))
    # Kept counts for tracks are settled in _assemble: tracks of dropped albums go with them.
    return tracks


def _read_splits(root: Path, report: ReadReport, albums: dict[str, _AlbumRow]) -> dict[str, str]:
    splits: dict[str, str] = {}
    report.files[SPLITS_FILE] = FileCounts()
    for line, row in _rows(root / SPLITS_FILE, report):
        try:
            album_id = _id(row, "album_id")
            split = _text(row, "split").lower()
            if album_id not in albums:
                raise _BadRow(f"unknown album_id {album_id} (not in {ALBUMS_FILE})")
            if split not in SPLITS:
                raise _BadRow(f"split {split!r} is neither train nor test")
            if album_id in splits:
                raise _BadRow(f"duplicate album_id {album_id}")
        except _BadRow as exc:
            report.skip(SPLITS_FILE, line, str(exc))
            continue
        splits[album_id] = split
        report.keep(SPLITS_FILE)
    return splits


# --- assembling albums --------------------------------------------------------------------------------------------


def _assemble(
    root: Path,
    covers: Path | None,
    report: ReadReport,
    artists: dict[str, Artist],
    album_rows: dict[str, _AlbumRow],
    song_rows: dict[str, _SongRow],
    features: dict[str, SongFeatures],
    track_rows: list[_TrackRow],
    splits: dict[str, str],
) -> MusicOSetCatalog:
    artists_by_name: dict[str, Artist] = {}
    for artist in artists.values():
        artists_by_name.setdefault(artist.name, artist)

    def main_genre(artist_ids: tuple[str, ...], artist_names: tuple[str, ...]) -> str | None:
        # A list-like artists column has names only, and an id may be missing from artists.csv: then go by name.
        ids = artist_ids or ("",) * len(artist_names)
        pairs = zip(ids, artist_names, strict=True)
        candidates = [artists.get(artist_id) or artists_by_name.get(name) for artist_id, name in pairs]
        return next((artist.main_genre for artist in candidates if artist and artist.main_genre), None)

    tracks_of: dict[str, list[_TrackRow]] = {}
    for track_row in sorted(track_rows, key=lambda item: (item.track.track_number, item.line)):
        tracks_of.setdefault(track_row.track.album_id, []).append(track_row)

    albums: list[Album] = []
    kept_album_ids: set[str] = set()
    for album_id, row in album_rows.items():
        album_tracks = tracks_of.get(album_id, [])
        song_ids = tuple(track_row.track.song_id for track_row in album_tracks)
        genre = main_genre(row.artist_ids, row.artist_names) or next(
            (
                genre
                for song_id in song_ids
                if (genre := main_genre(song_rows[song_id].artist_ids, song_rows[song_id].artist_names))
            ),
            None,
        )
        with_features = [features[song_id] for song_id in song_ids if song_id in features]
        if not with_features:
            report.skip(ALBUMS_FILE, row.line, f"album {album_id} has no track with acoustic features; dropped")
            continue
        if genre is None:
            report.skip(ALBUMS_FILE, row.line, f"album {album_id}: none of its artists has a main_genre; dropped")
            continue
        cover_path = _cover_path(root, covers, album_id, row.image_url)
        if cover_path is None:
            report.albums_without_cover.append(album_id)
        albums.append(
            Album(
                album_id=album_id,
                name=row.name,
                billboard=row.billboard,
                artist_ids=row.artist_ids,
                artist_names=row.artist_names,
                popularity=row.popularity,
                total_tracks=row.total_tracks,
                album_type=row.album_type,
                image_url=row.image_url,
                cover_path=cover_path,
                genre=genre,
                features=aggregate_features(with_features, genre=genre),
                song_ids=song_ids,
                feature_song_count=len(with_features),
                split=splits.get(album_id) or split_for(album_id),
            )
        )
        kept_album_ids.add(album_id)
        report.keep(ALBUMS_FILE)

    tracks: list[Track] = []
    for track_row in track_rows:
        if track_row.track.album_id not in kept_album_ids:
            reason = f"album {track_row.track.album_id} was dropped; its track goes with it"
            report.skip(TRACKS_FILE, track_row.line, reason)
            continue
        tracks.append(track_row.track)
        report.keep(TRACKS_FILE)

    album_genre = {album.album_id: album.genre for album in albums}
    albums_of: dict[str, list[str]] = {}
    for track in tracks:
        albums_of.setdefault(track.song_id, []).append(track.album_id)
    songs = [
        Song(
            song_id=song_id,
            name=row.name,
            billboard=row.billboard,
            artist_ids=row.artist_ids,
            artist_names=row.artist_names,
            popularity=row.popularity,
            explicit=row.explicit,
            song_type=row.song_type,
            features=features.get(song_id),
            # The song's own artist decides first; a song by a genre-less featured artist inherits its album's.
            genre=main_genre(row.artist_ids, row.artist_names)
            or next((album_genre[album_id] for album_id in albums_of.get(song_id, [])), None),
            album_ids=tuple(albums_of.get(song_id, [])),
        )
        for song_id, row in song_rows.items()
    ]
    report.skipped.sort(key=lambda skipped: (skipped.file, skipped.line))
    return MusicOSetCatalog(
        directory=root, artists=list(artists.values()), albums=albums, songs=songs, tracks=tracks, report=report
    )


def _cover_path(root: Path, covers: Path | None, album_id: str, image_url: str) -> Path | None:
    if covers is not None:
        for suffix in COVER_SUFFIXES:
            candidate = covers / f"{album_id}{suffix}"
            if candidate.is_file():
                return candidate
    if image_url and "://" not in image_url:
        candidate = (root / image_url).resolve()
        # A relative path must stay inside the catalog: "../../etc/passwd" is no cover.
        if candidate.is_relative_to(root.resolve()) and candidate.is_file():
            return candidate
    return None
