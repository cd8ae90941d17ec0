from django.contrib import admin

from labelstudio_site.catalog.models import Album, Artist, Song, Track


class TrackInline(admin.TabularInline):
    model = Track
    extra = 0
    fields = ("track_number", "song", "release_date", "release_date_precision")
    raw_id_fields = ("song",)
    ordering = ("track_number",)


@admin.register(Album)
class AlbumAdmin(admin.ModelAdmin):
    list_display = ("name", "credited", "genre", "split", "track_count", "album_type", "musicoset_id")
    list_filter = ("genre", "split", "album_type")
    search_fields = ("name", "musicoset_id", "artists__name")
    readonly_fields = ("musicoset_id",)
    filter_horizontal = ("artists",)
    inlines = (TrackInline,)

    @admin.display(description="artists")
    def credited(self, album: Album) -> str:
        return ", ".join(album.artist_names)


@admin.register(Song)
class SongAdmin(admin.ModelAdmin):
    list_display = ("name", "credited", "genre", "explicit", "song_type", "musicoset_id")
    list_filter = ("genre", "explicit", "song_type")
    search_fields = ("name", "musicoset_id", "artists__name")
    readonly_fields = ("musicoset_id",)
    filter_horizontal = ("artists",)

    @admin.display(description="artists")
    def credited(self, song: Song) -> str:
        return ", ".join(song.artist_names)


@admin.register(Artist)
class ArtistAdmin(admin.ModelAdmin):
    list_display = ("name", "main_genre", "artist_type", "popularity", "followers", "musicoset_id")
    list_filter = ("main_genre", "artist_type")
    search_fields = ("name", "musicoset_id")
    readonly_fields = ("musicoset_id",)
