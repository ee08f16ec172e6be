"""How much working memory an evaluation chunk may take, on the CPU or a CUDA device."""

from __future__ import annotations

import os

import torch

#: bytes held per (query, gallery) pair of a ranking chunk: its distance, histogram slot, masks
PAIR_BYTES = 32
#: at most this much working memory on the CPU (and a quarter of what is free)
CPU_BUDGET = 256 * 2**20


def memory_budget(device: torch.device) -> int:
    """Bytes of working memory for one chunk: a quarter of the free memory
    (``torch.cuda.mem_get_info`` on CUDA; on the CPU at most ``CPU_BUDGET``)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 4
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return min(CPU_BUDGET, free // 4)


def query_rows(n_gallery: int, device: torch.device, pair_bytes: int = PAIR_BYTES) -> int:
    """Queries per ranking chunk against ``n_gallery`` items."""
    return max(1, memory_budget(device) // (pair_bytes * max(n_gallery, 1)))
