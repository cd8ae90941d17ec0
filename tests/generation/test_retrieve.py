import numpy as np
import pytest

from generation.retrieve import CatalogEntry, IndexMismatchError, Neighbour, RetrievalIndex, mean_features
from tests.generation.conftest import features


def small_index() -> RetrievalIndex:
    vectors = np.eye(4, dtype=np.float32)
    entries = [
        CatalogEntry(f"a{i}", f"Album {i}", genre, features(genre=genre, tempo=100 + 10 * i))
        for i, genre in enumerate(["pop", "rock", "jazz", "pop"])
    ]
    return RetrievalIndex.build(vectors, entries, embedder_id="emb-1")


def test_nearest_first_with_l2_distances():
    neighbours = small_index().search(np.array([0.9, 0.1, 0, 0], dtype=np.float32), k=2)
    assert [n.album_id for n in neighbours] == ["a0", "a1"]
    assert neighbours[0].distance == pytest.approx(0.1**2 + 0.1**2)
    assert neighbours[0].distance < neighbours[1].distance


def test_exclude_leaves_the_album_out_and_still_returns_k():
    neighbours = small_index().search(np.array([1, 0, 0, 0], dtype=np.float32), k=3, exclude=["a0"])
    assert sorted(n.album_id for n in neighbours) == ["a1", "a2", "a3"]


def test_save_load_round_trip_and_genre_vocabulary(tmp_path):
    small_index().save(tmp_path)
    loaded = RetrievalIndex.load(tmp_path, embedder_id="emb-1")
    assert loaded.genres == ["jazz", "pop", "rock"]
    assert loaded.entries == small_index().entries
    query = np.array([0, 0, 1, 0], dtype=np.float32)
    assert loaded.search(query, k=4) == small_index().search(query, k=4)


def test_an_index_of_another_embedder_is_refused(tmp_path):
    small_index().save(tmp_path)
    with pytest.raises(IndexMismatchError, match="built by the embedder 'emb-1'.*'emb-2'"):
        RetrievalIndex.load(tmp_path, embedder_id="emb-2")


def test_a_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="build-index"):
        RetrievalIndex.load(tmp_path / "none", embedder_id="emb-1")


def test_empty_catalog_cannot_be_indexed():
    with pytest.raises(ValueError, match="empty catalog"):
        RetrievalIndex.build(np.zeros((0, 4), dtype=np.float32), [], embedder_id="x")


def test_mean_features_averages_numbers_and_votes_categories():
    neighbours = [
        Neighbour("a", "A", "rock", 0.1, features(genre="rock", key="D", tempo=100, energy=0.2, time_signature=3)),
        Neighbour("b", "B", "pop", 0.2, features(genre="pop", key="E", tempo=130, energy=0.4, time_signature=4)),
        Neighbour("c", "C", "pop", 0.3, features(genre="pop", key="D", tempo=160, energy=0.9, time_signature=4)),
    ]
    mean = mean_features(neighbours)
    assert mean.tempo == pytest.approx(130)
    assert mean.energy == pytest.approx(0.5)
    assert (mean.genre, mean.key, mean.time_signature) == ("pop", "D", 4)
    # A tie goes to the nearest neighbour.
    assert mean_features(neighbours[:2]).genre == "rock"
