from django.db import migrations

# The group name is repeated here on purpose: migrations must not import code that may change later.
LABELERS_GROUP = "labelers"


def create_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.get_or_create(name=LABELERS_GROUP)


def delete_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=LABELERS_GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_group, delete_group)]
