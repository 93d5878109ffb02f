"""Parity of the torch models on Ray Train (2 workers) with one process: same seed, 2 epochs.

For each model named on the command line: fit in this process and with
``fit_on_ray(model, data, workers=2)`` on a local Ray instance with 2 CPUs, then score both the same
way (ML-100K ratio-full split 0: NDCG@10 of the full ranking; ``deepfm``: AUC on the toy CTR test
rows of ``recforge.testing.ctr_conformance.toy_ctr``). Prints one ``RESULT name {json}`` line per
model with both metrics and both wall times (the Ray time includes Ray Train's start-up).

Run: ``python benchmarks/ray_train_parity.py mf-torch neumf lightgcn two-tower sasrec deepfm``
"""

import json
import sys
import time

import ray

from recforge.config import FitOptions
from recforge.data import load
from recforge.distributed.train import fit_on_ray
from recforge.evaluation.protocols import get_protocol
from recforge.metrics import roc_auc
from recforge.models.registry import get_model_class
from recforge.testing.ctr_conformance import toy_ctr


def main(names: list[str]) -> None:
    ray.init(num_cpus=2, include_dashboard=False, address="local", logging_level="WARNING")
    ds = load("ml-100k")
    proto = get_protocol("ratio-full")
    split = proto.splits(ds, 0)[0]
    for name in names:
        M = get_model_class(name)
        params = {"epochs": 2}
        if name == "deepfm":
            train, _, test, _ = toy_ctr()
            t = time.time()
            a = M(**params).fit(train, FitOptions(seed=1))
            local_s = time.time() - t
            t = time.time()
            b = fit_on_ray(M(**params), train, workers=2, options=FitOptions(seed=1))
            ray_s = time.time() - t
            ma, mb = roc_auc(test.labels, a.predict_proba(test)), roc_auc(test.labels, b.predict_proba(test))
            metric = "AUC"
        else:
            t = time.time()
            a = M(**params).fit(split.train, FitOptions(seed=1))
            local_s = time.time() - t
            t = time.time()
            b = fit_on_ray(M(**params), split.train, workers=2, options=FitOptions(seed=1))
            ray_s = time.time() - t
            ma = proto.score(a, split, k=10, dataset=ds, seed=0).metrics["NDCG@10"]
            mb = proto.score(b, split, k=10, dataset=ds, seed=0).metrics["NDCG@10"]
            metric = "NDCG@10"
        row = {"metric": metric, "local": round(float(ma), 5), "ray2": round(float(mb), 5),
               "local_s": round(local_s, 1), "ray2_s": round(ray_s, 1)}
        print("RESULT", name, json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
