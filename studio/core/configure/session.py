"""The Configure room without its widgets: a RunConfig plus the rules that edit it.

A view binds to a session (napari's ``Dims`` and its ``QtDims``, glue's state classes): user edits go
in through :meth:`ConfigureSession.set` and friends, and every change comes back out as events, one
per config field (``events["lora.r"]``), one for the whole config, one for the alpha link, one for
rejected edits and one for the budget. The rules live here, so the pane holds none:

- the alpha link: alpha follows the rank (alpha = 2 x r) until something sets alpha on its own;
- method recipes: choosing LoRA / QLoRA / full, or the objective (SFT / DPO / ORPO), resets the knobs
  nobody touched to that recipe (DPO and ORPO bring their own learning rate);
- touched fields: the user's edits, a suggestion's and a loaded file's own choices are kept;
- length mode: train for epochs, or for a number of steps that is remembered while epochs are used;
- the budget: this machine's GPU or RAM, or a GPU size planned for;
- field errors: a rejected edit is kept, by field, as the config's own rule text, and the config is
  left as it was.

Callbacks run on the thread that changed the session; the GUI changes it from its main thread only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from studio.core.config import ConfigError, RunConfig, apply_overrides
from studio.core.configure.budget import Budget, budget_for
from studio.core.configure.fields import field_keys, field_value
from studio.core.configure.recipes import alpha_is_linked, linked_alpha, method_recipe, touched_in
from studio.core.configure.signal import Signal
from studio.core.errors import StudioError
from studio.core.models.device import DeviceInfo

LengthMode = Literal["epochs", "steps"]
MIN_STEPS = 1  # the first step count offered when switching to steps before any was set


class SessionEvents:
    """``events[key]`` per config field (called with the new value when it changed), ``changed`` with
    (key, value) for any field that changed (for a view that binds a table of editors), ``config``
    after every change (with the new RunConfig, even when no value moved), ``alpha_linked`` (bool),
    ``errors`` (field -> message of the rejected edits) and ``budget`` (the machine or plan changed)."""

    def __init__(self) -> None:
        self._fields = {key: Signal() for key in field_keys()}
        self.changed = Signal()
        self.config = Signal()
        self.alpha_linked = Signal()
        self.errors = Signal()
        self.budget = Signal()

    def __getitem__(self, key: str) -> Signal:
        return self._fields[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)


def error_text(err: StudioError) -> str:
    """What to show beside the editor whose edit was refused: one ``field: rule`` line per problem."""
    if isinstance(err, ConfigError) and err.problems:
        return "\n".join(err.problem_lines())
    return err.message


class ConfigureSession:
    def __init__(self, config: RunConfig | None = None) -> None:
        self._cfg = config if config is not None else RunConfig()
        self._touched: set[str] = set()
        self._alpha_linked = alpha_is_linked(self._cfg)
        self._errors: dict[str, str] = {}
        self._steps = self._cfg.training.max_steps if self._cfg.training.max_steps > 0 else MIN_STEPS
        self._machine: DeviceInfo | None = None
        self._probe_failed = False
        self._planned_gpu_gib: float | None = None
        self.events = SessionEvents()

    # -- what it holds ----------------------------------------------------------------------------
    @property
    def config(self) -> RunConfig:
        return self._cfg

    def get(self, key: str) -> Any:
        return field_value(self._cfg, key)

    @property
    def touched(self) -> frozenset[str]:
        """Keys the user (or a suggestion) set; a method switch keeps them."""
        return frozenset(self._touched)

    @property
    def alpha_linked(self) -> bool:
        return self._alpha_linked

    @property
    def errors(self) -> dict[str, str]:
        """Field -> why its last edit was refused, until that field is set successfully."""
        return dict(self._errors)

    @property
    def length_mode(self) -> LengthMode:
        return "steps" if self._cfg.training.max_steps > 0 else "epochs"

    # -- the user's edits (the rules apply) -------------------------------------------------------
    def set(self, key: str, value: Any) -> bool:
        """The user set ``key``; False (with the reason in ``errors[key]``) when the config refused it."""
        if key in ("method", "objective"):
            method, objective = (value, None) if key == "method" else (self._cfg.method, value)
            overrides = method_recipe(self._cfg, method, self._touched, alpha_linked=self._alpha_linked,
                                      objective=objective)
            return self._commit(overrides, key) if overrides else True
        self._touched.add(key)
        overrides = {key: value}
        if key == "lora.r" and self._alpha_linked:
            overrides["lora.alpha"] = linked_alpha(value)
        return self._commit(overrides, key)

    def set_alpha_linked(self, linked: bool) -> bool:
        """Link alpha to the rank (it snaps to 2 x r now) or let the user set it."""
        if linked != self._alpha_linked:
            self._alpha_linked = linked
            self.events.alpha_linked.emit(linked)
        if linked:
            return self._commit({"lora.alpha": linked_alpha(self._cfg.lora.r)}, "lora.alpha")
        return True

    def set_length_mode(self, mode: LengthMode) -> bool:
        """Train for epochs (max_steps -1), or for the last step count used."""
        return self._commit({"training.max_steps": self._steps if mode == "steps" else -1}, "training.max_steps")

    def apply_suggestion(self, overrides: dict[str, Any]) -> bool:
        """A suggestion the user clicked: its knobs count as the user's own."""
        self._touched.update(overrides)
        return self._commit(dict(overrides), next(iter(overrides), "method"))

    def load(self, cfg: RunConfig) -> None:
        """A config file: its own choices (what differs from its recipe) count as touched."""
        self._touched = touched_in(cfg)
        if self._errors:
            self._errors.clear()
            self.events.errors.emit(self.errors)
        self._install(cfg)

    # -- changes from elsewhere (no rules) --------------------------------------------------------
    def update(self, overrides: dict[str, Any]) -> None:
        """Dotted-key overrides from another pane; invalid values raise ConfigError."""
        self._install(apply_overrides(self._cfg, overrides))

    def replace(self, cfg: RunConfig) -> None:
        self._install(cfg)

    # -- the budget -------------------------------------------------------------------------------
    def set_machine(self, machine: DeviceInfo) -> None:
        self._machine = machine
        self.events.budget.emit()

    def machine_unknown(self) -> None:
        """This machine's memory could not be read: estimate without a budget until a GPU is planned."""
        self._probe_failed = True
        self.events.budget.emit()

    def plan_for(self, gpu_gib: float | None) -> None:
        """Judge against a GPU of this size (None: this machine)."""
        self._planned_gpu_gib = gpu_gib
        self.events.budget.emit()

    def budget(self, cfg: RunConfig | None = None) -> Budget | None:
        """The budget for ``cfg`` (default: the session's config); None while the machine is probed."""
        cfg = self._cfg if cfg is None else cfg
        return budget_for(cfg.training.device, self._machine, probe_failed=self._probe_failed,
                          planned_gpu_gib=self._planned_gpu_gib)

    # -- inside -----------------------------------------------------------------------------------
    def _commit(self, overrides: dict[str, Any], key: str) -> bool:
        try:
            cfg = apply_overrides(self._cfg, overrides)
        except StudioError as err:
            self._errors[key] = error_text(err)
            self.events.errors.emit(self.errors)
            return False
        self._install(cfg)
        for k in (*overrides, key):
            self._errors.pop(k, None)
        self.events.errors.emit(self.errors)
        return True

    def _install(self, cfg: RunConfig) -> None:
        old, self._cfg = self._cfg, cfg
        if cfg.training.max_steps > 0:
            self._steps = cfg.training.max_steps
        if self._alpha_linked and not alpha_is_linked(cfg):
            self._alpha_linked = False  # a file, a suggestion or another pane set alpha on its own
            self.events.alpha_linked.emit(False)
        for key in self.events:
            value = field_value(cfg, key)
            if value != field_value(old, key):
                self.events[key].emit(value)
                self.events.changed.emit(key, value)
        self.events.config.emit(cfg)
