"""The MusicOSet reader: the committed fixture, bad rows, Python-literal columns, aggregation, splits, covers."""

import csv
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from generation.features import features_from_mapping
from generation.musicoset import (
    MusicOSetError,
    SongFeatures,
    aggregate_features,
    read_musicoset,
    split_for,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "musicoset"
MAKE_CATALOG = ROOT / "fixtures" / "make_catalog.py"

ARTIST_HEADER = ["artist_id", "name", "followers", "popularity", "artist_type", "main_genre", "genres", "image_url"]
ALBUM_HEADER = ["album_id", "name", "billboard", "artists", "popularity", "total_tracks", "album_type", "image_url"]
SONG_HEADER = ["song_id", "song_name", "billboard", "artists", "popularity", "explicit", "song_type"]
TRACK_HEADER = ["song_id", "album_id", "track_number", "release_date", "release_date_precision"]
FEATURE_HEADER = [
    "song_id", "duration_ms", "key", "mode", "time_signature", "acousticness", "danceability", "energy",
    "instrumentalness", "liveness", "loudness", "speechiness", "valence", "tempo",
]  # fmt: skip


def feature_row(song_id: str, **values: object) -> list[str]:
    row = {
        "song_id": song_id, "duration_ms": 200000, "key": 0, "mode": 1, "time_signature": 4, "acousticness": 0.1,
        "danceability": 0.5, "energy": 0.5, "instrumentalness": 0.0, "liveness": 0.1, "loudness": -6.0,
        "speechiness": 0.05, "valence": 0.5, "tempo": 120.0,
    }  # fmt: skip
    row.update(values)
    return [str(row[column]) for column in FEATURE_HEADER]


def tiny_catalog() -> dict[str, list[list[str]]]:
    """Two artists, two albums, five songs: small enough to check every number by hand."""
    return {
        "artists.csv": [
            ARTIST_HEADER,
            ["ar1", "Ann O'Hara", "100", "50", "singer", "pop", "['pop', 'dance pop']", ""],
            ["ar2", "The Band", "2000", "60", "band", "rock", "['rock']", ""],
            ["ar3", "Guest", "10", "5", "singer", "-", "[]", ""],
        ],
        "albums.csv": [
            ALBUM_HEADER,
            ["al1", "First", "First", "{'ar3': 'Guest', 'ar1': \"Ann O'Hara\"}", "40", "3", "album", ""],
            ["al2", "Second", "Second", "{'ar2': 'The Band'}", "30", "2", "single", ""],
        ],
        "songs.csv": [
            SONG_HEADER,
            ["s1", "One", "('One', 'Ann')", "{'ar1': \"Ann O'Hara\"}", "10", "False", "Solo"],
            ["s2", "Two", "('Two', 'Ann')", "{'ar1': \"Ann O'Hara\"}", "20", "True", "Solo"],
            ["s3", "Three", "('Three', 'Ann')", "{'ar1': \"Ann O'Hara\", 'ar3': 'Guest'}", "30", "False", "Collab"],
            ["s4", "Four", "('Four', 'Band')", "{'ar2': 'The Band'}", "40", "False", "Solo"],
            ["s5", "Five", "('Five', 'Band')", "{'ar2': 'The Band'}", "50", "False", "Solo"],
        ],
        "tracks.csv": [
            TRACK_HEADER,
            # Written out of order on purpose: track order, not file order, decides ties.
            ["s3", "al1", "3", "2001-02-03", "day"],
            ["s1", "al1", "1", "2001-02-03", "day"],
            ["s2", "al1", "2", "2001-02-03", "day"],
            ["s5", "al2", "2", "1999", "year"],
            ["s4", "al2", "1", "1999", "year"],
        ],
        "acoustic_features.csv": [
            FEATURE_HEADER,
            feature_row("s1", key=2, mode=1, tempo=100, energy=0.2, loudness=-10, time_signature=3),
            feature_row("s2", key=5, mode=0, tempo=110, energy=0.4, loudness=-8, time_signature=4),
            feature_row("s3", key=5, mode=1, tempo=120, energy=0.9, loudness=-6, time_signature=3),
            feature_row("s4", key=7, mode=0, tempo=90, valence=0.2, time_signature=4),
            feature_row("s5", key=9, mode=1, tempo=150, valence=0.6, time_signature=3),
        ],
    }


def write_catalog(directory: Path, files: dict[str, list[list[str]]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        with (directory / name).open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle, delimiter="\t", lineterminator="\n").writerows(rows)
    return directory


@pytest.fixture(scope="module")
def fixture_catalog():
    return read_musicoset(FIXTURE)


# --- the committed fixture ----------------------------------------------------------------------------------------


def test_fixture_reads_clean_and_is_big_enough(fixture_catalog):
    report = fixture_catalog.report
    assert report.skipped == []
    assert report.albums_without_cover == []
    for name, counts in report.files.items():
        assert counts.read == counts.kept > 0, name
    assert len(fixture_catalog.albums) >= 240
    assert len(fixture_catalog.genres) >= 12
    assert fixture_catalog.genres == sorted({album.genre for album in fixture_catalog.albums})
    assert report.files["tracks.csv"].kept == len(fixture_catalog.tracks)
    for album in fixture_catalog.albums:
        assert 3 <= len(album.song_ids) <= 6
        assert album.feature_song_count == len(album.song_ids)
        assert len(album.album_id) == 22 and album.album_id.isalnum()
        # Every aggregate satisfies the captioner's schema.
        assert features_from_mapping(album.features.to_dict(), fixture_catalog.genres) == album.features


def test_every_fixture_album_has_its_cover(fixture_catalog):
    covers = sorted((FIXTURE / "covers").iterdir())
    assert len(covers) == len(fixture_catalog.albums)
    for album in fixture_catalog.albums:
        assert album.image_url == f"covers/{album.album_id}.png"
        assert album.cover_path == (FIXTURE / "covers" / f"{album.album_id}.png").resolve()
        with Image.open(album.cover_path) as image:
            assert image.size == (256, 256)


def test_fixture_split_is_about_15_percent_test_in_every_genre(fixture_catalog):
    splits = Counter(album.split for album in fixture_catalog.albums)
    assert set(splits) == {"train", "test"}
    assert 0.12 <= splits["test"] / len(fixture_catalog.albums) <= 0.18
    test_genres = {album.genre for album in fixture_catalog.albums if album.split == "test"}
    assert test_genres == set(fixture_catalog.genres)


def test_fixture_size_stays_small():
    size = sum(path.stat().st_size for path in FIXTURE.rglob("*") if path.is_file())
    assert size < 15 * 1024 * 1024


def test_fixture_songs_carry_genre_and_features(fixture_catalog):
    album_genre = {album.album_id: album.genre for album in fixture_catalog.albums}
    for song in fixture_catalog.songs:
        assert song.acoustic_features is not None
        assert song.album_ids and song.genre == album_genre[song.album_ids[0]]


def test_fixture_features_differ_by_genre(fixture_catalog):
    by_genre = defaultdict(list)
    for album in fixture_catalog.albums:
        by_genre[album.genre].append(album.features)
    mean = {genre: np.mean([f.energy for f in features]) for genre, features in by_genre.items()}
    acoustic = {genre: np.mean([f.acousticness for f in features]) for genre, features in by_genre.items()}
    assert mean["metal"] > mean["edm"] > mean["jazz"] > mean["classical"]
    assert acoustic["classical"] > acoustic["folk"] > acoustic["pop"] > acoustic["metal"]


def cover_descriptor(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64) / 255
    return np.concatenate([pixels.mean(axis=(0, 1)), pixels.std(axis=(0, 1))])


def test_covers_differ_by_genre(fixture_catalog):
    """Mean colour per genre is distinct, and colour statistics alone place most covers in their genre."""
    genres = [album.genre for album in fixture_catalog.albums]
    vectors = np.stack([cover_descriptor(album.cover_path) for album in fixture_catalog.albums])
    names = sorted(set(genres))
    labels = np.array([names.index(genre) for genre in genres])
    centroids = np.stack([vectors[labels == index].mean(axis=0) for index in range(len(names))])
    rgb = centroids[:, :3]
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)[np.triu_indices(len(names), 1)]
    assert distances.min() > 0.02, "two genres share a mean cover colour"
    # Leave-one-out nearest centroid on 6 colour statistics; chance is 1/14.
    correct = 0
    for index, vector in enumerate(vectors):
        own = labels[index]
        members = labels == own
        held_out = centroids.copy()
        held_out[own] = (vectors[members].sum(axis=0) - vector) / (members.sum() - 1)
        correct += int(np.argmin(np.linalg.norm(held_out - vector, axis=1)) == own)
    assert correct / len(vectors) > 0.6


# --- determinism of the generator ---------------------------------------------------------------------------------


def run_make_catalog(out: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, str(MAKE_CATALOG), "--out", str(out), *args], check=True, capture_output=True, timeout=120
    )


