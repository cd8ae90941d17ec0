"""Proof that the loop learns what labelers like about a cover (issues #7 and #14), per cover-dependent taste.

Through the product's own code paths, on the ``trained`` profile (the demo's: a captioner that reads the cover):

1. restyled covers (their look drawn apart from the album's mood, so the neighbours' metadata does not give the taste
   away) of a seed neither the catalog nor its index uses are uploaded: the scale's labeled covers, half on each side
   of the taste's cover switch, and its held-out ones, other, clear covers;
2. a round of the base captioner renders the labeled covers (the GPU task's body); ``python -m rlhf simulate`` labels
   it through a live server with two labelers of the taste (noise 0.1);
3. a preference export trains a reward run (the cover-aware reward model), which an RL run optimises (GRPO on the
   export's covers only, ``run_rl``);
4. evaluation rounds of the held-out covers, base and tuned, one per sampling seed, are scored by the noise-free taste;
   a comparison round (base and tuned side by side) is labeled by the same simulated labelers.

Asserted per side of the switch and overall: the tuned captioner closes at least half of the gap between the base's
mean and its best-of-8 (per cover and seed the best noise-free score among the base's 8 variants, averaged), and its
win rate over the base in the comparison round (the round page's arithmetic: ranking pairs, a cluster bootstrap over
covers) is at least 70% with the interval's lower end above 50%. The test knows the taste only to pick and group
covers and to score the held-out rounds; the models see labels only.

The tastes: the four built in (colour, brightness, texture, composition) and two that nothing in the product knows
(``benchmarks/reward_unseen_tastes.py``: greenness, and grain over four features). Settings measured with
``benchmarks/captioner_rl_tastes.py`` (README): GRPO needs many covers and a KL to the parent to learn a switch
rather than one answer for every cover. What made the bar reachable is the captioner's writing head
(``fixtures/small/CAPTIONER.md``): its language model now carries the cover's look where it starts writing, which is
what the LoRA reads. Composition was short of the bar in the benchmark on a first writing-head build even with the
taste itself as the reward (0.21 / 0.52 of the gap; training reward 0.48 -> 0.55), so its case is an expected failure.

At the full scale (240 labeled covers, 200 RL steps, 3 seeds) a case takes 7-15 minutes on 2 cores, so every taste
runs there with ``-m slow`` (figures in the README). CI runs one unseen taste at half that (120 labeled covers, 100
steps, 2 seeds; about 6.5 minutes), with the same bars.
"""

import importlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from labelstudio_site.studio import services as studio_services
from labelstudio_site.studio.models import AssignmentStatus, Cover, GenerationRound
from labelstudio_site.studio.selectors import round_comparison
from labelstudio_site.training.exports import PreferenceExportOptions, preference_export_build, preference_export_start
from labelstudio_site.training.services import model_version_base_ensure
from rlhf.preferences import COVER_SWITCHES, CoverSwitch, SimCover
from rlhf.simulate import load_preference
from tests.rlhf.test_reward_tastes import held_out_against_the_oracle_ceiling, restyled_covers

pytestmark = [
    pytest.mark.learning,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("one_torch_thread"),
]

PROFILE = "trained"
# Held-out covers are clear ones: taste weight below 0.15 or above 0.85; covers in between blend both sides' tastes.
CLEAR = (0.15, 0.85)
VARIANTS = 8
LABELERS, NOISE = 2, 0.1
EXPORT = {"source": "ranking", "aggregate": "mean"}
REWARD_RUN = {"eval_fraction": 0.25, "seed": 0}
# 4 covers x 8 completions a step; the steps are the scale's.
RL_RUN = {
    "group_size": 8,
    "per_device_train_batch_size": 32,
    "learning_rate": 5e-3,
    "beta": 0.1,
    "seed": 0,
}
GAP_CLOSED, WIN_RATE = 0.5, 0.7


