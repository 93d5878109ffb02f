"""Read runs back from disk: to inspect a run without its backend's UI, and to test the loggers."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pandas as pd

from recforge.errors import DataError


def read_csv_run(run_dir: str | Path) -> dict[str, Any]:
    """``{"metrics": DataFrame(time, step, metric, value), "config", "environment", "summary"}``."""
    run_dir = Path(run_dir)
    out: dict[str, Any] = {"metrics": pd.read_csv(run_dir / "metrics.csv")}
    for part in ("config", "environment", "summary"):
        p = run_dir / f"{part}.json"
        out[part] = json.loads(p.read_text()) if p.exists() else None
    return out


def read_tensorboard(run_dir: str | Path) -> dict[str, Any]:
    """Every event file under ``run_dir``: ``{"scalars": {tag: [(step, value), ...]}, "text": {tag: str}}``."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
    from tensorboard.util import tensor_util

    scalars: dict[str, list[tuple[int, float]]] = {}
    text: dict[str, str] = {}
    files = sorted(Path(run_dir).rglob("events.out.tfevents.*"))
    if not files:
        raise DataError(f"{run_dir}: no TensorBoard event files")
    for f in files:
        for ev in LegacyEventFileLoader(str(f)).Load():
            if not ev.HasField("summary"):
                continue
            for v in ev.summary.value:
                kind = v.WhichOneof("value")
                if kind == "simple_value":
                    scalars.setdefault(v.tag, []).append((int(ev.step), float(v.simple_value)))
                elif kind == "tensor":
                    arr = tensor_util.make_ndarray(v.tensor)
                    if v.metadata.plugin_data.plugin_name == "text":
                        text[v.tag] = arr.reshape(-1)[0].decode("utf-8")
                    elif arr.size == 1:
                        scalars.setdefault(v.tag, []).append((int(ev.step), float(arr.reshape(-1)[0])))
    return {"scalars": scalars, "text": text, "files": files}


def _leveldb_records(data: bytes) -> list[bytes]:
    # W&B's .wandb files use the LevelDB log format: a 7-byte file header, then 32 KiB blocks of
    # records, each with a 7-byte header (crc32, length, type: 1 full, 2 first, 3 middle, 4 last)
    block = 32768
    pos, out, buf = 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if length == 0 and kind == 0:
            pos += (block - pos % block) % block
            continue
        chunk = data[pos : pos + length]
        pos += length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            out.append(buf + chunk)
            buf = b""
    return out


def wandb_run_complete(run_dir: str | Path) -> bool:
    """Whether an offline W&B run file holds its final ``exit`` record (the run is fully written)."""
    from wandb.proto import wandb_internal_pb2 as pb

    files = sorted(Path(run_dir).glob("run-*.wandb"))
    if not files:
        return False
    for raw in reversed(_leveldb_records(files[0].read_bytes())):
        rec = pb.Record()
        try:
            rec.ParseFromString(raw)
        except Exception:  # noqa: BLE001 - a record still being written
            return False
        if rec.WhichOneof("record_type") == "exit":
            return True
    return False


def read_wandb_run(run_dir: str | Path) -> dict[str, Any]:
    """Decode an offline W&B run folder (``offline-run-*``): config, history rows and summary.

    Returns ``{"run_id", "project", "config": {...}, "history": [{metric: value}, ...],
    "summary": {...}, "files": [...]}``; values are decoded from W&B's JSON encoding.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    files = sorted(run_dir.glob("run-*.wandb"))
    if not files:
        raise DataError(f"{run_dir}: no run-*.wandb file (not a W&B run folder)")
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "files": [], "run_id": None, "project": None}
    for raw in _leveldb_records(files[0].read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        if kind == "run":  # the first run record names the run; later ones may be partial updates
            out["run_id"] = out["run_id"] or rec.run.run_id or None
            out["project"] = out["project"] or rec.run.project or None
            for item in rec.run.config.update:
                out["config"][item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][item.key or ".".join(item.nested_key)] = json.loads(item.value_json)
        elif kind == "history":
            row = {(it.key or ".".join(it.nested_key)): json.loads(it.value_json) for it in rec.history.item}
            out["history"].append(row)
        elif kind == "summary":
            for it in rec.summary.update:
                key = it.key or ".".join(it.nested_key)
                if not key.startswith("_"):
                    out["summary"][key] = json.loads(it.value_json)
        elif kind == "files":
            out["files"].extend(f.path for f in rec.files.files)
    out["config"].pop("_wandb", None)
    return out


def read_mlflow_run(run_dir: str | Path) -> dict[str, Any]:
    """An MLflow file-store run folder: ``{"params", "metrics": {name: [(step, value)]}, "tags", "artifacts"}``."""
    run_dir = Path(run_dir)
    if not (run_dir / "meta.yaml").exists():
        raise DataError(f"{run_dir}: not an MLflow run folder (no meta.yaml)")

    def files(sub: str) -> dict[str, str]:
        base = run_dir / sub
        if not base.exists():
            return {}
        return {p.relative_to(base).as_posix(): p.read_text(encoding="utf-8") for p in sorted(base.rglob("*"))
                if p.is_file()}

    metrics: dict[str, list[tuple[int, float]]] = {}
    for name, text in files("metrics").items():
        for line in text.splitlines():
            if line.strip():
                _, value, step = line.split()[:3]
                metrics.setdefault(name, []).append((int(step), float(value)))
    return {"params": files("params"), "metrics": metrics, "tags": files("tags"),
            "artifacts": sorted(files("artifacts"))}
