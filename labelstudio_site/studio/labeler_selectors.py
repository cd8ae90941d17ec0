"""Reads for admins about what labelers see: the hidden truth behind an assignment's blind keys."""

from typing import Any

from labelstudio_site.studio.models import Assignment, Variant
from labelstudio_site.studio.services import variant_keys


def assignment_reveal(*, assignment: Assignment) -> dict[str, Any]:
    """Per blind key (a, b, ...) of the assignment, the variant behind it and its parsed features.

    This is exactly what a labeler must never see; simulated labelers use it as their hidden truth.

    Returns:
        ``assignment_id``, ``task_id``, ``round_id``, ``cover_id``, ``labeler`` (username), ``status`` and
        ``variants``: per key, in the assignment's order, ``key``, ``variant_id``, ``index`` (row in the cover's
        batch), ``features`` (None when the variant has none) and ``duration_s``.
    """
    variants = Variant.objects.in_bulk(assignment.order)
    return {
        "assignment_id": assignment.pk,
        "task_id": assignment.task_id,
        "round_id": assignment.task.round_id,
        "cover_id": assignment.task.cover_id,
        "labeler": assignment.labeler.get_username(),
        "status": assignment.status,
        "variants": [
            {
                "key": key,
                "variant_id": variant_id,
                "index": variants[variant_id].index,
                "features": variants[variant_id].features,
                "duration_s": variants[variant_id].duration_s,
            }
            for key, variant_id in zip(variant_keys(len(assignment.order)), assignment.order, strict=True)
        ],
    }


def assignment_for_reveal(*, assignment_id: int) -> Assignment | None:
    """The assignment with its task and labeler, or None."""
    return Assignment.objects.select_related("task", "labeler").filter(pk=assignment_id).first()
