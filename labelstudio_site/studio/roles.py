"""Who may label: members of this group (admins are staff users)."""

LABELERS_GROUP = "labelers"


def is_labeler(user: object) -> bool:
    """A signed-in member of the labelers group."""
    return bool(getattr(user, "is_authenticated", False)) and user.groups.filter(name=LABELERS_GROUP).exists()  # type: ignore[attr-defined]
