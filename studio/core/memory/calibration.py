"""What earlier runs on this machine say about the estimate: its typical error and a correction.

Every run journals the estimate it started with (``RunStarted.estimated_peak_bytes``, before any
correction) and its measured peak (``RunFinished.peak_memory_bytes``). The ratio measured/estimated
over those runs is this machine's correction factor: it absorbs what the arithmetic cannot know
(another Python build, another allocator, the libraries' own caches). The median is used so one
odd run (a crash at step 1, a machine under other load) does not move it much.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

# Runs needed before the factor is applied: with one run the "correction" would be that run's noise.
MIN_RUNS = 2
# A ratio outside this range is not an estimate error but a run that did not reach its peak (stopped
# while loading) or measured something else; such runs are left out.
PLAUSIBLE_RATIO = (0.25, 4.0)


@dataclass(frozen=True)
class Calibration:
    runs: int  # runs the figures come from
    factor: float  # multiply an estimate by this (1.0 until MIN_RUNS runs)
    mean_abs_error_pct: float  # of the uncorrected estimates, in percent

    @property
    def applied(self) -> bool:
        return self.factor != 1.0

    def describe(self) -> str:
        """One line for the Configure pane and `studio estimate`."""
        if not self.runs:
            return "No runs on this machine yet to check the estimate against."
        runs = f"{self.runs} run" + ("s" if self.runs != 1 else "")
        line = f"Estimates on this machine: ±{self.mean_abs_error_pct:.0f} % over {runs}"
        if self.applied:
            return line + f"; correction ×{self.factor:.2f} applied."
        return line + f"; a correction is applied from {MIN_RUNS} runs on."


NONE = Calibration(runs=0, factor=1.0, mean_abs_error_pct=0.0)


def calibrate(pairs: Iterable[tuple[int, int]]) -> Calibration:
    """From (estimated, measured) peak bytes of past runs; pairs with a zero are skipped."""
    lo, hi = PLAUSIBLE_RATIO
    ratios = [m / e for e, m in pairs if e > 0 and m > 0 and lo <= m / e <= hi]
    if not ratios:
        return NONE
    error = 100.0 * statistics.fmean(abs(r - 1.0) for r in ratios)
    factor = statistics.median(ratios) if len(ratios) >= MIN_RUNS else 1.0
    return Calibration(runs=len(ratios), factor=factor, mean_abs_error_pct=error)


def machine_calibration(device_kind: str, root=None) -> Calibration:
    """The calibration from the runs store: finished runs on this device kind with both figures."""
    from studio.core.training import runs

    pairs = []
    for s in runs.list_runs(root):
        if s.status != "completed" or (s.device_kind and s.device_kind != device_kind):
            continue
        pairs.append((s.estimated_peak_bytes, s.peak_memory_bytes))
    return calibrate(pairs)
