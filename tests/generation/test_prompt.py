import dataclasses
from typing import Any

import pytest

from generation.features import FEATURE_NAMES, PITCH_CLASSES, AcousticFeatures
from generation.prompt import PROMPT_RULES, PromptRule, features_to_prompt, prompt_table_markdown
from tests.generation.conftest import ROCK

BASE = ROCK


def prompt_with(**changes: Any) -> str:
    return features_to_prompt(dataclasses.replace(BASE, **changes))


def test_full_prompt_reads_in_table_order() -> None:
    assert features_to_prompt(BASE) == (
        "rock, upbeat 128 BPM, in A minor, intense, wistful, steady groove, electronic synthesizers, "
        "with vocals, loud punchy mix, studio recording"
    )


def test_genre_comes_first() -> None:
    assert prompt_with(genre="hip hop").startswith("hip hop, ")


@pytest.mark.parametrize(
    ("tempo", "phrase"),
    [
        (40.0, "slow 40 BPM"),
        (79.9, "slow 80 BPM"),
        (80.0, "mid-tempo 80 BPM"),
        (109.99, "mid-tempo 110 BPM"),
        (110.0, "upbeat 110 BPM"),
        (139.0, "upbeat 139 BPM"),
        (140.0, "fast 140 BPM"),
        (220.0, "fast 220 BPM"),
    ],
)
def test_tempo_buckets_and_number(tempo: float, phrase: str) -> None:
    assert prompt_with(tempo=tempo).split(", ")[1] == phrase


@pytest.mark.parametrize(
    ("energy", "word"),
    [(0.0, "calm"), (0.2499, "calm"), (0.25, "relaxed"), (0.5, "driving"), (0.7499, "driving"), (0.75, "intense")],
)
def test_energy_bucket_edges_belong_to_the_upper_bucket(energy: float, word: str) -> None:
    assert word in prompt_with(energy=energy).split(", ")


@pytest.mark.parametrize(
    ("valence", "word"),
    [(0.0, "melancholic"), (0.3, "wistful"), (0.5, "warm"), (0.75, "bright and joyful"), (1.0, "bright and joyful")],
)
def test_valence_words(valence: float, word: str) -> None:
    assert word in prompt_with(valence=valence).split(", ")


@pytest.mark.parametrize(
    ("acousticness", "words"),
    [
        (0.0, "electronic synthesizers"),
        (0.34, "electronic synthesizers"),
        (0.35, "acoustic and electronic instruments"),
        (0.65, "acoustic instruments"),
        (1.0, "acoustic instruments"),
    ],
)
def test_acousticness_words(acousticness: float, words: str) -> None:
    assert words in prompt_with(acousticness=acousticness).split(", ")


@pytest.mark.parametrize(
    ("instrumentalness", "words"), [(0.0, "with vocals"), (0.49, "with vocals"), (0.5, "instrumental")]
)
def test_instrumentalness_words(instrumentalness: float, words: str) -> None:
    phrases = prompt_with(instrumentalness=instrumentalness).split(", ")
    assert words in phrases
    assert ("with vocals" in phrases) != ("instrumental" in phrases)


@pytest.mark.parametrize(
    ("danceability", "words"), [(0.0, "loose free rhythm"), (0.35, "steady groove"), (0.65, "danceable beat")]
)
def test_danceability_words(danceability: float, words: str) -> None:
    assert words in prompt_with(danceability=danceability).split(", ")


@pytest.mark.parametrize("key", PITCH_CLASSES)
@pytest.mark.parametrize("mode", ["major", "minor"])
def test_key_and_mode(key: str, mode: str) -> None:
    assert f"in {key} {mode}" in prompt_with(key=key, mode=mode).split(", ")


@pytest.mark.parametrize(("signature", "phrase"), [(3, "in 3/4"), (5, "in 5/4"), (6, "in 6/4"), (7, "in 7/4")])
def test_time_signature_is_said_when_not_four(signature: int, phrase: str) -> None:
    assert phrase in prompt_with(time_signature=signature).split(", ")


def test_four_four_goes_unsaid() -> None:
    assert "/4" not in prompt_with(time_signature=4)


@pytest.mark.parametrize(("speechiness", "words"), [(0.1, None), (0.33, "rap vocals"), (0.66, "spoken word")])
def test_speechiness_adds_words_only_when_speech_is_present(speechiness: float, words: str | None) -> None:
    phrases = prompt_with(speechiness=speechiness).split(", ")
    if words is None:
        assert not {"rap vocals", "spoken word"} & set(phrases)
    else:
        assert words in phrases


@pytest.mark.parametrize(
    ("loudness", "words"), [(-60.0, "soft quiet mix"), (-18.0, "balanced mix"), (-8.0, "loud punchy mix")]
)
def test_loudness_words(loudness: float, words: str) -> None:
    assert words in prompt_with(loudness=loudness).split(", ")


def test_liveness_words() -> None:
    assert "studio recording" in prompt_with(liveness=0.79)
    assert "live recording with audience" in prompt_with(liveness=0.8)


# For each feature, a value whose prompt must differ from BASE's.
CHANGED = {
    "genre": "jazz",
    "key": "C",
    "mode": "major",
    "time_signature": 3,
    "tempo": 70.0,
    "loudness": -30.0,
    "acousticness": 0.9,
    "danceability": 0.9,
    "energy": 0.1,
    "instrumentalness": 0.9,
    "liveness": 0.95,
    "speechiness": 0.9,
    "valence": 0.9,
}


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_every_feature_influences_the_prompt(name: str) -> None:
    assert prompt_with(**{name: CHANGED[name]}) != features_to_prompt(BASE)


def test_the_table_reads_every_feature() -> None:
    read = set().union(*(rule.fields_read() for rule in PROMPT_RULES))
    assert read == set(FEATURE_NAMES)


def test_prompt_is_deterministic() -> None:
    copy = AcousticFeatures(**BASE.to_dict())
    assert {features_to_prompt(BASE) for _ in range(5)} | {features_to_prompt(copy)} == {features_to_prompt(BASE)}


def test_markdown_table_has_a_row_per_bucket_and_every_phrase() -> None:
    table = prompt_table_markdown()
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert len(rows) == sum(len(rule.phrases) for rule in PROMPT_RULES)
    assert "| `tempo` (beats per minute, with the rounded number) | < 80 | `slow {tempo:.0f} BPM` |" in table
    assert "| `tempo` | ≥ 140 | `fast {tempo:.0f} BPM` |" in table
    assert "| `energy` | 0.25 to < 0.5 | `relaxed` |" in table
    assert "| `time_signature` | 4 to < 5 | (nothing) |" in table
    for rule in PROMPT_RULES:
        for phrase in rule.phrases:
            assert not phrase or f"`{phrase}`" in table


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"feature": "bpm", "phrases": ("x",)}, "not a feature"),
        ({"feature": "tempo", "phrases": ("a", "b")}, "need 1 phrases"),
        ({"feature": "tempo", "phrases": ("a", "b", "c"), "edges": (2.0, 1.0)}, "strictly ascending"),
    ],
)
def test_malformed_rules_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PromptRule(**kwargs)
