"""How an estimate is judged against the memory there is: green, amber or red.

An estimate is a prediction, not a guarantee: other programs, the page cache and the allocator
take their share. So "fits" in green needs headroom; a run that would use the last tenth of the
budget is amber (it may run, it may not); red means it does not fit at all.
"""

from __future__ import annotations

from typing import Literal

Verdict = Literal["green", "amber", "red"]

# Green only up to this share of the budget: the estimate's own error (up to about 10 %, see
# tests/benchmarks/memory_results_cpu.md) must not be able to turn green into out-of-memory.
GREEN_SHARE = 0.9


def green_limit(budget_bytes: int) -> int:
    """The most bytes an estimate may need and still be judged green."""
    return int(budget_bytes * GREEN_SHARE)


def verdict(total_bytes: int, budget_bytes: int) -> Verdict:
    if total_bytes > budget_bytes:
        return "red"
    return "green" if total_bytes <= green_limit(budget_bytes) else "amber"
