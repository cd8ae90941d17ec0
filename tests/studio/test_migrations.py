"""Data migrations of the studio, run forward from the state before them on rows of that state."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from labelstudio_site.studio.services import pipeline_config_for

BEFORE = [("studio", "0008_cover_embeddings")]
AFTER = [("studio", "0009_fingerprints_cover_resolved_checkpoints")]


@pytest.mark.django_db(transaction=True)
def test_unfinished_rounds_get_the_fingerprint_of_what_they_resolve_to_and_finished_ones_keep_theirs():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    version = old.get_model("training", "ModelVersion").objects.create(kind="captioner", name="base", profile="tiny")
    rounds = {
        status: old.get_model("studio", "GenerationRound").objects.create(
            name=status,
            captioner_version=version,
            variants_per_cover=2,
            seed=1,
            render_settings={"duration_s": 2.0},
            config_fingerprint="0123456789abcdef",
            status=status,
        )
        for status in ("queued", "running", "failed", "done")
    }

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps.get_model("studio", "GenerationRound")
    expected = pipeline_config_for(version=version, render_settings={"duration_s": 2.0}).fingerprint()
    fingerprints = {status: new.objects.get(pk=row.pk).config_fingerprint for status, row in rounds.items()}
    assert fingerprints == {"queued": expected, "running": expected, "failed": expected, "done": "0123456789abcdef"}

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # the latest schema again, for the tests after this one
