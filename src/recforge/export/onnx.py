"""ONNX export of a torch model's scoring graph, with an onnxruntime parity check.

``score.onnx`` maps ``user`` and ``item`` (int64 index vectors of the same, dynamic, length) to
``score`` (float32): the model's raw score, as :meth:`Recommender.score` gives it, before the
clipping that ``predict`` applies to ratings. A two-tower network (one that has
``user_tower``/``item_tower`` or ``encode_users``/``encode_items``) also gets
``user_tower.onnx`` (``user`` -> ``user_vector``) and ``item_tower.onnx`` (``item`` ->
``item_vector``), so retrieval can embed users and items separately. ``ids.npz`` maps raw ids to
the indices the graphs take (``users``/``items`` arrays: index = position) and ``model.json``
describes the graphs and records the parity check.

CTR models (``lr``, ``fm``, ``deepfm``) score feature rows, not (user, item) pairs: their
``score.onnx`` maps ``index`` (int64 ``[batch, slots]`` feature indices) and ``value`` (float32
``[batch, slots]`` feature values, 1 for one-hot slots) to ``logit`` and ``probability`` (float32
``[batch]``); ``encoder.json`` (when the model was fitted on encoder output) is the
:class:`~recforge.data.ctr.FeatureEncoder` that turns raw feature rows into those tensors, and
:class:`OnnxCTRScorer` runs both without torch.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from recforge._optional import require
from recforge.errors import ConfigError, DataError
from recforge.io import atomic_path, atomic_write
from recforge.models.base import check_is_fitted

OPSET = 17
PARITY_TOL = 1e-4
_TOWERS = (("encode_users", "encode_items"), ("user_tower", "item_tower"), ("users", "items"))


def is_ctr_model(model: Any) -> bool:
    """Whether ``model`` is a CTR model (scores feature rows, not user-item pairs)."""
    from recforge.models.ctr import CTRModel

    return isinstance(model, CTRModel)


def _torch_net(model: Any) -> Any:
    if getattr(model, "backend", None) != "torch":
        raise ConfigError(f"{type(model).__name__} is not a torch model: export it with format='npz'")
    return model.network()


def tower_functions(net: Any) -> tuple[Any, Any] | None:
    """The (user, item) tower functions of a two-tower network (ids -> vectors), or None.

    Looked up as methods (not sub-modules, which take features rather than ids) named
    ``encode_users``/``encode_items``, ``user_tower``/``item_tower`` or ``users``/``items``.
    """
    import torch

    for u_name, i_name in _TOWERS:
        u, i = getattr(net, u_name, None), getattr(net, i_name, None)
        if (callable(u) and callable(i) and not isinstance(u, torch.nn.Module)
                and not isinstance(i, torch.nn.Module)):
            return u, i
    return None


def _wrap(fn: Any, net: Any) -> Any:
    import torch

    class _Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return fn(*args)

    g = _Graph()
    g.training = False  # set the flag only: Module.eval() would reach net.train() and clear its caches
    return g


def _export_graph(module: Any, args: tuple[Any, ...], inputs: list[str], output: str | list[str],
                  path: Path) -> None:
    import torch

    outputs = [output] if isinstance(output, str) else list(output)
    dynamic = {name: {0: "batch"} for name in [*inputs, *outputs]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with atomic_path(path) as tmp:
            # the TorchScript-based exporter: exact for embedding lookups and MLPs and needs no
            # onnxscript; dynamic_axes makes the batch dimension free
            # PRESERVE: switching modes would clear eval-mode caches (e.g. propagated graph
            # embeddings), which then become constants of the graph
            torch.onnx.export(module, args, str(tmp), dynamo=False, input_names=inputs, output_names=outputs,
                              dynamic_axes=dynamic, opset_version=OPSET, do_constant_folding=True,
                              training=torch.onnx.TrainingMode.PRESERVE)


def _known_pairs(model: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    users = np.flatnonzero(model.user_known_)
    items = np.flatnonzero(model.item_known_)
    if len(users) == 0 or len(items) == 0:
        raise DataError("the model knows no users or items")
    return rng.choice(users, n).astype(np.int64), rng.choice(items, n).astype(np.int64)


def onnx_session(path: str | Path) -> Any:
    """An onnxruntime CPU inference session for ``path``."""
    ort = require("onnxruntime", purpose="running ONNX models")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def onnx_parity(model: Any, folder: str | Path, n: int = 2048, seed: int = 0) -> dict[str, float]:
    """Max absolute difference between onnxruntime and torch on ``n`` random known pairs, per graph.

    Batches of two sizes are run so a graph that fixed its batch size fails here.
    """
    import torch

    folder = Path(folder)
    net = _torch_net(model)
    u, i = _known_pairs(model, n, seed)
    out: dict[str, float] = {}
    with torch.no_grad():
        dev = model.device
        ref = net.score_pairs(torch.as_tensor(u, device=dev),
                              torch.as_tensor(i, device=dev)).float().cpu().numpy()
        sess = onnx_session(folder / "score.onnx")
        diff = 0.0
        for s, e in ((0, 1), (1, n)):
            got = sess.run(["score"], {"user": u[s:e], "item": i[s:e]})[0]
            diff = max(diff, float(np.max(np.abs(got.reshape(-1) - ref[s:e]))))
        out["score"] = diff
        towers = tower_functions(net)
        if towers is not None:
            for name, fn, idx, inp in (("user_tower", towers[0], u, "user"),
                                       ("item_tower", towers[1], i, "item")):
                ref_v = fn(torch.as_tensor(idx, device=dev)).float().cpu().numpy()
                got_v = onnx_session(folder / f"{name}.onnx").run(None, {inp: idx})[0]
                out[name] = float(np.max(np.abs(got_v - ref_v)))
    return out


def export_onnx(model: Any, folder: str | Path, *, verify: bool = True, tol: float = PARITY_TOL,
                quantize: str | None = None) -> list[Path]:
    """Write ``score.onnx`` (+ tower graphs for two-tower networks), ``ids.npz`` and ``model.json``.

    Args:
        model: A fitted torch recommender.
        folder: Output folder (created).
        verify: Run the onnxruntime parity check and raise when a graph differs by more than ``tol``.
        tol: Largest accepted absolute difference.
        quantize: ``"int8"`` for a CTR model: see :func:`export_ctr_onnx`.

    Returns:
        The written paths.
    """
    require("onnx", purpose="ONNX export")
    import torch

    if is_ctr_model(model):
        return export_ctr_onnx(model, folder, verify=verify, tol=tol, quantize=quantize)
    if quantize is not None:
        raise ConfigError(f"quantize applies to CTR models' ONNX export, not to {type(model).__name__}")
    check_is_fitted(model)
    net = _torch_net(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    dev_before = model.device
    model.to_device("cpu")
    try:
        net.eval()
        u, i = _known_pairs(model, 4, 0)
        ut, it = torch.as_tensor(u), torch.as_tensor(i)
        with torch.no_grad():
            net.score_pairs(ut, it)  # fills eval-mode caches so the graph holds final embeddings
        paths = [folder / "score.onnx"]
        _export_graph(_wrap(net.score_pairs, net), (ut, it), ["user", "item"], "score", paths[0])
        graphs = {"score.onnx": {"inputs": {"user": "int64[batch]", "item": "int64[batch]"},
                                 "outputs": {"score": "float32[batch]"}}}
        towers = tower_functions(net)
        if towers is not None:
            for name, fn, x, inp, outp in (("user_tower", towers[0], ut, "user", "user_vector"),
                                           ("item_tower", towers[1], it, "item", "item_vector")):
                path = folder / f"{name}.onnx"
                _export_graph(_wrap(fn, net), (x,), [inp], outp, path)
                paths.append(path)
                graphs[path.name] = {"inputs": {inp: "int64[batch]"},
                                     "outputs": {outp: "float32[batch, dim]"}}
        with atomic_path(folder / "ids.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, users=_plain_ids(model.users_.ids), items=_plain_ids(model.items_.ids),
                     user_known=model.user_known_, item_known=model.item_known_)
        paths.append(folder / "ids.npz")
        parity = onnx_parity(model, folder) if verify else {}
        meta = {
            "format": "recforge-onnx", "version": 1, "model": model.name, "task": model.task,
            "class": f"{type(model).__module__}.{type(model).__qualname__}", "config": model.config.to_dict(),
            "n_users": len(model.users_), "n_items": len(model.items_), "opset": OPSET, "graphs": graphs,
            "score": "raw model score (Recommender.score); predict() additionally clips ratings to "
                     f"[{model.rating_min_}, {model.rating_max_}]" if model.explicit_ else "raw model score",
            "parity_max_abs_diff": parity,
        }
        with atomic_write(folder / "model.json") as fh:
            fh.write(json.dumps(meta, indent=2) + "\n")
        paths.append(folder / "model.json")
    finally:
        model.to_device(dev_before)
    bad = {k: v for k, v in parity.items() if not v <= tol}
    if bad:
        raise DataError(f"ONNX parity check failed (max abs diff {bad}, tolerance {tol})")
    return paths


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    return ids.astype(str) if ids.dtype == object else ids


class OnnxScorer:
    """Score raw (user, item) ids with an exported ``score.onnx`` (no torch needed).

    Unknown ids (or ids the model saw no data for) score NaN, as :meth:`Recommender.score` does.
    """

    def __init__(self, folder: str | Path) -> None:
        from recforge.data.vocabulary import Vocabulary

        folder = Path(folder)
        ids = np.load(folder / "ids.npz", allow_pickle=False)
        self.users = Vocabulary(ids["users"], "user")  # already sorted: the same index order
        self.items = Vocabulary(ids["items"], "item")
        self.user_known = ids["user_known"]
        self.item_known = ids["item_known"]
        self.session = onnx_session(folder / "score.onnx")
        self.meta = json.loads((folder / "model.json").read_text())

    def score(self, users: Any, items: Any) -> np.ndarray:
        u = self.users.index(np.atleast_1d(np.asarray(users)))
        i = self.items.index(np.atleast_1d(np.asarray(items)))
        out = np.full(len(u), np.nan)
        ok = (u >= 0) & (i >= 0)
        ok[ok] = self.user_known[u[ok]] & self.item_known[i[ok]]
        if ok.any():
            feed = {"user": u[ok].astype(np.int64), "item": i[ok].astype(np.int64)}
            out[ok] = self.session.run(["score"], feed)[0]
        return out


# ---------------------------------------------------------------------------------------- CTR models
def _ctr_rows(model: Any, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random rows over the whole feature space, with values in (0, 1] (covers multi-valued slots)."""
    rng = np.random.default_rng(seed)
    s = len(model.slot_fields_)
    idx = rng.integers(0, model.n_features_, (n, s)).astype(np.int64)
    val = rng.uniform(0.05, 1.0, (n, s)).astype(np.float32)
    val[: n // 2] = 1.0  # half the rows one-hot, as encoded categorical rows are
    return idx, val


def ctr_onnx_parity(model: Any, folder: str | Path, n: int = 2048, seed: int = 0) -> dict[str, float]:
    """Max absolute difference between onnxruntime and the model's logits / probabilities on ``n`` rows.

    Batches of two sizes are run so a graph that fixed its batch size fails here.
    """
    idx, val = _ctr_rows(model, n, seed)
    ref_z = model.decision_function(idx, val)
    ref_p = model.predict_proba(idx, val)
    sess = onnx_session(Path(folder) / "score.onnx")
    dz = dp = 0.0
    for s, e in ((0, 1), (1, n)):
        z, p = sess.run(["logit", "probability"], {"index": idx[s:e], "value": val[s:e]})
        dz = max(dz, float(np.max(np.abs(z.reshape(-1) - ref_z[s:e]))))
        dp = max(dp, float(np.max(np.abs(p.reshape(-1) - ref_p[s:e]))))
    return {"logit": dz, "probability": dp}


#: Quantized graphs must order random rows as the float graph does (Spearman correlation of logits).
QUANTIZED_MIN_SPEARMAN = 0.98


def export_ctr_onnx(model: Any, folder: str | Path, *, verify: bool = True, tol: float = PARITY_TOL,
                    quantize: str | None = None) -> list[Path]:
    """Write a CTR model's ``score.onnx`` (index, value -> logit, probability), ``encoder.json`` and
    ``model.json``.

    Args:
        model: A fitted CTR model (:mod:`recforge.models.ctr`).
        folder: Output folder (created).
        verify: Run the onnxruntime parity check and raise when an output differs by more than ``tol``.
        tol: Largest accepted absolute difference.
        quantize: ``"int8"``: after the float graph passes its parity check, replace it by ONNX
            Runtime's dynamic int8 quantization (weights int8, activations quantized per batch;
            Jacob et al., CVPR 2018) of its matrix multiplications, which cuts the MLP's CPU cost
            when serving. Not exact: ``model.json`` records the quantized graph's largest
            differences and the Spearman correlation of its logits with the float graph's on 2,048
            random rows, and the export fails below ``QUANTIZED_MIN_SPEARMAN``.

    Returns:
        The written paths.
    """
    require("onnx", purpose="ONNX export")
    import copy

    import torch

    if not is_ctr_model(model):
        raise ConfigError(f"{type(model).__name__} is not a CTR model: use export_onnx")
    if quantize not in (None, "int8"):
        raise ConfigError(f"quantize must be int8 (or none), not {quantize!r}")
    net = copy.deepcopy(model.network()).cpu()
    net.training = False
    for m in net.modules():  # eval mode: dropout off, batch norm on its running statistics
        m.training = False
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    class _CTRGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, index: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            z = self.net.logits(index, value)
            return z, torch.sigmoid(z)

    graph = _CTRGraph()
    graph.training = False
    idx, val = _ctr_rows(model, 4, 0)
    paths = [folder / "score.onnx"]
    _export_graph(graph, (torch.from_numpy(idx), torch.from_numpy(val)), ["index", "value"],
                  ["logit", "probability"], paths[0])
    enc = getattr(model, "encoder_", None)
    if enc is not None:
        with atomic_write(folder / "encoder.json") as fh:
            fh.write(json.dumps(enc.to_dict()))
        paths.append(folder / "encoder.json")
    parity = ctr_onnx_parity(model, folder) if verify else {}
    quantized = _quantize_ctr(model, folder) if quantize == "int8" and not {
        k: v for k, v in parity.items() if not v <= tol} else None
    rejected = quantized.pop("rejected", False) if quantized is not None else False
    s = len(model.slot_fields_)
    meta = {
        "format": "recforge-onnx", "version": 1, "model": model.name, "task": "ctr",
        "class": f"{type(model).__module__}.{type(model).__qualname__}", "config": model.config.to_dict(),
        "n_features": int(model.n_features_), "n_slots": s, "field_names": list(model.field_names_),
        "slot_fields": [int(f) for f in model.slot_fields_], "opset": OPSET,
        "graphs": {"score.onnx": {"inputs": {"index": f"int64[batch, {s}]", "value": f"float32[batch, {s}]"},
                                  "outputs": {"logit": "float32[batch]", "probability": "float32[batch]"}}},
        "encoder": "encoder.json" if enc is not None else None,
        "score": "logit y(x) and click probability s(y(x)) of each encoded feature row",
        "parity_max_abs_diff": parity,
        "quantized": None if rejected else quantized,
    }
    with atomic_write(folder / "model.json") as fh:
        fh.write(json.dumps(meta, indent=2) + "\n")
    paths.append(folder / "model.json")
    bad = {k: v for k, v in parity.items() if not v <= tol}
    if bad:
        raise DataError(f"ONNX parity check failed (max abs diff {bad}, tolerance {tol})")
    if rejected:
        raise DataError("int8 quantization changes the model's order too much "
                        f"(Spearman {quantized['spearman_logit']:.4f} "
                        f"< {QUANTIZED_MIN_SPEARMAN} against the float graph); {folder} keeps the float graph")
    return paths


def _quantize_ctr(model: Any, folder: Path) -> dict[str, Any]:
    """Replace ``folder/score.onnx`` by its dynamic int8 quantization; how far it moved the outputs."""
    from scipy.stats import spearmanr

    require("onnxruntime", purpose="int8 quantization")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src = folder / "score.onnx"
    idx, val = _ctr_rows(model, 2048, 1)
    ref_z, ref_p = onnx_session(src).run(["logit", "probability"], {"index": idx, "value": val})
    try:
        with atomic_path(src) as tmp:
            quantize_dynamic(str(src), str(tmp), weight_type=QuantType.QInt8)
            z, p = onnx_session(tmp).run(["logit", "probability"], {"index": idx, "value": val})
            rho = float(spearmanr(z.reshape(-1), ref_z.reshape(-1)).statistic) if np.ptp(ref_z) > 0 else 1.0
            result = {"kind": "int8-dynamic", "rows": len(idx), "spearman_logit": rho,
                      "max_abs_diff_vs_float": {"logit": float(np.max(np.abs(z - ref_z))),
                                                "probability": float(np.max(np.abs(p - ref_p)))}}
            if not rho >= QUANTIZED_MIN_SPEARMAN:
                raise _Rejected(result)  # the float graph stays in place
    except _Rejected as rejected:
        return {**rejected.args[0], "rejected": True}
    return result


class _Rejected(Exception):
    """The int8 graph failed its order check (carries its measurements)."""


class OnnxCTRScorer:
    """Score CTR feature rows with an exported CTR ``score.onnx`` (no torch needed).

    ``predict_proba(index, value)`` takes encoded rows; ``score_frame(df)`` and
    ``score_candidates(context, candidates)`` take raw fields and encode them with the exported
    ``encoder.json``, as the torch model's methods of the same names do.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.meta = json.loads((folder / "model.json").read_text())
        if self.meta.get("task") != "ctr":
            raise DataError(f"{folder}: not an exported CTR model (use OnnxScorer)")
        self.session = onnx_session(folder / "score.onnx")
        self.encoder = None
        if self.meta.get("encoder"):
            from recforge.data.ctr import FeatureEncoder

            self.encoder = FeatureEncoder.load(folder / self.meta["encoder"])

    # the scoring interface of a fitted CTR model, so a serving ranker can use either one
    task = "ctr"

    @property
    def name(self) -> str:
        return f"{self.meta.get('model', 'ctr')}-onnx"

    @property
    def n_features_(self) -> int:
        return int(self.meta["n_features"])

    @property
    def slot_fields_(self) -> np.ndarray:
        return np.asarray(self.meta["slot_fields"], dtype=np.int64)

    def is_fitted(self) -> bool:
        return True

    def decision_function(self, index: Any, value: Any = None) -> np.ndarray:
        """Logits of encoded rows ``(index, value)``, as the torch model's method of that name."""
        idx, val = self._rows(index, value)
        if len(idx) == 0:
            return np.empty(0)
        return self.session.run(["logit"], {"index": idx, "value": val})[0].reshape(-1).astype(np.float64)

    def _rows(self, index: Any, value: Any) -> tuple[np.ndarray, np.ndarray]:
        idx = np.atleast_2d(np.asarray(index, dtype=np.int64))
        if idx.shape[1] != self.meta["n_slots"]:
            raise DataError(f"rows have {idx.shape[1]} slots; the model takes {self.meta['n_slots']}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.meta["n_features"]):
            raise DataError(f"feature indices must lie in [0, {self.meta['n_features']})")
        val = (np.ones(idx.shape, np.float32) if value is None
               else np.asarray(value, np.float32).reshape(idx.shape))
        return idx, val

    def predict_proba(self, index: Any, value: Any = None) -> np.ndarray:
        idx, val = self._rows(index, value)
        if len(idx) == 0:
            return np.empty(0)
        return self.session.run(["probability"], {"index": idx, "value": val})[0].astype(np.float64)

    def score_frame(self, frame: Any) -> np.ndarray:
        if self.encoder is None:
            raise DataError("this export has no encoder.json; encode rows yourself and call predict_proba()")
        lab = self.encoder.label
        rows = self.encoder.transform(frame.drop(columns=[lab], errors="ignore") if lab else frame, "frame")
        return self.predict_proba(rows.index, rows.value)

    def score_candidates(self, context: Any, candidates: Any) -> np.ndarray:
        frame = candidates.reset_index(drop=True).assign(**{str(k): v for k, v in dict(context).items()})
        return self.score_frame(frame)
