"""Evaluation time and memory: bench's sort-free evaluator against a vectorised NumPy argsort
evaluator on a MARS-sized problem (1,980 queries x 9,330 gallery tracklets), and the streamed
evaluation of a large gallery straight from features.

python benchmarks/evaluation.py                   # MARS-sized, both evaluators side by side
python benchmarks/evaluation.py --gallery 100000  # 2,000 queries x 100,000, streamed

Random features and identities: the true matches are spread over the whole ranking, the worst
case for bench (only items nearer than a query's hardest match cost anything to count).
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from bench.data.base import Protocol
from bench.eval.distance import cosine
from bench.eval.metrics import evaluate
from bench.eval.streaming import evaluate_features


def numpy_evaluate(dist, q_pids, g_pids, q_cams, g_cams, rule: str) -> tuple[float, float]:
    """(R1, mAP) in percent: the textbook evaluator (as torchreid's), an argsort of every row
    (NumPy's default, SIMD quicksort: faster than a stable sort, ties in no fixed order)."""
    order = np.argsort(dist, axis=1)
    gp, gc = g_pids[order], g_cams[order]
    same = gp == q_pids[:, None]
    valid = ~((same & (gc == q_cams[:, None])) | (gp == -1))
    good = same & valid
    pos = np.cumsum(valid, 1)
    hits = np.cumsum(good, 1)
    precision = hits / np.maximum(pos, 1)
    if rule == "trapezoid":
        before = np.where(pos > 1, (hits - 1) / np.maximum(pos - 1, 1), 1.0)
        precision = (precision + before) / 2
    n_good = good.sum(1)
    ok = n_good > 0
    ap = np.where(good, precision, 0).sum(1)[ok] / n_good[ok]
    first = np.where(good, pos, np.iinfo(pos.dtype).max).min(1)[ok]
    return 100 * float((first == 1).mean()), 100 * float(ap.mean())


def problem(q: int, g: int, d: int):
    torch.manual_seed(0)
    qf, gf = torch.randn(q, d), torch.randn(g, d)
    ids = (
        torch.randint(0, 625, (q,)),
        torch.randint(-1, 625, (g,)),
        torch.randint(0, 6, (q,)),
        torch.randint(0, 6, (g,)),
    )
    return qf, gf, ids


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, *args):
    """-> (fn's result, wall seconds); the CPU seconds of the last call in ``timed.cpu``."""
    start, cpu = time.perf_counter(), cpu_seconds()
    out = fn(*args)
    timed.cpu = cpu_seconds() - cpu
    return out, time.perf_counter() - start


def mars_sized(dim: int) -> None:
    qf, gf, ids = problem(1980, 9330, dim)
    dist = cosine(qf, gf)
    np_args = [dist.numpy(), *(t.numpy() for t in ids)]
    print(f"1980 x 9330, {torch.get_num_threads()} threads; evaluation of a given matrix:")
    for rule in ("mean", "trapezoid"):
        (r1, m), t_np = timed(numpy_evaluate, *np_args, rule)
        c_np = timed.cpu
        ours, t_bench = timed(evaluate, dist, *ids, Protocol(ap=rule))
        gap = max(abs(ours["R1"] - r1), abs(ours["mAP"] - m))
        print(
            f"  {rule:9s} AP: numpy argsort {t_np:6.2f} s ({c_np:5.1f} s CPU) | bench "
            f"{t_bench:6.2f} s ({timed.cpu:5.1f} s CPU) | {t_np / t_bench:4.1f}x faster | "
            f"R1/mAP differ by {gap:.1e}"
        )
    _, t_stream = timed(streamed, qf, gf, ids)
    print(f"  streamed from {dim}-d features (distances included): {t_stream:6.2f} s", end="")
    print(f" ({timed.cpu:.1f} s CPU)")


def streamed(qf, gf, ids):
    def distance(a, b):
        return cosine(a["feat"], b["feat"])

    return evaluate_features(distance, {"feat": qf}, {"feat": gf}, ids, Protocol())


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def large_gallery(gallery: int, dim: int) -> None:
    qf, gf, ids = problem(2000, gallery, dim)
    base, peak_before = rss_bytes(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result, seconds = timed(streamed, qf, gf, ids)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    features = (qf.numel() + gf.numel()) * 4
    print(
        f"2000 x {gallery}, {dim}-d features ({features / 2**20:.0f} MiB), "
        f"{torch.get_num_threads()} threads: streamed evaluation {seconds:.1f} s "
        f"({timed.cpu:.1f} s CPU), "
        f"peak RSS {(peak - base) / 2**20:.0f} MiB above the features "
        f"(peak before: {(peak_before - base) / 2**20:.0f} MiB); R1 {result['R1']:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gallery", type=int, help="streamed evaluation of this many items")
    parser.add_argument("--dim", type=int, default=2048, help="feature size")
    args = parser.parse_args()
    if args.gallery:
        large_gallery(args.gallery, args.dim)
    else:
        mars_sized(args.dim)


if __name__ == "__main__":
    main()
