"""The seeded hold-out split, drawn in one place so the dataset check's leakage findings, the memory
estimate and the trainer hold out exactly the same rows."""

from __future__ import annotations

import random


def split_sizes(n: int, ratio: float) -> tuple[int, int]:
    """(train, eval) row counts of the hold-out split, without drawing it (cheap for a UI)."""
    if ratio <= 0 or n < 2:
        return n, 0
    n_eval = max(1, round(n * ratio))
    return n - n_eval, n_eval


def split_indices(n: int, ratio: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, eval) row indices of the hold-out split, each in row order: the same seed always
    holds out the same rows. Callers with rows in hand pick them by these indices."""
    if ratio <= 0 or n < 2:
        return list(range(n)), []
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_eval = split_sizes(n, ratio)[1]
    held = set(order[:n_eval])
    return [i for i in range(n) if i not in held], sorted(held)
