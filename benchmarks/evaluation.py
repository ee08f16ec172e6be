"""Evaluation time and memory: bench's sort-free evaluator against NumPy argsort evaluators on a
MARS-sized problem (1,980 queries x 9,330 gallery tracklets), the k-reciprocal re-ranking at
that size, and the streamed evaluation of a large gallery straight from features.

python benchmarks/evaluation.py                   # MARS-sized: both problems, re-ranking
python benchmarks/evaluation.py --gallery 100000  # 2,000 queries x 100,000, streamed

Two problems. **realistic**: features around identity centres (625 identities in groups of ten
look-alikes, about 13 gallery tracklets each, 6 cameras, one gallery item in ten a junk
identity -1 with features of its own), so the true matches sit near the top of each ranking,
as with a trained model (R1 about 95, mAP about 74, mINP about 34).
**random**: random features and identities, the true matches spread over the whole ranking
(the worst case for bench: only items nearer than a query's hardest match cost anything to
count). The NumPy evaluator is the textbook one (as torchreid's): an argsort of every row, run
on the whole matrix at once and 256 query rows at a time; the printed ratio is bench against
the chunked one, from this one run (wall time, and CPU time beside it). torch runs on one
thread unless ``--threads`` says otherwise, as NumPy's argsort does: like against like, and
on a shared machine the CPU time of one thread is the steadier figure.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from bench.data.base import Protocol
from bench.eval.distance import cosine
from bench.eval.metrics import CURVE_LEN, evaluate
from bench.eval.streaming import evaluate_features

#: query rows per argsort of the chunked NumPy evaluator
NUMPY_CHUNK = 256


def numpy_scores(dist, q_pids, g_pids, q_cams, g_cams, rule: str):
    """(first good's rank (q,), 0 for none; AP (q,)) of a (q, G) matrix by a full argsort of
    each row (NumPy's default SIMD quicksort: faster than a stable sort, ties in no order)."""
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
    ap = np.where(good, precision, 0).sum(1) / np.maximum(n_good, 1)
    first = np.where(good, pos, np.iinfo(pos.dtype).max).min(1)
    return np.where(n_good > 0, first, 0), ap


def numpy_evaluate(dist, q_pids, g_pids, q_cams, g_cams, rule: str, chunk: int | None):
    """(CMC to rank CURVE_LEN, mAP) in percent over the queries with a true match; ``chunk``
    query rows at a time (None: the whole matrix at once)."""
    step = chunk or len(dist)
    parts = [
        numpy_scores(
            dist[s : s + step], q_pids[s : s + step], g_pids, q_cams[s : s + step], g_cams, rule
        )
        for s in range(0, len(dist), step)
    ]
    first, ap = (np.concatenate(p) for p in zip(*parts, strict=True))
    ok = first > 0
    curve = (first[ok, None] <= np.arange(1, CURVE_LEN + 1)[None]).mean(0) * 100
    return curve, 100 * float(ap[ok].mean())


def random_problem(q: int, g: int, d: int):
    torch.manual_seed(0)
    qf, gf = torch.randn(q, d), torch.randn(g, d)
    ids = (
        torch.randint(0, 625, (q,)),
        torch.randint(-1, 625, (g,)),
        torch.randint(0, 6, (q,)),
        torch.randint(0, 6, (g,)),
    )
    return qf, gf, ids


def realistic_problem(q: int, g: int, d: int, n_ids: int = 625, group: int = 10):
    """Features = identity centre + noise; the centres come in groups of ``group`` look-alike
    identities (group centre + 0.25 x noise), so a query's confusions are its group's items.
    Each query's identity is in the gallery; a tenth of the gallery is junk (-1) with centres
    of its own. At 2048-d: R1 about 95, mAP about 74, mINP about 34."""
    gen = torch.Generator().manual_seed(0)
    groups = torch.randn(n_ids // group + 1, d, generator=gen)
    alike = groups[torch.arange(n_ids) // group] + 0.25 * torch.randn(n_ids, d, generator=gen)
    centres = torch.cat([alike, torch.randn(g, d, generator=gen)])  # then the junk items'
    q_pids = torch.arange(q) % n_ids
    g_pids = torch.cat([torch.arange(n_ids), torch.randint(0, n_ids, (g - n_ids,), generator=gen)])
    junk = torch.rand(g, generator=gen) < 0.1
    g_pids[junk] = -1
    g_centres = torch.where(junk, n_ids + torch.arange(g), g_pids)
    qf = centres[q_pids] + torch.randn(q, d, generator=gen)
    gf = centres[g_centres] + torch.randn(g, d, generator=gen)
    cams = torch.randint(0, 6, (q + g,), generator=gen)
    return qf, gf, (q_pids, g_pids, cams[:q], cams[q:])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn, *args):
    """-> (fn's result, wall seconds); the CPU seconds of the last call in ``timed.cpu``."""
    start, cpu = time.perf_counter(), cpu_seconds()
    out = fn(*args)
    timed.cpu = cpu_seconds() - cpu
    return out, time.perf_counter() - start


def compare(name: str, qf, gf, ids, rule: str) -> None:
    """bench against the NumPy evaluators on one problem; results checked equal."""
    dist = cosine(qf, gf)
    np_args = [dist.numpy(), *(t.numpy() for t in ids), rule]
    ours, t_bench = timed(evaluate, dist, *ids, Protocol(ap=rule))
    c_bench = timed.cpu
    shown = f"R1 {ours['R1']:5.1f}, mAP {ours['mAP']:5.1f}, mINP {ours['mINP']:5.1f}"
    print(f"  {name:9s} {shown} ({rule} AP):")
    times = {}
    for label, chunk in (("whole matrix", None), (f"{NUMPY_CHUNK} rows", NUMPY_CHUNK)):
        (curve, m), t_np = timed(numpy_evaluate, *np_args, chunk)
        times[chunk] = (t_np, timed.cpu)
        gap = max(float(np.abs(np.array(ours["cmc"]) - curve).max()), abs(ours["mAP"] - m))
        print(
            f"    numpy argsort, {label:12s} {t_np:6.2f} s ({timed.cpu:5.1f} s CPU); "
            f"CMC and mAP differ from bench's by {gap:.1e}"
        )
    t_np, c_np = times[NUMPY_CHUNK]
    print(
        f"    bench                        {t_bench:6.2f} s ({c_bench:5.1f} s CPU): "
        f"{t_np / t_bench:4.1f}x faster than {NUMPY_CHUNK}-row numpy "
        f"({c_np / c_bench:.1f}x in CPU time)"
    )


def mars_sized(dim: int) -> None:
    print(f"1980 x 9330, {dim}-d features, {torch.get_num_threads()} threads; a given matrix:")
    real = realistic_problem(1980, 9330, dim)
    compare("realistic", *real, "trapezoid")
    compare("random", *random_problem(1980, 9330, dim), "trapezoid")
    _, t_stream = timed(streamed, *real)
    print(f"  streamed from {dim}-d features (distances included): {t_stream:6.2f} s", end="")
    print(f" ({timed.cpu:.1f} s CPU)")
    result, t_rerank = timed(streamed, *real, {"k1": 20, "k2": 6, "lambda_": 0.3})
    print(
        f"  re-ranked (k1 20, k2 6, lambda 0.3, the authors' form), streamed from the features: "
        f"{t_rerank:6.2f} s ({timed.cpu:.1f} s CPU), of which the plain evaluation above is "
        f"{t_stream:.2f} s; R1 {result['rerank.R1']:.1f}, mAP {result['rerank.mAP']:.1f}"
    )


def streamed(qf, gf, ids, rerank: dict | None = None):
    def distance(a, b):
        return cosine(a["feat"], b["feat"])

    return evaluate_features(distance, {"feat": qf}, {"feat": gf}, ids, Protocol(), rerank=rerank)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def large_gallery(gallery: int, dim: int) -> None:
    qf, gf, ids = random_problem(2000, gallery, dim)
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
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.gallery:
        large_gallery(args.gallery, args.dim)
    else:
        mars_sized(args.dim)


if __name__ == "__main__":
    main()
