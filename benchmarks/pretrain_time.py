"""Wall time of the pretrain: stage (the warm start) at a suite's settings.

    python benchmarks/pretrain_time.py [--suite suites/video.yaml] [-o pretrain.train.epochs=6]

Generates the dataset first (not timed), then trains the stage once in a fresh work dir and
tracking store and prints its wall and CPU time, steps, seconds per step, the loss per epoch
and the load average (the machine may be shared). A suite without ``pretrain:`` gets the
defaults (``-o pretrain={}``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.data.build import build_dataset
from bench.engine import store
from bench.engine.pretrain import ensure_weights, finished_run
from bench.engine.tracking import client
from bench.suite.load import load_suite
from bench.suite.warmstart import pretrain_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="suites/video.yaml")
    parser.add_argument("-o", dest="overrides", action="append", default=[])
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args()
    suite = load_suite(args.suite, ["pretrain={}", *args.overrides], data_root=args.data_root)
    spec = pretrain_spec(suite, args.data_root)
    build_dataset(spec.dataset, spec.dataset_options, args.data_root).prepare()
    with tempfile.TemporaryDirectory() as tmp:
        uri, exp_id = store.prepare(f"sqlite:///{tmp}/mlflow.db", suite.name, None)
        mlf = client(uri)
        load, wall, cpu = os.getloadavg()[0], time.perf_counter(), time.process_time()
        ensure_weights(spec, mlf, exp_id, Path(tmp), args.data_root)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        run = finished_run(mlf, exp_id, spec)
        losses = [m.value for m in mlf.get_metric_history(run.info.run_id, "loss/total")]
        steps = int(run.data.metrics["steps"]) * spec.train.epochs
    data, model = spec.data, spec.model
    print(f"suite {args.suite}: stage {spec.label}")
    print(f"  model {model.backbone} {model.kwargs}, input {data.height} x {data.width}")
    print(f"  T={data.seq_len}, P x K = {data.p} x {data.k}, {spec.train.epochs} epochs")
    after = os.getloadavg()[0]
    print(f"  wall {wall:.1f} s, CPU {cpu:.1f} s, load average {load:.2f} -> {after:.2f}")
    print(f"  {steps} steps, {wall / max(steps, 1):.2f} s per step")
    print(f"  loss/total per epoch: {', '.join(f'{v:.3f}' for v in losses)}")


if __name__ == "__main__":
    main()