def test_make_catalog_is_byte_identical_across_runs(tmp_path):
    run_make_catalog(tmp_path / "a", "--albums-per-genre", "2")
    run_make_catalog(tmp_path / "b", "--albums-per-genre", "2")
    first = sorted(path.relative_to(tmp_path / "a") for path in (tmp_path / "a").rglob("*") if path.is_file())
    second = sorted(path.relative_to(tmp_path / "b") for path in (tmp_path / "b").rglob("*") if path.is_file())
    assert first == second
    assert len([path for path in first if path.suffix == ".png"]) == 28
    for relative in first:
        assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative
    catalog = read_musicoset(tmp_path / "a")
    assert catalog.report.skipped == [] and len(catalog.albums) == 28


def test_committed_fixture_is_what_the_script_writes(tmp_path):
    # CSV files only: PNG bytes depend on the zlib that Pillow links, the CSVs on nothing but the script.
    run_make_catalog(tmp_path, "--no-covers")
    for path in sorted(tmp_path.glob("*.csv")):
        assert path.read_bytes() == (FIXTURE / path.name).read_bytes(), path.name


# --- parsing ------------------------------------------------------------------------------------------------------


def test_python_literal_columns_are_parsed(tmp_path):
    catalog = read_musicoset(write_catalog(tmp_path, tiny_catalog()))
    artists = {artist.artist_id: artist for artist in catalog.artists}
    assert artists["ar1"].genres == ("pop", "dance pop")
    assert artists["ar3"].main_genre is None and artists["ar3"].genres == ()
    albums = {album.album_id: album for album in catalog.albums}
    assert albums["al1"].artist_ids == ("ar3", "ar1")
    assert albums["al1"].artist_names == ("Guest", "Ann O'Hara")
    # The first credited artist has no genre ("-"): the next one decides.
    assert albums["al1"].genre == "pop"
    songs = {song.song_id: song for song in catalog.songs}
    assert songs["s2"].explicit is True and songs["s3"].artist_names == ("Ann O'Hara", "Guest")


