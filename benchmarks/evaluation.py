"""CMC/mAP time on a MARS-sized problem (1,980 queries x 9,330 gallery tracklets), vectorised.

python benchmarks/evaluation.py
"""

from __future__ import annotations

import time

import torch

from bench.data.base import Protocol
from bench.distance import cosine
from bench.metrics import evaluate


def main() -> None:
    torch.manual_seed(0)
    q, g, d = 1980, 9330, 2048
    qf, gf = torch.randn(q, d), torch.randn(g, d)
    q_pids, g_pids = torch.randint(0, 625, (q,)), torch.randint(-1, 625, (g,))
    q_cams, g_cams = torch.randint(0, 6, (q,)), torch.randint(0, 6, (g,))
    start = time.perf_counter()
    dist = cosine(qf, gf)
    t_dist = time.perf_counter() - start
    for rule in ("mean", "trapezoid"):
        start = time.perf_counter()
        evaluate(dist, q_pids, g_pids, q_cams, g_cams, Protocol(ap=rule))
        print(
            f"{q} x {g}: distances {t_dist:.2f} s, CMC/mAP ({rule} AP) "
            f"{time.perf_counter() - start:.2f} s"
        )


if __name__ == "__main__":
    main()
