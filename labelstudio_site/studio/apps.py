from django.apps import AppConfig


class StudioConfig(AppConfig):
    """Covers, generation rounds, variants, label tasks, assignments, ratings and rankings."""

    name = "labelstudio_site.studio"
    label = "studio"
