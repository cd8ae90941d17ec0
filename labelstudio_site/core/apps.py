from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Site-wide pieces no other app owns: health checks, start-up checks, the landing page, demo accounts."""

    name = "labelstudio_site.core"
    label = "core"

    def ready(self) -> None:
        from labelstudio_site.core import lookups  # noqa: F401 - registers the any_of lookup
