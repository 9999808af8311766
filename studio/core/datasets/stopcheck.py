"""Checks on the model and its chat format, before any compute: is there a format, and will it stop?

A model learns to stop by being trained on the token that ends an assistant turn, and generation
stops only on the ids in the model's ``generation_config`` eos. If that end-of-turn token is masked
out, or is not one of those ids (a base model given ChatML ends turns with ``<|im_end|>`` while it
stops on ``</s>``), the trained model answers and then rambles until the token limit.
"""

from __future__ import annotations

import json
from pathlib import Path

from studio.core.datasets.findings import Finding, describe
from studio.core.datasets.formats import Example
from studio.core.datasets.render import IGNORE_INDEX, render_example
from studio.core.datasets.templates import apply_choice, has_own_template, missing_template_message

_PROBE = Example(messages=(("user", "What is two plus two?"), ("assistant", "Four.")))


def generation_eos_ids(model_dir: str | Path | None, tokenizer) -> set[int]:
    """The ids generation stops on: ``generation_config.json``'s eos, else config.json's, else the tokenizer's."""
    for name in ("generation_config.json", "config.json"):
        path = Path(model_dir) / name if model_dir else None
        if path is None or not path.is_file():
            continue
        try:
            eos = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
        except (OSError, ValueError, AttributeError):
            continue
        if eos is not None:
            return {int(e) for e in (eos if isinstance(eos, list) else [eos])}
    return {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()


def _finding(code: str, file: str, note: str) -> Finding:
    severity = "error" if code == "model.no_chat_template" else "warning"
    return Finding(severity=severity, code=code, message=describe(code, 1, note), file=file)


def model_findings(tokenizer, model_dir: str | Path | None, choice: str = "") -> list[Finding]:
    """Findings about the model's chat format for chat data: a missing template (the user must pick
    one), and an end of turn that is untrained or that generation does not stop on.

    ``choice`` is the run config's ``model.chat_template``; it is applied to ``tokenizer``.
    """
    name = Path(model_dir).name if model_dir else str(getattr(tokenizer, "name_or_path", "") or "model")
    apply_choice(tokenizer, choice)
    if not has_own_template(tokenizer):
        return [Finding(severity="error", code="model.no_chat_template", file=name,
                        message=missing_template_message(model_dir or name))]
    eot = end_of_turn(tokenizer)
    if eot is None:
        return []   # the template refuses this shape; the token checks report it per row
    token_id, trained = eot
    if token_id is None or not trained:
        return [_finding("model.stop_not_trained", name, f"template of {name}")]
    eos = generation_eos_ids(model_dir, tokenizer)
    if eos and token_id not in eos:
        shown = tokenizer.convert_ids_to_tokens(token_id)
        stops = ", ".join(str(tokenizer.convert_ids_to_tokens(i)) for i in sorted(eos))
        return [_finding("model.stop_not_eos", name, f"answers end with {shown!r}, generation stops on {stops}")]
    return []


def end_of_turn(tokenizer) -> tuple[int | None, bool] | None:
    """The token the chat template closes an assistant turn with (``<|im_end|>``, ``<|eot_id|>``…)
    and whether it carries loss, read off a rendered two-turn probe: (id, trained); (None, False)
    when the template adds nothing after the answer; None when it refuses the probe. One probe for
    the check before training and the stop check after it, so both mean the same token."""
    try:
        rendered = render_example(_PROBE, tokenizer, 256)
    except Exception:
        return None
    answer = _PROBE.messages[-1][1]
    end = rendered.text.rfind(answer)
    if end < 0:
        return None
    end += len(answer)
    after = [t for t, (s, e) in enumerate(rendered.offsets) if e > s and s >= end]
    if not after:
        return None, False
    return int(rendered.input_ids[after[0]]), rendered.labels[after[0]] != IGNORE_INDEX


def has_chat_rows(report) -> bool:
    """Whether a dataset report holds rows that go through a chat template (the model findings above
    matter only then: plain text rows are trained as they are)."""
    return any(kind != "text" for kind in report.stats.get("turns", {}))
