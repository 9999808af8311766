"""Rank finished runs and recommend one, each objective by the measure that means something for it.

Supervised (SFT) runs: the lowest eval loss wins, unless a run with at most half the trainable
parameters comes within ``tolerance`` (relative) of it — then the smaller adapter is the better buy
(cheaper to serve, less prone to overfit), the usual sweep-tracker advice.

Preference runs (DPO, ORPO): their loss is not a next-token loss and is not comparable with an SFT
run's, nor between DPO and ORPO (ORPO's adds an odds-ratio term). They are ranked by eval preference
accuracy — the share of eval pairs whose chosen answer the adapter prefers — then by eval reward
margin (how far it prefers it). Runs of different objectives are ranked within their objective, and
the recommendation names one run per objective and says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.training.runs import RunSummary

OBJECTIVE_ORDER = ("sft", "dpo", "orpo", "preference")
OBJECTIVE_LABELS = {"sft": "SFT", "dpo": "DPO", "orpo": "ORPO", "preference": "preference"}


def is_preference(objective: str) -> bool:
    return objective not in ("", "sft")


def measure_of(objective: str) -> str:
    """What runs of ``objective`` are ranked by, in words."""
    return "best eval preference accuracy, then reward margin" if is_preference(objective) else "best eval loss"


@dataclass(frozen=True)
class RankGroup:
    """The ranked runs of one objective."""

    objective: str
    runs: list[RunSummary]

    @property
    def label(self) -> str:
        return OBJECTIVE_LABELS.get(self.objective, self.objective.upper())

    @property
    def measure(self) -> str:
        return measure_of(self.objective)


@dataclass(frozen=True)
class Recommendation:
    run: RunSummary
    why: str
    picks: tuple[RunSummary, ...] = ()   # one run per objective ranked; ``run`` is the first

    def __post_init__(self) -> None:
        if not self.picks:
            object.__setattr__(self, "picks", (self.run,))


def _preference_key(s: RunSummary) -> tuple[float, float]:
    margin = s.best_eval_margin if s.best_eval_margin is not None else float("-inf")
    return (-s.best_eval_accuracy, -margin)


def groups(summaries: list[RunSummary]) -> list[RankGroup]:
    """Runs that have their objective's measure, ranked within each objective (SFT, DPO, ORPO order)."""
    out = []
    present = sorted({s.objective or "sft" for s in summaries},
                     key=lambda o: OBJECTIVE_ORDER.index(o) if o in OBJECTIVE_ORDER else len(OBJECTIVE_ORDER))
    for objective in present:
        mine = [s for s in summaries if (s.objective or "sft") == objective]
        if is_preference(objective):
            order = sorted((s for s in mine if s.best_eval_accuracy is not None), key=_preference_key)
        else:
            order = sorted((s for s in mine if s.best_eval_loss is not None), key=lambda s: s.best_eval_loss)
        if order:
            out.append(RankGroup(objective, order))
    return out


def ranked(summaries: list[RunSummary]) -> list[RunSummary]:
    """Every rankable run, objective after objective, each objective's runs best first."""
    return [s for g in groups(summaries) for s in g.runs]


def score_text(s: RunSummary) -> str:
    """The value a run is ranked by: its eval loss, or its eval preference accuracy and reward margin."""
    if is_preference(s.objective):
        if s.best_eval_accuracy is None:
            return "—"
        margin = f", margin {s.best_eval_margin:+.3f}" if s.best_eval_margin is not None else ""
        return f"{s.best_eval_accuracy:.0%}{margin}"
    return "—" if s.best_eval_loss is None else f"{s.best_eval_loss:.4f}"


def _pick_sft(order: list[RunSummary], tolerance: float) -> tuple[RunSummary, str]:
    best = order[0]
    smaller = [
        s for s in order[1:]
        if s.trainable_params and best.trainable_params and s.trainable_params * 2 <= best.trainable_params
        and s.best_eval_loss <= best.best_eval_loss * (1 + tolerance)
    ]
    if smaller:
        pick = min(smaller, key=lambda s: s.trainable_params)
        return pick, (
            f"{pick.name}: eval loss {pick.best_eval_loss:.4f} is within {tolerance:.0%} of the best "
            f"({best.best_eval_loss:.4f}) with {best.trainable_params / pick.trainable_params:.1f}x fewer trainable parameters."
        )
    return best, f"{best.name}: lowest eval loss ({best.best_eval_loss:.4f})."


def _pick_preference(order: list[RunSummary]) -> tuple[RunSummary, str]:
    best = order[0]
    accuracy = f"eval preference accuracy {best.best_eval_accuracy:.0%}"
    margin = f"reward margin {best.best_eval_margin:+.3f}" if best.best_eval_margin is not None else ""
    tied = [s for s in order[1:] if s.best_eval_accuracy == best.best_eval_accuracy]
    if tied and margin:
        why = f"highest {accuracy}, shared with {len(tied)} other run(s); the larger {margin} decided."
    else:
        why = f"highest {accuracy}" + (f" ({margin})." if margin else ".")
    return best, f"{best.name}: {why}"


def recommend(summaries: list[RunSummary], tolerance: float = 0.01) -> Recommendation | None:
    """The run to keep, per objective; ``why`` says which measure decided (and, for several objectives,
    that each was ranked on its own)."""
    picks: list[tuple[RankGroup, RunSummary, str]] = []
    for g in groups(summaries):
        run, why = _pick_preference(g.runs) if is_preference(g.objective) else _pick_sft(g.runs, tolerance)
        picks.append((g, run, why))
    if not picks:
        return None
    if len(picks) == 1:
        return Recommendation(picks[0][1], picks[0][2])
    why = ("Ranked within each objective; their losses are not comparable. "
           + " ".join(f"{g.label}: {text}" for g, _run, text in picks))
    return Recommendation(picks[0][1], why, tuple(run for _g, run, _t in picks))
