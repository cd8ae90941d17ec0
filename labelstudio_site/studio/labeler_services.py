"""Writes for labeler accounts made in bulk by admins (simulated labelers, scripted onboarding)."""

import secrets
from dataclasses import dataclass

from django.db import transaction

from labelstudio_site.studio.services import LabelingError, labeler_create

# Each account hashes a password (PBKDF2, ~0.3 s on one core): 100 keeps one request under the 30 s gunicorn timeout
# at the Django default hasher; clients that need more accounts call again.
MAX_LABELERS_PER_CALL = 100


@dataclass(frozen=True)
class LabelerCredentials:
    username: str
    password: str
    token: str


@transaction.atomic
def labelers_create(
    *, count: int | None = None, usernames: list[str] | None = None, prefix: str = "sim"
) -> list[LabelerCredentials]:
    """Create labeler accounts (labelers group, API token, random password), all or none.

    Args:
        count: make this many accounts named ``<prefix>-<6 random hex>-<i>`` (i from 1).
        usernames: or make exactly these accounts.
        prefix: the name prefix for ``count`` (default ``sim``).

    Returns:
        The credentials, in the order the accounts were made.

    Raises:
        LabelingError: neither or both of count and usernames, a count out of range, a repeated or taken username
            (nothing is created).
    """
    if (count is None) == (usernames is None):
        raise LabelingError("give either a count or a list of usernames")
    if usernames is None:
        assert count is not None
        if not 1 <= count <= MAX_LABELERS_PER_CALL:
            raise LabelingError(f"the count must be between 1 and {MAX_LABELERS_PER_CALL}")
        batch = secrets.token_hex(3)
        usernames = [f"{prefix}-{batch}-{i}" for i in range(1, count + 1)]
    if not usernames or len(usernames) > MAX_LABELERS_PER_CALL:
        raise LabelingError(f"give between 1 and {MAX_LABELERS_PER_CALL} usernames")
    repeated = sorted({name for name in usernames if usernames.count(name) > 1})
    if repeated:
        raise LabelingError(f"usernames repeated: {', '.join(repeated)}")
    created = []
    for username in usernames:
        _, password, token = labeler_create(username=username)
        created.append(LabelerCredentials(username=username, password=password, token=token))
    return created
