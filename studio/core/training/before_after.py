"""Before/after: the same measures on the eval split for the model a run starts from and the one it ends
with, so a run says what it changed — not only that its loss went down.

Measured twice by the engine: right after the baseline eval (before the first step the model is the
base, or the parent adapter a preference run starts from; a fresh LoRA's B is zero, so the wrapped model
answers exactly as the base), and after the last step on the weights that are saved. Per side:
- eval loss and perplexity: the step-0 and the final eval (perplexity only for next-token losses);
- exact match of short answers and the share of answers that end with EOS: one greedy batch on up to
  ``stop_check.MAX_PROMPTS`` eval prompts (``stop_check.measure``);
- for preference pairs, the share of eval pairs whose chosen answer the model finds likelier than the
  rejected one, per token (mean log-probability; a summed one mostly says which answer is shorter, and a
  few DPO steps move the margin long before they overturn a length gap). TRL's own "preference accuracy"
  compares rewards relative to the reference model, which for the starting model is zero on both sides by
  definition, so it cannot say how far the base already preferred the chosen answers; this measure can,
  for both sides alike.

The "before" side is journaled as a ``ModelCheck`` event at step 0, so a resumed run still reports
against the model it started from; the report goes on RunFinished and into the Library entry's metrics
(its lineage), where the Train pane, the Library and ``studio train`` show it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

from studio.core.training import stop_check

# Log-probabilities of both sides of each pair: one forward per side and pair, so the eval split's first
# pairs are enough to tell a model that prefers the chosen answers from one that does not.
MAX_PAIRS = 32

# The report's rows in the order they are shown: key, label, whether lower is better, how it prints.
MEASURES: tuple[tuple[str, str, bool, str], ...] = (
    ("eval_loss", "Eval loss", True, "{:.4f}"),
    ("perplexity", "Perplexity", True, "{:.2f}"),
    ("exact_match", "Exact match (short answers)", False, "{:.0%}"),
    ("pair_accuracy", "Prefers the chosen answer", False, "{:.0%}"),
    ("eos_share", "Answers end with EOS", False, "{:.0%}"),
)


def pair_accuracy(model: Any, pairs: Sequence[dict[str, list[int]]],
                  should_stop: Callable[[], bool] = lambda: False) -> tuple[float, int] | None:
    """(share, checked): eval pairs whose chosen answer gets the higher mean per-token log-probability
    given the prompt. None without pairs or when the user stopped the run."""
    pairs = list(pairs[:MAX_PAIRS])
    if not pairs:
        return None
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    wins = 0
    try:
        with torch.inference_mode():
            for pair in pairs:
                if should_stop():
                    return None
                lp = [_answer_logprob(model, pair["prompt_ids"], pair[side], device)
                      for side in ("chosen_ids", "rejected_ids")]
                wins += lp[0] > lp[1]
    finally:
        model.train(was_training)
    return wins / len(pairs), len(pairs)


def _answer_logprob(model: Any, prompt: list[int], answer: list[int], device: Any) -> float:
    import torch

    ids = torch.tensor([prompt + answer], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1].float()
    picked = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, len(prompt):, None])
    return float(picked.mean())


def check(model: Any, tokenizer: Any, model_dir: str, features: Any, *, pairs: Sequence | None,
          should_stop: Callable[[], bool]) -> dict[str, float | int]:
    """One side's generation and pair measures (empty when there is nothing to check).

    ``features`` has the eval rows as supervised features (a preference run passes its chosen sides);
    ``pairs`` the eval pairs of a preference run. Under a multi-process launcher the model is split or
    replicated across ranks and generating on one of them alone could wait forever on the others, so such
    runs are not checked.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return {}
    out: dict[str, float | int] = {}
    prompts = stop_check.eval_prompts(features.eval, features.eval_chat)
    gen = stop_check.measure(model, tokenizer, prompts, stop_check.stop_ids(tokenizer, model_dir), should_stop)
    if gen is not None:
        out.update(gen.fields())
        if gen.exact_match is not None:
            out.update(exact_match=gen.exact_match, exact_checked=gen.exact_checked)
    acc = pair_accuracy(model, pairs or [], should_stop)
    if acc is not None:
        out.update(pair_accuracy=acc[0], pairs_checked=acc[1])
    return out


