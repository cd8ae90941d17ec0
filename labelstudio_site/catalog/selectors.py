"""Reads of the catalog: the genre vocabulary and album lists for the retrieval index and evaluation."""

from django.db.models import Count, QuerySet

from labelstudio_site.catalog.models import Album, Split


def catalog_genres() -> list[str]:
    """The genre vocabulary: the sorted distinct genres of the catalog's albums (the captioner may emit only these)."""
    return list(Album.objects.order_by("genre").values_list("genre", flat=True).distinct())


def album_list(
    *, split: Split | str | None = None, genre: str | None = None, with_cover: bool = False
) -> QuerySet[Album]:
    """Albums in a stable order (by MusicOSet id), optionally of one split or genre.

    Args:
        split: ``train`` (what the retrieval index holds) or ``test`` (held out). Default: both.
        genre: only albums of this genre. Default: all genres.
        with_cover: only albums that have a stored cover image (all the index can embed). Default: false.
    """
    albums = Album.objects.order_by("musicoset_id")
    if split is not None:
        albums = albums.filter(split=Split(split))
    if genre is not None:
        albums = albums.filter(genre=genre)
    if with_cover:
        albums = albums.exclude(cover="")
    return albums


def album_count_by_split() -> dict[str, int]:
    """Albums per split, every split present (zero when empty)."""
    counts = dict.fromkeys(Split.values, 0)
    for row in Album.objects.values("split").annotate(count=Count("pk")).order_by():
        counts[row["split"]] = row["count"]
    return counts
