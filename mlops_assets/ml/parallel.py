"""Two independent pieces of a region's training at once, in threads of one process.

Fitting a network and fitting LASSOs (or two networks) spend their time in torch and in
scikit-learn's coordinate descent, both of which release the GIL: two threads use two
cores without a second process importing torch and copying the region's frames. Torch's
intra-op threads are shared out meanwhile, so two fits do not fight over the same cores.
``threads=1`` runs everything in order (same results: each fit is seeded).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def workers(threads: int = 0) -> int:
    """``threads`` when given, else as many as this process may use of the cores, at most 2."""
    if threads:
        return max(1, threads)
    return min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def run_both(*calls: Callable[[], Any], threads: int = 0) -> list[Any]:
    """The results of ``calls``, run side by side when there are cores for it (``threads``: see
    ``workers``); an exception in either is raised here after both ended."""
    n = min(workers(threads), len(calls))
    if n < 2:
        return [call() for call in calls]
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, before // n))
    try:
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="mlops-train") as pool:
            futures = [pool.submit(call) for call in calls]
            return [future.result() for future in futures]
    finally:
        torch.set_num_threads(before)
