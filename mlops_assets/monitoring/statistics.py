"""Distances the monitor uses, plain numpy/scipy; the unit tests check each against hand-computed values."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon


def js_distance(reference_counts: dict, current_counts: dict) -> float:
    """Jensen-Shannon distance (base 2: 0 identical, 1 disjoint) between two value counts."""
    keys = sorted(set(reference_counts) | set(current_counts))
    p = np.array([reference_counts.get(k, 0) for k in keys], dtype=float)
    q = np.array([current_counts.get(k, 0) for k in keys], dtype=float)
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p / p.sum(), q / q.sum(), base=2))
