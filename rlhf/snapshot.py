"""Dataset snapshots: rows streamed to JSONL with a checksum, so an export's size never bounds memory."""

import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Snapshot:
    path: Path
    rows: int
    sha256: str


def write_jsonl_snapshot(rows: Iterable[dict[str, Any]], path: str | Path) -> Snapshot:
    """Write rows as JSON lines, atomically (a partial file never carries the final name).

    Args:
        rows: any iterable; consumed once, one row in memory at a time.
        path: the file to create; its folder is created.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    count = 0
    with partial.open("wb") as out:
        for row in rows:
            line = (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
            digest.update(line)
            out.write(line)
            count += 1
        out.flush()
        os.fsync(out.fileno())
    partial.replace(target)
    return Snapshot(target, count, digest.hexdigest())


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of a JSONL snapshot, one at a time.

    Raises:
        ValueError: a line that is not a JSON object, with its line number.
    """
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: not a JSON object")
            yield row
