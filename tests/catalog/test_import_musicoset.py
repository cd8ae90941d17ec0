"""``manage.py import_musicoset``: imports the fixture, re-imports without duplicates, refuses missing input."""

import csv
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from generation.features import features_from_mapping
from generation.musicoset import read_musicoset
from labelstudio_site.catalog.models import Album, Artist, Song, Track
from labelstudio_site.catalog.selectors import album_count_by_split, album_list, catalog_genres
from tests.conftest import clean_env

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "musicoset"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="module")
def expected():
    return read_musicoset(FIXTURE)


def import_musicoset(*args: str) -> str:
    out = StringIO()
    call_command("import_musicoset", *args, stdout=out)
    return out.getvalue()


def table_counts() -> tuple[int, int, int, int]:
    return Artist.objects.count(), Album.objects.count(), Song.objects.count(), Track.objects.count()


def test_command_imports_the_fixture(expected, media_root):
    output = import_musicoset(str(FIXTURE))

    assert table_counts() == (len(expected.artists), len(expected.albums), len(expected.songs), len(expected.tracks))
    for name, counts in expected.report.files.items():
        assert f"{name}: read {counts.read}, kept {counts.kept}, skipped 0" in output
    assert f"imported {len(expected.albums)} albums ({len(expected.albums)} new, 0 updated)" in output
    assert catalog_genres() == expected.genres
    test_count = sum(album.split == "test" for album in expected.albums)
    assert album_count_by_split() == {"train": len(expected.albums) - test_count, "test": test_count}
    assert album_list(split="test").count() == test_count
    assert album_list(genre="jazz", with_cover=True).count() == sum(a.genre == "jazz" for a in expected.albums)

    source = expected.albums[0]
    album = Album.objects.get(musicoset_id=source.album_id)
    assert features_from_mapping(album.features, catalog_genres()) == source.features
    assert album.track_count == len(source.song_ids)
    assert list(album.songs.order_by("tracks__track_number").values_list("musicoset_id", flat=True)) == list(
        source.song_ids
    )
    assert list(album.artists.values_list("musicoset_id", flat=True)) == list(source.artist_ids)
    assert album.cover.name.startswith("catalog/covers/") and album.cover.name.endswith(".png")
    assert (Path(media_root) / album.cover.name).read_bytes() == source.cover_path.read_bytes()
    song = Song.objects.get(musicoset_id=source.song_ids[0])
    assert song.features["key"] in "C C# D D# E F F# G G# A A# B".split() and song.genre == source.genre


def test_reimport_updates_and_never_duplicates(expected, media_root, tmp_path):
    import_musicoset(str(FIXTURE))
    first_counts = table_counts()
    covers = sorted((Path(media_root) / "catalog" / "covers").iterdir())

    output = import_musicoset(str(FIXTURE))
    assert table_counts() == first_counts
    assert f"imported {len(expected.albums)} albums (0 new, {len(expected.albums)} updated)" in output
    assert "(0 new files" in output
    assert sorted((Path(media_root) / "catalog" / "covers").iterdir()) == covers

    # A changed file updates the row it names, in place.
    changed = tmp_path / "changed"
    shutil.copytree(FIXTURE, changed)
    rows = list(csv.reader((changed / "albums.csv").open(encoding="utf-8", newline=""), delimiter="\t"))
    rows[1][1] = "Renamed"
    with (changed / "albums.csv").open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    import_musicoset(str(changed))
    assert table_counts() == first_counts
    assert Album.objects.get(musicoset_id=rows[1][0]).name == "Renamed"


def test_bad_rows_are_printed_as_file_line_reason(tmp_path):
    directory = tmp_path / "catalog"
    shutil.copytree(FIXTURE, directory, ignore=shutil.ignore_patterns("covers"))
    with (directory / "acoustic_features.csv").open("a", encoding="utf-8", newline="") as handle:
        handle.write('"unknown-song"\t"1"\t"0"\t"1"\t"4"' + '\t"0.5"' * 7 + '\t"-5"\t"120"\n')
    output = import_musicoset(str(directory))
    line = len((directory / "acoustic_features.csv").read_text().splitlines())
    assert f"acoustic_features.csv:{line}: unknown song_id unknown-song (not in songs.csv)" in output
    assert Album.objects.exclude(cover="").count() == 0  # no covers folder, no covers


@pytest.mark.parametrize("missing", ["directory", "tracks.csv"])
def test_missing_input_exits_2_with_one_sentence_and_changes_nothing(tmp_path, capsys, missing):
    directory = tmp_path / "catalog"
    if missing != "directory":
        shutil.copytree(FIXTURE, directory, ignore=shutil.ignore_patterns("covers", missing))
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("import_musicoset", str(directory), stdout=StringIO(), stderr=err)
    assert exit_info.value.code == 2
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Cannot import MusicOSet: ") and lines[0].endswith(".")
    assert missing in lines[0] or "does not exist" in lines[0]
    assert table_counts() == (0, 0, 0, 0)


def test_missing_directory_exit_status_from_manage_py(run_entry_point, tmp_path):
    # A private var folder: the command must not even create the SQLite file there.
    env = clean_env(DJANGO_SETTINGS_MODULE="labelstudio_site.settings.test", ALBUMGEN_VAR_DIR=str(tmp_path / "var"))
    result = run_entry_point("manage.py", "import_musicoset", str(tmp_path / "nowhere"), env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    expected = f"Cannot import MusicOSet: the MusicOSet directory {tmp_path / 'nowhere'} does not exist."
    assert result.stderr.strip() == expected
    assert not (tmp_path / "var" / "db.sqlite3").exists()
