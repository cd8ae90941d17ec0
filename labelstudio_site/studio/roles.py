"""Who may label: members of this group (admins are staff users)."""

LABELERS_GROUP = "labelers"