def test_list_like_artist_columns_are_matched_by_name(tmp_path):
    files = tiny_catalog()
    files["albums.csv"][2][3] = "['The Band']"
    files["songs.csv"][4][3] = "['The Band', 'Nobody Known']"
    catalog = read_musicoset(write_catalog(tmp_path, files))
    albums = {album.album_id: album for album in catalog.albums}
    assert albums["al2"].artist_ids == () and albums["al2"].artist_names == ("The Band",)
    assert albums["al2"].genre == "rock"
    assert {song.song_id: song for song in catalog.songs}["s4"].artist_names == ("The Band", "Nobody Known")


def test_columns_are_found_by_name_in_any_order(tmp_path):
    files = tiny_catalog()
    reordered = {}
    for name, rows in files.items():
        order = list(reversed(range(len(rows[0]))))
        reordered[name] = [[row[index] for index in order] for row in rows]
    expected = read_musicoset(write_catalog(tmp_path / "a", files))
    actual = read_musicoset(write_catalog(tmp_path / "b", reordered))
    assert actual.albums == expected.albums and actual.songs == expected.songs and actual.artists == expected.artists


def test_quoted_fields_may_hold_tabs_and_newlines(tmp_path):
    files = tiny_catalog()
    files["songs.csv"][1][1] = "One\tTab\nand a second line"
    files["songs.csv"].append(["s9", "Nine", "", "{'ar1': 'Ann'}", "ten", "False", "Solo"])
    catalog = read_musicoset(write_catalog(tmp_path, files))
    assert {song.song_id: song for song in catalog.songs}["s1"].name == "One\tTab\nand a second line"
    # The first song spans lines 2-3, so the sixth data row starts on physical line 8.
    assert [str(row) for row in catalog.report.skipped] == ["songs.csv:8: popularity 'ten' is not an integer"]


# --- bad rows -----------------------------------------------------------------------------------------------------


