"""Which dataclass holds the options of each run kind. Light to import: the web validates launches without torch."""

from generation.config import EvaluationConfig
from labelstudio_site.training.models import RunKind
from rlhf.captioner_rl import CaptionerRLConfig
from rlhf.config import RewardTrainingConfig
from rlhf.sft_config import CaptionerSFTConfig

RUN_CONFIGS: dict[str, type] = {
    RunKind.SFT: CaptionerSFTConfig,
    RunKind.EVALUATE: EvaluationConfig,
    RunKind.REWARD: RewardTrainingConfig,
    RunKind.RL: CaptionerRLConfig,
}


def config_class(kind: str) -> type:
    """The rlhf/generation dataclass that holds a run kind's options."""
    try:
        return RUN_CONFIGS[kind]
    except KeyError:
        raise ValueError(f"no runner for {kind} runs") from None
