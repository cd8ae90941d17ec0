"""Writes that belong to no single app: the demo accounts."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.db import transaction

from labelstudio_site.studio.roles import LABELERS_GROUP


@transaction.atomic
def demo_accounts_ensure(
    *, admin_username: str, admin_password: str, labeler_username: str, labeler_password: str
) -> tuple[AbstractUser, AbstractUser]:
    """Create (or reset the passwords of) a demo superuser and a demo labeler; safe to run on every start."""
    user_model = get_user_model()
    admin, _ = user_model.objects.get_or_create(username=admin_username)
    admin.is_staff = admin.is_superuser = True
    admin.set_password(admin_password)
    admin.save()

    labeler, _ = user_model.objects.get_or_create(username=labeler_username)
    labeler.is_staff = labeler.is_superuser = False
    labeler.set_password(labeler_password)
    labeler.save()
    labeler.groups.add(Group.objects.get(name=LABELERS_GROUP))
    return admin, labeler