def test_bad_rows_are_skipped_and_reported_with_file_line_and_reason(tmp_path):
    files = tiny_catalog()
    files["artists.csv"].append(["ar9", "Broken", "1", "1", "singer", "pop", "['pop'", ""])  # line 5
    files["albums.csv"].append(["al9", "Short row", "x"])  # line 4
    files["albums.csv"].append(["al1", "Again", "Again", "{'ar1': 'Ann'}", "1", "1", "album", ""])  # line 5
    files["songs.csv"].append(["s9", "Nine", "", "{'ar1': 'Ann'}", "10", "maybe", "Solo"])  # line 7
    files["songs.csv"].append(["s8", "Eight", "", "{'ar1': 'Ann'}", "10", "False", "Solo"])  # line 8
    files["songs.csv"].append(["s7", "Seven", "", "{'ar1': 'Ann'}", "10", "False", "Solo"])  # line 9
    files["songs.csv"].append(["s6", "Six", "", "{'ar1': 'Ann'}", "10", "False", "Solo"])  # line 10
    files["acoustic_features.csv"] += [
        feature_row("s8", key=-1),  # line 7
        feature_row("s7", time_signature=1),  # line 8
        feature_row("s6", energy=1.4),  # line 9
        feature_row("nope"),  # line 10
        feature_row("s1"),  # line 11: duplicate
        feature_row("s6", loudness="loud"),  # line 12
    ]
    files["tracks.csv"] += [
        ["s8", "al404", "1", "2001", "year"],  # line 7
        ["s404", "al1", "4", "2001", "year"],  # line 8
        ["s8", "al1", "x", "2001", "year"],  # line 9
        ["s1", "al1", "1", "2001", "year"],  # line 10: duplicate
    ]
    files["splits.csv"] = [["album_id", "split"], ["al1", "test"], ["al2", "validation"], ["al404", "train"]]
    catalog = read_musicoset(write_catalog(tmp_path, files))
    reported = [str(row) for row in catalog.report.skipped]
    assert reported == [
        "acoustic_features.csv:7: unknown key -1 (no key detected)",
        "acoustic_features.csv:8: time_signature 1 is outside 3-7",
        "acoustic_features.csv:9: energy 1.4 is outside [0, 1]",
        "acoustic_features.csv:10: unknown song_id nope (not in songs.csv)",
        "acoustic_features.csv:11: duplicate song_id s1",
        "acoustic_features.csv:12: loudness 'loud' is not a number",
        "albums.csv:4: expected 8 fields, found 3",
        "albums.csv:5: duplicate album_id al1",
        "artists.csv:5: genres \"['pop'\" is not a Python literal",
        "songs.csv:7: explicit 'maybe' is not true or false",
        "splits.csv:3: split 'validation' is neither train nor test",
        "splits.csv:4: unknown album_id al404 (not in albums.csv)",
        "tracks.csv:7: unknown album_id al404 (not in albums.csv)",
        "tracks.csv:8: unknown song_id s404 (not in songs.csv)",
        "tracks.csv:9: track_number 'x' is not an integer",
        "tracks.csv:10: duplicate track: song s1 on album al1",
    ]
    counts = {name: (c.read, c.kept, c.skipped) for name, c in catalog.report.files.items()}
    assert counts == {
        "artists.csv": (4, 3, 1),
        "albums.csv": (4, 2, 2),
        "songs.csv": (9, 8, 1),
        "tracks.csv": (9, 5, 4),
        "acoustic_features.csv": (11, 5, 6),
        "splits.csv": (3, 1, 2),
    }
    assert len(catalog.albums) == 2 and len(catalog.tracks) == 5
    assert {album.album_id: album.split for album in catalog.albums}["al1"] == "test"


def test_albums_without_features_or_genre_are_dropped_with_their_tracks(tmp_path):
    files = tiny_catalog()
    files["artists.csv"].append(["ar4", "Nobody", "1", "1", "singer", "-", "[]", ""])
    files["albums.csv"].append(["al3", "Silent", "", "{'ar1': 'Ann'}", "1", "1", "single", ""])  # line 4
    files["albums.csv"].append(["al4", "Genreless", "", "{'ar4': 'Nobody'}", "1", "1", "single", ""])  # line 5
    files["songs.csv"].append(["s6", "Six", "", "{'ar1': 'Ann'}", "1", "False", "Solo"])
    files["songs.csv"].append(["s7", "Seven", "", "{'ar4': 'Nobody'}", "1", "False", "Solo"])
    files["tracks.csv"].append(["s6", "al3", "1", "2001", "year"])  # line 7; s6 has no features
    files["tracks.csv"].append(["s7", "al4", "1", "2001", "year"])  # line 8
    files["acoustic_features.csv"].append(feature_row("s7"))
    catalog = read_musicoset(write_catalog(tmp_path, files))
    assert [str(row) for row in catalog.report.skipped] == [
        "albums.csv:4: album al3 has no track with acoustic features; dropped",
        "albums.csv:5: album al4: none of its artists has a main_genre; dropped",
        "tracks.csv:7: album al3 was dropped; its track goes with it",
        "tracks.csv:8: album al4 was dropped; its track goes with it",
    ]
    assert [album.album_id for album in catalog.albums] == ["al1", "al2"]
    songs = {song.song_id: song for song in catalog.songs}
    assert songs["s6"].features is None and songs["s6"].acoustic_features is None
    assert songs["s7"].genre is None and songs["s7"].album_ids == ()


# --- aggregation --------------------------------------------------------------------------------------------------


