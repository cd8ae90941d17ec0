"""Writes of model versions."""

from django.contrib.auth.models import User

from labelstudio_site.training.models import ModelKind, ModelVersion


def model_version_base_ensure(*, profile: str, created_by: User | None = None) -> ModelVersion:
    """The captioner version that is the profile's base model without an adapter; created on first use.

    Args:
        profile: ``tiny`` or ``full``.
        created_by: who asked for it first; empty for the system.
    """
    version, _ = ModelVersion.objects.get_or_create(
        kind=ModelKind.CAPTIONER,
        name=f"base ({profile})",
        defaults={"profile": profile, "created_by": created_by},
    )
    return version
