"""TensorBoard event files (``tensorboard --logdir ROOT`` shows them)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recforge._optional import require
from recforge.loggers._base import ExperimentLogger, finite_metrics, next_version, write_json


class TensorBoardLogger(ExperimentLogger):
    """Writes TensorBoard scalars to ``root/<name>/version_N/events.out.tfevents.*``.

    Per-epoch metrics are scalars at step = epoch; summary metrics are scalars at step 0 under
    their own names; the configuration and the environment are text summaries (``config``,
    ``environment``) and JSON files beside the events. Needs only the ``tensorboard`` package.
    """

    kind = "tensorboard"

    def __init__(self, root: str | Path = "runs", name: str = "run", project: str = "recforge") -> None:
        super().__init__(root, name, project)
        require("tensorboard", purpose="the TensorBoard logger")
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._dir = next_version(self.root / self.name)
        self._dir.mkdir(parents=True)
        self._writer = EventFileWriter(str(self._dir))

    @property
    def run_dir(self) -> Path:
        return self._dir

    def _add(self, values: list[Any], step: int) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._writer.add_event(Event(wall_time=time.time(), step=int(step), summary=Summary(value=values)))
        self._writer.flush()

    def _text(self, tag: str, text: str) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
        from tensorboard.compat.proto.tensor_pb2 import TensorProto
        from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto

        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="text"))
        tensor = TensorProto(dtype="DT_STRING", string_val=[text.encode("utf-8")],
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        self._add([Summary.Value(tag=tag, metadata=meta, tensor=tensor)], 0)

    def log_config(self, config: Mapping[str, Any]) -> None:
        write_json(self._dir / "config.json", dict(config))
        self._text("config", "```\n" + json.dumps(dict(config), indent=2, default=str) + "\n```")

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary

        vals = finite_metrics(metrics)
        if vals:
            self._add([Summary.Value(tag=k, simple_value=v) for k, v in vals.items()], step or 0)

    def _log_summary(self, metrics: dict[str, float]) -> None:
        self.log_metrics(metrics, step=0)
        write_json(self._dir / "summary.json", self.summary)

    def _log_environment(self, env: dict[str, Any]) -> None:
        write_json(self._dir / "environment.json", env)
        self._text("environment", "```\n" + json.dumps(env, indent=2, default=str) + "\n```")

    def lightning(self, prefix: str = "") -> Any:
        from lightning.pytorch.loggers import TensorBoardLogger as LightningTB

        return LightningTB(save_dir=str(self._dir), name="", version="", prefix=prefix, default_hp_metric=False)

    def _close(self, status: str) -> None:
        self._writer.close()
