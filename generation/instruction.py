"""The captioner's instruction, in the paper's three parts: role, MusicOSet feature definitions, expected JSON.

With retrieval (RAG) a fourth part gives the neighbours' genres and averaged features; zero-shot leaves it out.
"""

from collections.abc import Sequence

from generation.features import FEATURE_DEFINITIONS, FEATURE_NAMES, AcousticFeatures

ROLE = (
    "You are a music producer. Look at this album cover and describe the music on the album as the acoustic "
    "features of the MusicOSet dataset (Spotify's audio features)."
)
# Beyond this many genres the list would dominate the prompt; constrained decoding enforces the vocabulary anyway.
MAX_LISTED_GENRES = 60
EXAMPLE_OUTPUT = (
    '{"genre": "<genre>", "key": "A", "mode": "minor", "time_signature": 4, "tempo": 96.0, "loudness": -8.5, '
    '"acousticness": 0.3, "danceability": 0.6, "energy": 0.7, "instrumentalness": 0.05, "liveness": 0.1, '
    '"speechiness": 0.05, "valence": 0.4}'
)


def build_instruction(
    *, genres: Sequence[str], context: AcousticFeatures | None = None, neighbour_genres: Sequence[str] = ()
) -> str:
    """The text that goes with the cover image to the captioner.

    Args:
        genres: the catalog's genre vocabulary.
        context: the neighbours' mean features (RAG); None for zero-shot.
        neighbour_genres: the neighbours' genres, nearest first, shown with the context.
    """
    definitions = "\n".join(f"- {name}: {FEATURE_DEFINITIONS[name]}" for name in FEATURE_NAMES)
    if len(genres) <= MAX_LISTED_GENRES:
        allowed = "Allowed genres: " + ", ".join(genres) + "."
    else:
        allowed = f"The genre is one of the catalog's {len(genres)} genres."
    parts = [
        ROLE,
        f"Features:\n{definitions}\n{allowed}",
        f"Answer with one JSON object with exactly these fields and nothing else, for example:\n{EXAMPLE_OUTPUT}",
    ]
    if context is not None:
        parts.append(
            "Albums with similar covers in the catalog are "
            + ", ".join(neighbour_genres)
            + f"; their average features are:\n{context.to_json()}"
        )
    return "\n\n".join(parts)
