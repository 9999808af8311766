"""Rank finished runs and recommend one, weighing eval loss against adapter size.

The rule follows the usual sweep-tracker advice: the lowest eval loss wins, unless a run with at
most half the trainable parameters comes within ``tolerance`` (relative) of it — then the smaller
adapter is the better buy (cheaper to serve, less prone to overfit).
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.training.runs import RunSummary


@dataclass(frozen=True)
class Recommendation:
    run: RunSummary
    why: str


def ranked(summaries: list[RunSummary]) -> list[RunSummary]:
    scored = [s for s in summaries if s.best_eval_loss is not None]
    return sorted(scored, key=lambda s: s.best_eval_loss)


def recommend(summaries: list[RunSummary], tolerance: float = 0.01) -> Recommendation | None:
    order = ranked(summaries)
    if not order:
        return None
    best = order[0]
    smaller = [
        s for s in order[1:]
        if s.trainable_params and best.trainable_params and s.trainable_params * 2 <= best.trainable_params
        and s.best_eval_loss <= best.best_eval_loss * (1 + tolerance)
    ]
    if smaller:
        pick = min(smaller, key=lambda s: s.trainable_params)
        return Recommendation(pick, (
            f"{pick.name}: eval loss {pick.best_eval_loss:.4f} is within {tolerance:.0%} of the best "
            f"({best.best_eval_loss:.4f}) with {best.trainable_params / pick.trainable_params:.1f}x fewer trainable parameters."
        ))
    return Recommendation(best, f"{best.name}: lowest eval loss ({best.best_eval_loss:.4f}).")
