"""Unfinished rounds get the fingerprint that covers the checkpoints their config resolves to (PipelineConfig's since
this release): workers now refuse a round whose fingerprint differs from their own resolution, and every earlier
fingerprint would. Finished rounds keep the fingerprint they were rendered under."""

from django.db import migrations

from generation.loading import ModelLoadError
from labelstudio_site.studio.services import pipeline_config_for

UNFINISHED = ("queued", "running", "failed")


def refingerprint(apps, schema_editor):
    GenerationRound = apps.get_model("studio", "GenerationRound")
    for generation_round in GenerationRound.objects.filter(status__in=UNFINISHED).select_related("captioner_version"):
        config = pipeline_config_for(
            version=generation_round.captioner_version, render_settings=generation_round.render_settings
        )
        try:
            generation_round.config_fingerprint = config.fingerprint()
        except ModelLoadError:
            continue  # shipped weights missing here: its workers will say so when they claim it
        generation_round.save(update_fields=["config_fingerprint"])


class Migration(migrations.Migration):
    dependencies = [("studio", "0008_cover_embeddings")]

    operations = [migrations.RunPython(refingerprint, migrations.RunPython.noop)]
