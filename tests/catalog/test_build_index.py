"""``manage.py build_index``: embeds the imported catalog's covers; the index is refused by another embedder."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from generation.embed import Embedder
from generation.images import load_cover_image
from generation.retrieve import IndexMismatchError, RetrievalIndex
from labelstudio_site.catalog.models import Album

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "fixtures" / "musicoset"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def test_build_index_over_the_imported_fixture(tmp_path):
    call_command("import_musicoset", str(FIXTURE), stdout=StringIO())
    out = StringIO()
    call_command("build_index", "--profile", "tiny", "--out", str(tmp_path / "index"), stdout=out)
    count = Album.objects.exclude(cover="").count()
    assert f"indexed {count} covers" in out.getvalue()

    embedder = Embedder.from_config(ROOT / "fixtures" / "tiny" / "clip")
    index = RetrievalIndex.load(tmp_path / "index", embedder_id=embedder.model_id)
    assert len(index.entries) == count
    # A catalog cover finds itself first, at distance ~0: the stored vectors are that embedder's.
    album = Album.objects.order_by("musicoset_id")[7]
    with album.cover.open("rb") as cover:
        embedding = embedder.embed([load_cover_image(cover.read())])[0]
    nearest = index.search(embedding, k=1)[0]
    assert nearest.album_id == album.musicoset_id
    assert nearest.distance == pytest.approx(0, abs=1e-5)
    assert nearest.features.to_dict() == album.features

    with pytest.raises(IndexMismatchError):
        other = Embedder.from_config(ROOT / "fixtures" / "tiny" / "clip", seed=1)
        RetrievalIndex.load(tmp_path / "index", embedder_id=other.model_id)


def test_build_index_on_an_empty_catalog_fails_with_a_sentence(tmp_path):
    err = StringIO()
    with pytest.raises(SystemExit) as exit_info:
        call_command("build_index", "--out", str(tmp_path / "index"), stderr=err)
    assert exit_info.value.code == 2
    assert "no album with a cover: run import_musicoset first" in err.getvalue()
    assert not (tmp_path / "index").exists()