@dataclass(frozen=True)
class Scale:
    """How big a case is: covers per side, labeled (the export's, which RL tunes on) and held out; RL steps; the
    evaluation rounds' sampling seeds."""

    labeled: int
    held_out: int
    rl_steps: int
    evaluation_seeds: tuple[int, ...]


# Every taste, -m slow. With the colour taste as its own reward, 100 steps closed a third of the gap on the cool side
# and 200 most of it (README).
FULL = Scale(labeled=120, held_out=12, rl_steps=200, evaluation_seeds=(101, 102, 103))
CI = Scale(labeled=60, held_out=8, rl_steps=100, evaluation_seeds=(101, 102))


@dataclass(frozen=True)
class Taste:
    """The simulated labelers' taste: what ``rlhf simulate --preference`` takes, and the cover switch it turns on."""

    spec: str
    switch: CoverSwitch


UNSEEN = importlib.import_module("benchmarks.reward_unseen_tastes")  # tastes nothing in the product knows
TASTES = {
    **{name: Taste(f"rlhf.preferences:{name}", switch) for name, switch in COVER_SWITCHES.items()},
    **{
        name: Taste(f"benchmarks.reward_unseen_tastes:{name}", UNSEEN.SWITCHES[name])
        for name in ("green_acoustic", "grain_minor_energy_fast_loud")
    },
}


def pick_covers(folder: Path, taste: Taste, scale: Scale) -> tuple[list[Cover], list[Cover], dict[int, str]]:
    """Upload the labeled and the held-out covers (in file-name, i.e. random id, order); each cover's side."""
    switch = taste.switch
    labeled: dict[str, list[Path]] = {side: [] for side in switch.sides}
    held_out: dict[str, list[Path]] = {side: [] for side in switch.sides}
    for path in restyled_covers(folder):
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        side = switch.side(image)
        if len(labeled[side]) < scale.labeled:
            labeled[side].append(path)
        elif len(held_out[side]) < scale.held_out and not CLEAR[0] < switch.weight(image) < CLEAR[1]:
            held_out[side].append(path)
    assert all(len(paths) == scale.held_out for paths in held_out.values()), f"too few covers on a side: {taste.spec}"
    side_of: dict[int, str] = {}

    def upload(by_side: dict[str, list[Path]]) -> list[Cover]:
        covers = []
        for side, paths in by_side.items():
            for path in paths:
                cover = studio_services.cover_create(data=path.read_bytes(), name=path.name)[0]
                side_of[cover.pk] = side
                covers.append(cover)
        return covers

    return upload(labeled), upload(held_out), side_of


def taste_scores(generation_round: GenerationRound, taste: Taste) -> dict[int, list[float]]:
    """Per cover, the noise-free taste score of each of the round's variants."""
    score = load_preference(taste.spec)
    covers = {
        cover.pk: SimCover(Image.open(cover.image.path).convert("RGB"), "", 0)
        for cover in generation_round.covers.all()
    }
    scores: dict[int, list[float]] = {cover_id: [] for cover_id in covers}
    for cover_id, features in generation_round.variants.values_list("cover_id", "features"):
        scores[cover_id].append(score(covers[cover_id], features))
    return scores


