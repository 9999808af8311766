"""The Configure room's rules without Qt: the session a view binds to, the method recipes, the budget."""

from studio.core.configure.budget import Budget, budget_for, model_limits
from studio.core.configure.recipes import (
    ALPHA_PER_RANK,
    DEFAULT_RANK,
    apply_choices,
    default_lr,
    linked_alpha,
    method_recipe,
    touched_in,
)
from studio.core.configure.session import ConfigureSession, LengthMode

__all__ = [
    "ALPHA_PER_RANK",
    "DEFAULT_RANK",
    "Budget",
    "ConfigureSession",
    "LengthMode",
    "apply_choices",
    "budget_for",
    "default_lr",
    "linked_alpha",
    "method_recipe",
    "model_limits",
    "touched_in",
]
