"""Loading checkpoints by hub id or local path, with errors a user can act on."""

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ModelLoadError(ValueError):
    """A checkpoint that cannot be found or read, named with what to do about it."""


def pretrained_or_explain(load: Callable[..., T], model_id_or_path: str, role: str, **kwargs: object) -> T:
    """Call a ``from_pretrained`` and turn "not found" into one sentence naming the role and the path.

    Args:
        load: e.g. ``AutoModel.from_pretrained``.
        model_id_or_path: a hub id (``org/name``) or a local directory.
        role: what the checkpoint is for ("embedder", "captioner", ...), for the message.
    """
    looks_local = model_id_or_path.startswith((".", "/", "~")) or Path(model_id_or_path).exists()
    if looks_local and not Path(model_id_or_path).expanduser().exists():
        raise ModelLoadError(f"the {role} path {model_id_or_path} does not exist")
    try:
        return load(model_id_or_path, **kwargs)
    except OSError as exc:
        raise ModelLoadError(
            f"cannot load the {role} {model_id_or_path!r}: {str(exc).splitlines()[0]} "
            "(offline? download it once or point to a local copy; HF_HUB_OFFLINE=1 uses the local cache only)"
        ) from exc
