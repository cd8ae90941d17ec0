"""What an admin may set on a round, declared once: ``services.round_create`` enforces it; the round form, the API's
serializer and the model's help texts show the same bounds. Inclusive (low, high) ranges."""

from generation.config import DURATION_S_RANGE, MAX_VARIANTS

# Variants of one cover in a round, every captioner version's together: one label task has the labeler rank them all,
# and the pipeline renders them as one batch.
VARIANTS_PER_TASK = (1, MAX_VARIANTS)
# A comparison round renders the variants per cover from each of its two versions.
COMPARISON_VARIANTS_PER_COVER = (1, MAX_VARIANTS // 2)
SEED = (0, 2**63 - 1)  # GenerationRound.seed is a signed 64-bit column
OVERLAP_K = (1, 50)
GOLD_RATE = (0.0, 1.0)
DURATION_S = DURATION_S_RANGE
VARIANTS_HELP = (
    f"{VARIANTS_PER_TASK[0]}-{VARIANTS_PER_TASK[1]}, or {COMPARISON_VARIANTS_PER_COVER[0]}-"
    f"{COMPARISON_VARIANTS_PER_COVER[1]} in a comparison round"
)
