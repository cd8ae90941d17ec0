from django.apps import AppConfig


class CatalogConfig(AppConfig):
    """The MusicOSet catalog: albums, songs, acoustic features, and the retrieval index built over their covers."""

    name = "labelstudio_site.catalog"
    label = "catalog"
