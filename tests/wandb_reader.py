"""Read an offline wandb run file (``run-*.wandb``: a W&B header, then LevelDB-log blocks of
protobuf ``Record`` messages), for tests that check what a job told wandb."""
from __future__ import annotations

import struct
from pathlib import Path

BLOCK, HEADER = 32768, 7


def read_records(path: str | Path) -> list:
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a wandb run file"
    pos, out, buf = 7, [], b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # block trailer padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        pos += HEADER
        chunk = data[pos:pos + length]
        pos += length
        if kind in (1, 2):  # FULL, FIRST
            buf = chunk
        else:  # MIDDLE, LAST
            buf += chunk
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            out.append(rec)
            buf = b""
    return out


def run_summary(path: str | Path) -> dict:
    """``group``, ``name``, ``job_type`` of the run and its ``exit_code`` (None: never finished)."""
    info = {"group": None, "name": None, "job_type": None, "exit_code": None}
    for rec in read_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            info.update(group=rec.run.run_group, name=rec.run.display_name, job_type=rec.run.job_type)
        elif kind == "exit":
            info["exit_code"] = rec.exit.exit_code
    return info


def _value(item) -> object:
    import json

    return json.loads(item.value_json)


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def run_contents(path: str | Path) -> dict:
    """What a run file holds: ``config`` (key → value, as logged), ``history`` (one dict per
    step, nested keys joined with ``/``), ``summary`` (the last update of each key),
    ``files`` (paths under the run's ``files/``), ``output`` (the console records)."""
    out = {"config": {}, "history": [], "summary": {}, "files": [], "output": []}
    for rec in read_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "config":
            out["config"].update({_key(i): _value(i) for i in rec.config.update})
        elif kind == "history":
            out["history"].append({_key(i): _value(i) for i in rec.history.item})
        elif kind == "summary":
            out["summary"].update({_key(i): _value(i) for i in rec.summary.update})
        elif kind == "files":
            out["files"] += [f.path for f in rec.files.files]
        elif kind in ("output", "output_raw"):
            out["output"].append(getattr(rec, kind).line)
    return out