def guarded_check(send: Callable[[Any], None], step: int, phase: str, *args: Any, **kwargs: Any) -> dict:
    """``check`` as the engine runs it: announced, journaled as a ``ModelCheck``, and never failing the
    run (its result is safe either way; a failed extra check becomes a warning)."""
    from studio.core.training.events import Log, ModelCheck, StateChanged

    what = "the starting model" if phase == "before" else "the trained model"
    send(StateChanged(state="evaluating", detail=f"Checking answers of {what} on eval prompts"))
    try:
        values = check(*args, **kwargs)
    except Exception as err:
        send(Log(level="warning", message=f"Could not check the answers of {what}: {type(err).__name__}: {err}"))
        return {}
    if values:
        send(ModelCheck(step=step, phase=phase, values=values))
    return values


def report(before: dict[str, float | int], after: dict[str, float | int], *, eval_before: float | None,
           eval_after: float | None, next_token_loss: bool) -> dict[str, dict[str, float]]:
    """{measure: {"before": x, "after": y}} for every measure known on at least one side."""
    sides = [dict(before), dict(after)]
    for side, loss in zip(sides, (eval_before, eval_after), strict=True):
        if loss is not None and math.isfinite(loss):
            side["eval_loss"] = loss
            if next_token_loss:
                side["perplexity"] = math.exp(min(loss, 50.0))
    out: dict[str, dict[str, float]] = {}
    for key, *_ in MEASURES:
        row = {name: float(side[key]) for name, side in zip(("before", "after"), sides, strict=True) if key in side}
        if row:
            out[key] = row
    return out


def fmt(key: str, value: float | None) -> str:
    spec = next(s for k, _, _, s in MEASURES if k == key)
    return "—" if value is None else spec.format(value)


def better(key: str, before: float, after: float) -> bool | None:
    """Whether the change is an improvement (None when nothing changed)."""
    if before == after:
        return None
    lower = next(low for k, _, low, _ in MEASURES if k == key)
    return (after < before) if lower else (after > before)


def report_lines(rep: dict[str, dict[str, float]]) -> list[str]:
    """The report as the CLI and the Train pane's log print it, one measure per line."""
    if not rep:
        return []
    lines = ["before → after, on the eval split:"]
    for key, label, _, _ in MEASURES:
        row = rep.get(key)
        if row:
            lines.append(f"  {label}: {fmt(key, row.get('before'))} → {fmt(key, row.get('after'))}")
    return lines


# A fall in the share of answers that end with EOS by this much (of all answers) is worth a warning: the
# run made the model worse at something the eval loss does not show.
EOS_DROP = 0.25


def warnings(rep: dict[str, dict[str, float]], objective: str) -> list[str]:
    """What the report shows got worse in a way the curves hide, with what to do about it."""
    row = rep.get("eos_share") or {}
    before, after = row.get("before"), row.get("after")
    if before is None or after is None or before - after < EOS_DROP:
        return []
    line = f"Answers end with EOS less often than before training ({before:.0%} → {after:.0%} of the eval prompts)"
    if objective != "sft":
        return [line + ": preference training pushed down the end-of-turn both answers share. Try the "
                f"{objective.upper()} recipe's learning rate, a larger beta (stays closer to the start), or start "
                "from an SFT adapter (--start-from)."]
    return [line + ": check that the end-of-turn token carries loss (`studio validate --model`), or lower the "
            "learning rate."]


def run_report(run_dir: Any, after: dict[str, float | int], eval_after: float | None, *,
               next_token_loss: bool) -> dict[str, dict[str, float]]:
    """The report of a finished run: its "before" side read back from the journal (so a resumed run is
    still compared with the model it started from), its "after" side as just measured."""
    from studio.core.training import runs

    before: dict[str, float | int] = {}
    eval_before: float | None = None
    for ev in runs.read_events(run_dir):
        if ev.kind == "eval" and ev.step == 0:
            eval_before = ev.eval_loss
        elif ev.kind == "model_check" and ev.phase == "before":
            before = dict(ev.values)
    return report(before, after, eval_before=eval_before, eval_after=eval_after, next_token_loss=next_token_loss)
