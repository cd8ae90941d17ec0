"""Reads of model versions."""

from labelstudio_site.training.models import ModelKind, ModelVersion


def captioner_version_latest(*, profile: str) -> ModelVersion | None:
    """The newest captioner version of a profile: what a round uses when none is named."""
    return ModelVersion.objects.filter(kind=ModelKind.CAPTIONER, profile=profile).order_by("-created_at", "-pk").first()
