"""The MusicOSet catalog: artists, albums (one cover each, features aggregated over their tracks), songs, tracks."""

from django.db import models


class Split(models.TextChoices):
    TRAIN = "train", "train"
    TEST = "test", "test"


MUSICOSET_ID_HELP = "Spotify id as MusicOSet gives it (22 base62 characters); the natural key that imports match on."


class Artist(models.Model):
    musicoset_id = models.CharField(max_length=64, help_text=MUSICOSET_ID_HELP)
    name = models.CharField(max_length=500, help_text="Artist name as in artists.csv.")
    followers = models.PositiveBigIntegerField(null=True, blank=True, help_text="Spotify followers; empty if unknown.")
    popularity = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Spotify popularity 0-100; empty if unknown."
    )
    artist_type = models.CharField(max_length=64, blank=True, help_text="singer, band, rapper, DJ, duo, ...")
    main_genre = models.CharField(
        max_length=200, blank=True, help_text="Main genre; empty where MusicOSet has none ('-')."
    )
    genres = models.JSONField(default=list, blank=True, help_text="All of the artist's Spotify genres, a list.")
    image_url = models.CharField(max_length=500, blank=True, help_text="Artist picture URL as in artists.csv.")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["musicoset_id"], name="catalog_artist_unique_musicoset_id")]

    def __str__(self) -> str:
        return self.name


class Song(models.Model):
    musicoset_id = models.CharField(max_length=64, help_text=MUSICOSET_ID_HELP)
    name = models.CharField(max_length=500, help_text="Song name (songs.csv song_name).")
    billboard = models.TextField(blank=True, help_text="The Billboard chart entry as MusicOSet has it.")
    artists = models.ManyToManyField(
        Artist, blank=True, related_name="songs", help_text="Credited artists found in artists.csv."
    )
    artist_names = models.JSONField(
        default=list, blank=True, help_text="All credited artist names in credit order, found in artists.csv or not."
    )
    popularity = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Spotify popularity 0-100.")
    explicit = models.BooleanField(default=False, help_text="Spotify's explicit-lyrics flag.")
    song_type = models.CharField(max_length=32, blank=True, help_text="Solo or Collaboration.")
    genre = models.CharField(
        max_length=200, blank=True, help_text="First credited artist's main genre, else its album's; may be empty."
    )
    features = models.JSONField(
        null=True,
        blank=True,
        help_text="The song's row of acoustic_features.csv (key and mode as names, duration_ms); null if it had none.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["musicoset_id"], name="catalog_song_unique_musicoset_id")]

    def __str__(self) -> str:
        return self.name


class Album(models.Model):
    musicoset_id = models.CharField(max_length=64, help_text=MUSICOSET_ID_HELP)
    name = models.CharField(max_length=500, help_text="Album name as in albums.csv.")
    billboard = models.TextField(blank=True, help_text="The Billboard chart entry as MusicOSet has it.")
    artists = models.ManyToManyField(
        Artist, blank=True, related_name="albums", help_text="Credited artists found in artists.csv."
    )
    artist_names = models.JSONField(
        default=list, blank=True, help_text="All credited artist names in credit order, found in artists.csv or not."
    )
    popularity = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Spotify popularity 0-100.")
    total_tracks = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Tracks on the release per Spotify (may exceed the tracks in the catalog)."
    )
    album_type = models.CharField(max_length=32, blank=True, help_text="album, single or compilation.")
    genre = models.CharField(
        max_length=200, help_text="Main genre of the first credited artist that has one; the captioner's vocabulary."
    )
    image_url = models.CharField(
        max_length=500, blank=True, help_text="Cover URL as in albums.csv (relative path in the demo fixture)."
    )
    cover = models.ImageField(
        upload_to="catalog/covers/",
        blank=True,
        help_text="The cover image in media storage, named by a hash of its content; empty if no file was found.",
    )
    split = models.CharField(
        max_length=8, choices=Split.choices, help_text="train (index, RAG context) or test (held-out evaluation)."
    )
    features = models.JSONField(
        help_text="The aggregated AcousticFeatures (generation.features): means and majority key, mode, metre."
    )
    track_count = models.PositiveSmallIntegerField(
        default=0, help_text="Tracks of the album in the catalog; the features average those with acoustic features."
    )
    songs = models.ManyToManyField(
        Song, through="Track", related_name="albums", help_text="The album's songs, through tracks.csv."
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["musicoset_id"], name="catalog_album_unique_musicoset_id"),
            models.CheckConstraint(condition=models.Q(split__in=Split.values), name="catalog_album_split_valid"),
        ]
        indexes = [
            models.Index(fields=["split"], name="catalog_album_split_idx"),
            models.Index(fields=["genre"], name="catalog_album_genre_idx"),
        ]

    def __str__(self) -> str:
        return self.name


class Track(models.Model):
    album = models.ForeignKey(Album, on_delete=models.CASCADE, related_name="tracks", help_text="The album.")
    song = models.ForeignKey(Song, on_delete=models.CASCADE, related_name="tracks", help_text="The song on it.")
    track_number = models.PositiveSmallIntegerField(help_text="Position on the album, from 1.")
    release_date = models.CharField(
        max_length=10, blank=True, help_text="As in tracks.csv: YYYY, YYYY-MM or YYYY-MM-DD per the precision."
    )
    release_date_precision = models.CharField(max_length=8, blank=True, help_text="year, month or day.")

    class Meta:
        ordering = ["album", "track_number"]
        constraints = [models.UniqueConstraint(fields=["album", "song"], name="catalog_track_unique_album_song")]

    def __str__(self) -> str:
        return f"{self.album_id}#{self.track_number}"
