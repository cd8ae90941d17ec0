"""An RL run against a reward model that reads covers through the captioner: GRPO's reward function gets each cover's
captioner embedding (the stored one, or one computed again for a cover rendered before it was stored), while the
captioner's instruction still comes from the CLIP's neighbours."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from generation.caption import Captioner
from generation.config import TINY_DIR
from generation.embed import Embedder
from generation.images import load_cover_image
from labelstudio_site.studio import services as studio_services
from labelstudio_site.studio.models import CoverEmbedding
from labelstudio_site.training.exports import PreferenceExportOptions, preference_export_build, preference_export_start
from labelstudio_site.training.services import model_version_base_ensure
from rlhf import captioner_rl
from tests.training.test_exports import labeled_round

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("one_torch_thread")]


def test_an_rl_run_scores_with_the_covers_captioner_embeddings_stored_or_computed_again(
    studio: Path, run_to_end: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    generation_round = labeled_round({"ann": [2, 1, 0], "bob": [2, 1, 0]})
    first, second = generation_round.covers.order_by("pk")
    images = {cover.pk: load_cover_image(cover.image.path) for cover in (first, second)}
    clip = Embedder.from_config(TINY_DIR / "clip")
    captioner = Captioner.from_config(TINY_DIR / "captioner").image_embedder
    # The first cover's stored vector is one no embedder computes, so the test sees which vector the reward read.
    stored = np.random.default_rng(0).normal(size=captioner.dimension).astype(np.float32)
    for cover in (first, second):
        studio_services.cover_embedding_store(
            cover_id=cover.pk, embedder_id=clip.model_id, vector=clip.embed([images[cover.pk]])[0]
        )
        vector = stored if cover == first else captioner.embed([images[cover.pk]])[0]
        studio_services.cover_embedding_store(cover_id=cover.pk, embedder_id=captioner.model_id, vector=vector)
    export = preference_export_build(export=preference_export_start(name="p", options=PreferenceExportOptions()))
    config = {"cover_encoder": "captioner", "eval_fraction": 0.0, "num_train_epochs": 1}
    reward = run_to_end(kind="reward", name="rm", config=config, dataset_export=export).result_version
    assert reward.base_model_id == captioner.model_id
    # The second cover as one rendered before the captioner's embedding was stored.
    CoverEmbedding.objects.filter(cover=second, embedder_id=captioner.model_id).delete()

    seen: dict[str, np.ndarray] = {}
    results: list[captioner_rl.CaptionerRLResult] = []
    tune = captioner_rl.tune_captioner

    def recording(config: Any, *, covers: list[captioner_rl.RLCover], **kwargs: Any) -> Any:
        seen.update({cover.cover_id: cover.embedding for cover in covers})
        results.append(tune(config, covers=covers, **kwargs))
        return results[-1]

    monkeypatch.setattr(captioner_rl, "tune_captioner", recording)
    rl_config = {"max_steps": 1, "group_size": 2, "per_device_train_batch_size": 4}
    run_to_end(
        kind="rl",
        name="rl",
        config=rl_config,
        parent_version=model_version_base_ensure(profile="tiny"),
        reward_version=reward,
    )
    # The reward model judged the step's completions (it would refuse embeddings of another width).
    assert len(results[0].preference_history) == 1
    assert sorted(seen) == sorted([str(first.pk), str(second.pk)])
    assert np.array_equal(seen[str(first.pk)], stored)
    assert np.allclose(seen[str(second.pk)], captioner.embed([images[second.pk]])[0], atol=1e-6)
