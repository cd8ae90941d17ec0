"""The acoustic features the captioner writes, as MusicOSet (Spotify) defines them, and their JSON schema.

One ``AcousticFeatures`` is what the captioner emits for a cover, what the RAG context averages over neighbours,
and what the prompt mapping and the renderers read.
"""

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
MODES = ("major", "minor")
# Features in [0, 1], in MusicOSet's column order.
UNIT_FEATURES = (
    "acousticness",
    "danceability",
    "energy",
    "instrumentalness",
    "liveness",
    "speechiness",
    "valence",
)
TEMPO_RANGE = (40.0, 220.0)
LOUDNESS_RANGE = (-60.0, 0.0)
TIME_SIGNATURE_RANGE = (3, 7)
# Means of features (an album's over its songs, the RAG context's over neighbours) are rounded to this many decimals:
# Spotify reports features to 3-4 significant digits, more would be noise (and, in the captioner's prompt, tokens).
MEAN_DIGITS = 4
# Every numeric feature with its range: the error metric (MSE) and the schema use the same table.
NUMERIC_RANGES: dict[str, tuple[float, float]] = {
    "tempo": TEMPO_RANGE,
    "loudness": LOUDNESS_RANGE,
    **{name: (0.0, 1.0) for name in UNIT_FEATURES},
}

FEATURE_DEFINITIONS = {
    "genre": "the main genre of the music, one of the allowed genres",
    "key": "the tonic pitch class (C, C#, D, ... B)",
    "mode": "major or minor",
    "time_signature": "beats per bar, 3 to 7",
    "tempo": "beats per minute, 40 to 220",
    "loudness": "overall loudness in decibels, -60 to 0",
    "acousticness": "confidence that the track is acoustic, 0 to 1",
    "danceability": "how suitable the track is for dancing (tempo, rhythm stability, beat strength), 0 to 1",
    "energy": "perceived intensity and activity, 0 to 1",
    "instrumentalness": "likelihood that the track has no vocals, 0 to 1",
    "liveness": "likelihood that an audience is present in the recording, 0 to 1",
    "speechiness": "presence of spoken words, 0 to 1",
    "valence": "musical positiveness: high is happy or cheerful, low is sad or angry, 0 to 1",
}


class FeatureError(ValueError):
    """Text that is not a valid feature object (not JSON, a missing field, a value out of range)."""


@dataclass(frozen=True)
class AcousticFeatures:
    genre: str
    key: str
    mode: str
    time_signature: int
    tempo: float
    loudness: float
    acousticness: float
    danceability: float
    energy: float
    instrumentalness: float
    liveness: float
    speechiness: float
    valence: float

    @property
    def tonic_pitch_class(self) -> int:
        return PITCH_CLASSES.index(self.key)

    def to_dict(self) -> dict[str, Any]:
        # Every field is a scalar: a flat dict equals asdict() without its deep copies (3x faster).
        return {name: getattr(self, name) for name in FEATURE_NAMES}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(", ", ": "))


FEATURE_NAMES = tuple(field.name for field in fields(AcousticFeatures))


def feature_json_schema(genres: Sequence[str]) -> dict[str, Any]:
    """The JSON schema that constrained decoding enforces: every field required, enums and ranges, nothing else.

    Args:
        genres: the catalog's genre vocabulary; the only values ``genre`` may take.
    """
    if not genres:
        raise ValueError("the genre vocabulary is empty: import a catalog first")
    properties: dict[str, Any] = {
        "genre": {"type": "string", "enum": list(genres)},
        "key": {"type": "string", "enum": list(PITCH_CLASSES)},
        "mode": {"type": "string", "enum": list(MODES)},
        "time_signature": {
            "type": "integer",
            "minimum": TIME_SIGNATURE_RANGE[0],
            "maximum": TIME_SIGNATURE_RANGE[1],
        },
    }
    for name, (low, high) in NUMERIC_RANGES.items():
        properties[name] = {"type": "number", "minimum": low, "maximum": high}
    ordered = {name: properties[name] for name in FEATURE_NAMES}
    return {
        "type": "object",
        "properties": ordered,
        "required": list(FEATURE_NAMES),
        "additionalProperties": False,
    }


def features_from_mapping(data: Mapping[str, Any], genres: Sequence[str]) -> AcousticFeatures:
    """Validate a decoded JSON object against the schema's rules and build the features.

    Raises:
        FeatureError: naming the first field that is missing, of the wrong type or out of range.
    """
    missing = [name for name in FEATURE_NAMES if name not in data]
    if missing:
        raise FeatureError(f"missing fields: {', '.join(missing)}")
    extra = sorted(set(data) - set(FEATURE_NAMES))
    if extra:
        raise FeatureError(f"unknown fields: {', '.join(extra)}")
    for name, allowed in (("genre", genres), ("key", PITCH_CLASSES), ("mode", MODES)):
        if data[name] not in allowed:
            raise FeatureError(f"{name} {data[name]!r} is not one of the allowed values")
    signature = data["time_signature"]
    if isinstance(signature, bool) or not isinstance(signature, int):
        raise FeatureError(f"time_signature {signature!r} is not an integer")
    if not TIME_SIGNATURE_RANGE[0] <= signature <= TIME_SIGNATURE_RANGE[1]:
        raise FeatureError(f"time_signature {signature} is outside {TIME_SIGNATURE_RANGE}")
    numbers: dict[str, float] = {}
    for name, (low, high) in NUMERIC_RANGES.items():
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FeatureError(f"{name} {value!r} is not a number")
        if not low <= value <= high:
            raise FeatureError(f"{name} {value} is outside [{low:g}, {high:g}]")
        numbers[name] = float(value)
    return AcousticFeatures(
        genre=data["genre"], key=data["key"], mode=data["mode"], time_signature=signature, **numbers
    )


def parse_features(text: str, genres: Sequence[str]) -> AcousticFeatures:
    """Parse the captioner's raw text (one JSON object) into features.

    Raises:
        FeatureError: when the text is not JSON or breaks the schema.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeatureError(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise FeatureError("not a JSON object")
    return features_from_mapping(data, genres)
