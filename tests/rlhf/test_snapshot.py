"""JSONL snapshots: lines written in chunks by a worker thread, hashed as written, handed on whole, never partial."""

import hashlib
import json

import pytest

from rlhf import snapshot
from rlhf.snapshot import read_jsonl, write_jsonl_snapshot

ROWS = [{"id": i, "text": "é" * (i % 7), "values": [i, i / 3]} for i in range(50)]


@pytest.mark.parametrize("chunk_bytes", [1, 100, 1 << 20])
def test_rows_hash_and_chunks_are_the_file(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(snapshot, "CHUNK_BYTES", chunk_bytes)
    chunks: list[bytes] = []
    result = write_jsonl_snapshot(iter(ROWS), tmp_path / "set" / "rows.jsonl", on_chunk=chunks.append)
    data = (tmp_path / "set" / "rows.jsonl").read_bytes()
    assert result.rows == len(ROWS) and list(read_jsonl(result.path)) == ROWS
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert b"".join(chunks) == data and all(chunk.endswith(b"\n") for chunk in chunks)
    if chunk_bytes == 1:
        assert len(chunks) == len(ROWS)
    elif chunk_bytes == 100:
        assert 1 < len(chunks) < len(ROWS)
    else:
        assert len(chunks) == 1
    assert [json.loads(line) for chunk in chunks for line in chunk.splitlines()] == ROWS


def test_a_given_digest_continues_over_the_file(tmp_path):
    digest = hashlib.sha256(b"before")
    result = write_jsonl_snapshot(ROWS, tmp_path / "rows.jsonl", digest=digest)
    assert result.sha256 == hashlib.sha256(b"before" + (tmp_path / "rows.jsonl").read_bytes()).hexdigest()


def test_a_failing_chunk_consumer_or_row_source_leaves_no_file(tmp_path, monkeypatch):
    monkeypatch.setattr(snapshot, "CHUNK_BYTES", 100)

    def refuse(chunk: bytes) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_jsonl_snapshot(ROWS, tmp_path / "a.jsonl", on_chunk=refuse)

    def rows_then_failure():
        yield from ROWS[:10]
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        write_jsonl_snapshot(rows_then_failure(), tmp_path / "b.jsonl")
    assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()