def test_album_features_are_means_and_majorities_in_track_order(tmp_path):
    catalog = read_musicoset(write_catalog(tmp_path, tiny_catalog()))
    albums = {album.album_id: album for album in catalog.albums}
    first = albums["al1"]
    assert first.song_ids == ("s1", "s2", "s3")
    assert first.features.tempo == 110.0
    assert first.features.energy == pytest.approx(0.5)
    assert first.features.loudness == -8.0
    assert first.features.acousticness == pytest.approx(0.1)
    assert (first.features.key, first.features.mode, first.features.time_signature) == ("F", "major", 3)
    second = albums["al2"]
    # One vote each: the first track (s4, written second in the file) wins every tie.
    assert second.song_ids == ("s4", "s5")
    assert (second.features.key, second.features.mode, second.features.time_signature) == ("G", "minor", 4)
    assert second.features.tempo == 120.0 and second.features.valence == pytest.approx(0.4)
    assert second.genre == second.features.genre == "rock"
    assert catalog.genres == ["pop", "rock"]


def test_aggregate_rounds_means_and_needs_a_song():
    song = SongFeatures(
        duration_ms=1, key="A", mode="minor", time_signature=5, tempo=100.0, loudness=-7.0, acousticness=0.1,
        danceability=0.2, energy=0.3, instrumentalness=0.4, liveness=0.5, speechiness=0.6, valence=0.7,
    )  # fmt: skip
    other = SongFeatures(**{**vars(song), "energy": 0.00001, "tempo": 100.33333})
    features = aggregate_features([song, other], genre="jazz")
    assert features.energy == 0.15 and features.tempo == 100.1667
    assert features.key == "A" and features.time_signature == 5
    with pytest.raises(ValueError):
        aggregate_features([], genre="jazz")


# --- splits, covers, missing input --------------------------------------------------------------------------------


def test_without_splits_file_the_split_is_a_stable_hash(tmp_path):
    for path in FIXTURE.glob("*.csv"):
        if path.name != "splits.csv":
            shutil.copy(path, tmp_path / path.name)
    catalog = read_musicoset(tmp_path)
    assert "splits.csv" not in catalog.report.files
    test_share = sum(album.split == "test" for album in catalog.albums) / len(catalog.albums)
    assert 0.08 <= test_share <= 0.22
    assert all(album.split == split_for(album.album_id) for album in catalog.albums)
    assert split_for("2noRn2Aes5aoNVsU6iWThc") == split_for("2noRn2Aes5aoNVsU6iWThc")


def test_covers_come_from_covers_dir_first_and_never_from_outside_the_catalog(tmp_path):
    files = tiny_catalog()
    files["albums.csv"][1][7] = "covers/al1.png"
    files["albums.csv"][2][7] = "../outside.png"
    directory = write_catalog(tmp_path / "catalog", files)
    (directory / "covers").mkdir()
    Image.new("RGB", (8, 8), "red").save(directory / "covers" / "al1.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "outside.png")
    catalog = read_musicoset(directory)
    covers = {album.album_id: album.cover_path for album in catalog.albums}
    assert covers == {"al1": (directory / "covers" / "al1.png").resolve(), "al2": None}
    assert catalog.report.albums_without_cover == ["al2"]

    external = tmp_path / "external"
    external.mkdir()
    Image.new("RGB", (8, 8), "green").save(external / "al1.jpg")
    Image.new("RGB", (8, 8), "green").save(external / "al2.webp")
    catalog = read_musicoset(directory, covers_dir=external)
    assert {album.album_id: album.cover_path for album in catalog.albums} == {
        "al1": external / "al1.jpg",
        "al2": external / "al2.webp",
    }


def test_missing_directory_file_or_column_is_one_sentence(tmp_path):
    with pytest.raises(MusicOSetError, match=r"directory .*nowhere does not exist\.$"):
        read_musicoset(tmp_path / "nowhere")
    files = tiny_catalog()
    del files["tracks.csv"]
    with pytest.raises(MusicOSetError, match=r"lacks tracks\.csv\.$"):
        read_musicoset(write_catalog(tmp_path / "a", files))
    files = tiny_catalog()
    files["acoustic_features.csv"] = [[column for column in row if column != "tempo"] for row in [FEATURE_HEADER]]
    with pytest.raises(MusicOSetError, match=r"acoustic_features\.csv .* lacks the column\(s\) tempo\.$"):
        read_musicoset(write_catalog(tmp_path / "b", files))
    with pytest.raises(MusicOSetError, match="covers directory"):
        read_musicoset(write_catalog(tmp_path / "c", tiny_catalog()), covers_dir=tmp_path / "no-covers")
