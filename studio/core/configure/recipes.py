"""The method recipes and the alpha link: what switching LoRA / QLoRA / full does to the other knobs.

One home for the rules the Configure pane applies when the user picks a method and that
``studio train`` / ``studio estimate`` apply to ``--method``, so the GUI and the CLI train the same
run from the same choices. A knob someone chose (the user's edit, a flag, a loaded file whose value
differs from the recipe) is "touched" and never reset by a method switch.
"""

from __future__ import annotations

from typing import Any

from studio.core.config import (
    PREFERENCE_OBJECTIVES,
    LoraSection,
    Method,
    Objective,
    RunConfig,
    apply_overrides,
)

DEFAULT_RANK: int = LoraSection.model_fields["r"].default
ALPHA_PER_RANK = 2.0  # the common recipe: alpha = 2 x r

# The knobs a method's recipe sets; only these can be "touched" in a way that matters.
RECIPE_KEYS = ("training.lr", "lora.r", "lora.alpha")


# Preference objectives on an adapter. DPO with LoRA is usually run between 5e-6 and 5e-5: the loss
# compares the adapter with the frozen base, and a rate near the SFT recipe (2e-4) drives the margin up
# in a few steps by pushing both answers' likelihood down. 2e-5 sits in the middle of that range. ORPO
# has no reference to anchor it and carries the answer's own loss, so it takes a slightly higher 5e-5.
PREFERENCE_LR: dict[str, float] = {"dpo": 2e-5, "orpo": 5e-5}


def default_lr(method: Method, objective: Objective = "sft") -> float:
    """The seeds' recipe: 2e-4 for adapters, 2e-5 when every weight moves, PREFERENCE_LR for DPO/ORPO."""
    if objective in PREFERENCE_OBJECTIVES:
        return PREFERENCE_LR[objective]
    return 2e-5 if method == "full" else 2e-4


def linked_alpha(rank: int) -> float:
    """Alpha while it follows the rank."""
    return ALPHA_PER_RANK * rank


def alpha_is_linked(cfg: RunConfig) -> bool:
    return cfg.lora.alpha == linked_alpha(cfg.lora.r)


def touched_in(cfg: RunConfig) -> set[str]:
    """Knobs of a config that differ from its method's recipe: its author chose them, so a later
    method switch must not reset them."""
    out = set()
    if cfg.training.lr != default_lr(cfg.method, cfg.objective):
        out.add("training.lr")
    if cfg.lora.r != DEFAULT_RANK:
        out.add("lora.r")
    if not alpha_is_linked(cfg):
        out.add("lora.alpha")
    return out


def method_recipe(cfg: RunConfig, method: Method, touched: set[str], *, alpha_linked: bool,
                  objective: Objective | None = None) -> dict[str, Any]:
    """Overrides that switch ``cfg`` to ``method`` (and ``objective``, when given) and bring its untouched
    knobs to that recipe.

    Beside ``touched`` (the user's own edits), whatever in ``cfg`` differs from the current recipe was
    chosen by someone (a loaded file, the demo's defaults, another pane) and is kept too. Empty when
    ``method`` and ``objective`` are already the config's.
    """
    objective = objective or cfg.objective
    if method == cfg.method and objective == cfg.objective:
        return {}
    touched = set(touched) | touched_in(cfg)
    overrides: dict[str, Any] = {"method": method}
    if objective != cfg.objective:
        overrides["objective"] = objective
    if "training.lr" not in touched:
        overrides["training.lr"] = default_lr(method, objective)
    if method != "full":
        r = cfg.lora.r if "lora.r" in touched else DEFAULT_RANK
        overrides["lora.r"] = r
        if alpha_linked or "lora.alpha" not in touched:
            overrides["lora.alpha"] = linked_alpha(r)
    return overrides


def _follow_ups(before: RunConfig, after: RunConfig, chosen: set[str]) -> dict[str, Any]:
    """What the rules add when a command line's settings (``chosen``, dotted keys) took ``before`` to
    the already validated ``after``: alpha follows a new rank unless ``before`` set alpha on its own,
    and a new method brings its recipe to the knobs neither ``before`` nor the flags set.

    The rules the Configure pane applies one edit at a time, applied to a whole command line, so that
    ``--method qlora`` trains what choosing QLoRA in the pane trains. Keys in ``chosen`` are left as given.
    """
    linked = alpha_is_linked(before) and "lora.alpha" not in chosen
    extra = (method_recipe(before, after.method, chosen, alpha_linked=linked, objective=after.objective)
             if {"method", "objective"} & chosen else {})
    if "lora.r" in chosen and linked:
        extra["lora.alpha"] = linked_alpha(after.lora.r)
    return {key: value for key, value in extra.items() if key not in chosen}


def apply_choices(cfg: RunConfig, choices: dict[str, Any], labels: dict[str, str] | None = None) -> RunConfig:
    """``cfg`` with settings chosen all at once (a command line's flags, as dotted keys) and what the
    rules make of them; a bad value is reported once, against its flag in ``labels``."""
    after = apply_overrides(cfg, choices, labels)
    extra = _follow_ups(cfg, after, {key for key, value in choices.items() if value is not None})
    return apply_overrides(after, extra) if extra else after