# The case `bin/test --all` and CI run: a taste nothing in the product knows, at the CI scale. Every taste: full scale.
CI_TASTE = "green_acoustic"
COMPOSITION_SHORT = pytest.mark.xfail(
    reason="composition: short of the bar even with the taste itself as the reward (docstring)", raises=AssertionError
)
CASES = [
    pytest.param(CI_TASTE, CI, id=f"{CI_TASTE}-ci-scale"),
    *(
        pytest.param(
            name,
            FULL,
            id=name,
            marks=[pytest.mark.slow, *([COMPOSITION_SHORT] if name == "balance_loudness_key" else [])],
        )
        for name in TASTES
    ),
]


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_rl_against_the_labels_reward_model_closes_half_the_gap_to_best_of_n_on_every_side(
    name: str,
    scale: Scale,
    studio: Path,
    simulate_labelers: Callable[..., None],
    render_round: Callable[..., GenerationRound],
    run_to_end: Callable[..., Any],
    report: Callable[[str, Any], None],
) -> None:
    taste = TASTES[name]
    labeled, held_out, side_of = pick_covers(studio / "covers", taste, scale)
    sides = taste.switch.sides
    base = model_version_base_ensure(profile=PROFILE)

    # 1-3. Labels, export, reward model, RL on the export's covers.
    labeling = render_round(labeled, base, variants=VARIANTS, seed=1, overlap_k=LABELERS)
    oracle_file = studio / "oracle.jsonl"
    simulate_labelers(taste.spec, labelers=LABELERS, noise=NOISE, oracle_out=oracle_file)
    assert labeling.label_tasks.filter(assignments__status=AssignmentStatus.SUBMITTED).count() == len(labeled) * 2
    options = PreferenceExportOptions(**EXPORT, round_ids=[labeling.pk])
    export = preference_export_build(export=preference_export_start(name=name, options=options))
    reward = run_to_end(kind="reward", name=f"rm-{name}", config=REWARD_RUN, dataset_export=export).result_version
    # Its bar is test_reward_tastes'; here its figures show what RL had to learn from.
    held_out_against_the_oracle_ceiling(reward, export, oracle_file, side_of, report)
    # Nothing else runs while GRPO samples and steps: both cores.
    torch.set_num_threads(2)
    rl = run_to_end(
        kind="rl",
        name=f"rl-{name}",
        config={**RL_RUN, "max_steps": scale.rl_steps},
        parent_version=base,
        reward_version=reward,
    )
    torch.set_num_threads(1)
    report("RL run", rl.summary)
    assert rl.summary["covers"] == len(labeled), "RL tuned on covers outside its export"
    tuned = rl.result_version

    # 4. A comparison round of the held-out covers, base and tuned side by side, labeled by the same labelers. Before
    # the evaluation rounds, whose tasks the labelers would otherwise label too.
    comparison = render_round(
        held_out, base, variants=VARIANTS, seed=scale.evaluation_seeds[0], overlap_k=LABELERS, compare_with=tuned
    )
    simulate_labelers(taste.spec, labelers=LABELERS, noise=NOISE)
    wins = round_comparison(generation_round=comparison)
    assert wins is not None and wins["newer"]["id"] == tuned.pk
    ranking = wins["ranking"]
    report(
        "tuned vs base win rate (ranking) [95% interval]", (ranking["win_rate"], ranking["ci_low"], ranking["ci_high"])
    )

    # 5. Evaluation rounds of the held-out covers: the noise-free taste of base and tuned, per cover and seed.
    per_seed: dict[str, list[dict[int, list[float]]]] = {"base": [], "tuned": []}
    for seed in scale.evaluation_seeds:
        for which, version in (("base", base), ("tuned", tuned)):
            per_seed[which].append(taste_scores(render_round(held_out, version, variants=VARIANTS, seed=seed), taste))
    table = {}
    for group in (*sides, "overall"):
        covers = [cover.pk for cover in held_out if group in (side_of[cover.pk], "overall")]
        base_mean = statistics.mean(statistics.mean(s[c]) for s in per_seed["base"] for c in covers)
        best = statistics.mean(max(s[c]) for s in per_seed["base"] for c in covers)
        tuned_mean = statistics.mean(statistics.mean(s[c]) for s in per_seed["tuned"] for c in covers)
        table[group] = {
            "base": round(base_mean, 3),
            "best-of-8": round(best, 3),
            "tuned": round(tuned_mean, 3),
            "gap closed": round((tuned_mean - base_mean) / (best - base_mean), 2),
        }
    report("held-out covers, noise-free taste", table)

    short = [group for group, row in table.items() if row["gap closed"] < GAP_CLOSED]
    assert not short, f"less than {GAP_CLOSED} of the gap closed on {', '.join(short)}: {table}"
    assert ranking["win_rate"] >= WIN_RATE and ranking["ci_low"] > 0.5, ranking
