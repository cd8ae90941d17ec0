"""The music prompt: a deterministic mapping from ``AcousticFeatures`` to the text MusicGen reads.

As in the AlbumGen paper, every feature becomes a few words chosen by bucket (tempo 128 -> "upbeat 128 BPM",
valence 0.1 -> "melancholic"). ``PROMPT_RULES`` is the single source of truth: ``features_to_prompt`` walks it
in order and ``prompt_table_markdown`` renders it for the README, so the docs cannot drift from the code.
"""

from bisect import bisect_right
from dataclasses import dataclass
from string import Formatter

from generation.features import FEATURE_NAMES, AcousticFeatures

PHRASE_SEPARATOR = ", "


@dataclass(frozen=True)
class PromptRule:
    """One feature's buckets and the phrase each bucket adds to the prompt.

    Bucket ``i`` holds values in ``[edges[i - 1], edges[i])``: a value equal to an edge falls in the upper bucket.
    Phrases are ``str.format`` templates over the feature fields (``"{tempo:.0f} BPM"``); an empty phrase adds
    nothing, so a default (4/4, no speech) does not clutter the prompt.
    """

    feature: str
    phrases: tuple[str, ...]
    edges: tuple[float, ...] = ()
    describes: str = ""

    def __post_init__(self) -> None:
        if self.feature not in FEATURE_NAMES:
            raise ValueError(f"{self.feature!r} is not a feature")
        if len(self.phrases) != len(self.edges) + 1:
            raise ValueError(f"{self.feature}: {len(self.edges)} edges need {len(self.edges) + 1} phrases")
        if list(self.edges) != sorted(set(self.edges)):
            raise ValueError(f"{self.feature}: edges must be strictly ascending")

    def bucket(self, features: AcousticFeatures) -> int:
        """The index of the bucket that ``features`` falls in (0 for a rule without edges)."""
        return bisect_right(self.edges, getattr(features, self.feature))

    def phrase(self, features: AcousticFeatures) -> str:
        """The phrase this rule adds for ``features``; empty when its bucket adds nothing."""
        return self.phrases[self.bucket(features)].format(**features.to_dict())

    def fields_read(self) -> set[str]:
        """Every feature this rule's output depends on: the bucketed one and any named in a phrase."""
        names = {self.feature}
        for phrase in self.phrases:
            names.update(field.split(".")[0] for _, field, _, _ in Formatter().parse(phrase) if field)
        return names


# Order is prompt order: genre first, then rhythm and harmony, then mood, then production.
# Tempo edges follow the usual Italian-marking groups; unit features split at the thirds or halves of their range,
# except loudness, whose edges sit where MusicOSet's tracks cluster (most lie between -15 and -5 dB).
PROMPT_RULES: tuple[PromptRule, ...] = (
    PromptRule("genre", ("{genre}",), describes="the genre word, as the catalog spells it"),
    PromptRule(
        "tempo",
        ("slow {tempo:.0f} BPM", "mid-tempo {tempo:.0f} BPM", "upbeat {tempo:.0f} BPM", "fast {tempo:.0f} BPM"),
        (80.0, 110.0, 140.0),
        "beats per minute, with the rounded number",
    ),
    PromptRule("key", ("in {key} {mode}",), describes="tonic and mode"),
    PromptRule(
        "time_signature",
        ("in {time_signature}/4", "", "in {time_signature}/4"),
        (4, 5),
        "beats per bar; 4/4 is the default and goes unsaid",
    ),
    PromptRule("energy", ("calm", "relaxed", "driving", "intense"), (0.25, 0.5, 0.75), "perceived intensity"),
    PromptRule(
        "valence",
        ("melancholic", "wistful", "warm", "bright and joyful"),
        (0.25, 0.5, 0.75),
        "musical positiveness",
    ),
    PromptRule(
        "danceability",
        ("loose free rhythm", "steady groove", "danceable beat"),
        (0.35, 0.65),
        "how suitable for dancing",
    ),
    PromptRule(
        "acousticness",
        ("electronic synthesizers", "acoustic and electronic instruments", "acoustic instruments"),
        (0.35, 0.65),
        "acoustic versus electronic timbre",
    ),
    PromptRule("instrumentalness", ("with vocals", "instrumental"), (0.5,), "whether there are vocals"),
    PromptRule(
        "speechiness", ("", "rap vocals", "spoken word"), (0.33, 0.66), "spoken words, split at Spotify's thirds"
    ),
    PromptRule("loudness", ("soft quiet mix", "balanced mix", "loud punchy mix"), (-18.0, -8.0), "loudness in dB"),
    PromptRule("liveness", ("studio recording", "live recording with audience"), (0.8,), "audience presence"),
)


def features_to_prompt(features: AcousticFeatures) -> str:
    """Turn features into a MusicGen prompt: one phrase per rule of ``PROMPT_RULES``, in order, comma-separated.

    Pure and deterministic: the same features always give the same text.

    Args:
        features: the captioner's (or the RAG context's) acoustic features.

    Returns:
        The prompt, e.g. ``"rock, upbeat 128 BPM, in A minor, driving, melancholic, steady groove, ..."``.
    """
    phrases = (rule.phrase(features) for rule in PROMPT_RULES)
    return PHRASE_SEPARATOR.join(phrase for phrase in phrases if phrase)


def _format_edge(value: float) -> str:
    return f"{value:g}"


def _bucket_range(edges: tuple[float, ...], index: int) -> str:
    if not edges:
        return "any"
    if index == 0:
        return f"< {_format_edge(edges[0])}"
    if index == len(edges):
        return f"≥ {_format_edge(edges[-1])}"
    return f"{_format_edge(edges[index - 1])} to < {_format_edge(edges[index])}"


def prompt_table_markdown() -> str:
    """Render ``PROMPT_RULES`` as a markdown table (feature, value range, phrase) for the README.

    Returns:
        The table, one row per bucket, in prompt order, ending with a newline.
    """
    lines = [
        f"Phrases appear in this order, joined by `{PHRASE_SEPARATOR}`; `{{name}}` is the feature's value.",
        "",
        "| Feature | Range | Phrase |",
        "| --- | --- | --- |",
    ]
    for rule in PROMPT_RULES:
        for index, phrase in enumerate(rule.phrases):
            name = f"`{rule.feature}` ({rule.describes})" if index == 0 and rule.describes else f"`{rule.feature}`"
            shown = f"`{phrase}`" if phrase else "(nothing)"
            lines.append(f"| {name} | {_bucket_range(rule.edges, index)} | {shown} |")
    return "\n".join(lines) + "\n"
