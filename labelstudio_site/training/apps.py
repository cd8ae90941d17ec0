from django.apps import AppConfig


class TrainingConfig(AppConfig):
    """Model versions (captioner adapters, reward models), dataset exports and training runs."""

    name = "labelstudio_site.training"
    label = "training"
