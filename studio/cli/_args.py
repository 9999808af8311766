"""Shared argument plumbing for the verbs: numbers checked where they are typed, and flags that set
run-config fields reported under the flag's own name.

A number flag that is not a run-config field is checked by its ``type=`` here, so argparse answers
``argument --max-len: must be at least 8, got 0`` (exit 2) before any work starts. A flag that sets a
config field is checked by the config's own rules (one place for the bounds), and ``config_labels``
lets the error name ``--lr`` rather than ``training.lr``.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def number(kind: type, *, min: float | None = None, max: float | None = None,
           above: float | None = None, below: float | None = None) -> Callable[[str], Any]:
    """An argparse ``type=`` for an int or float within bounds (``min``/``max`` inclusive,
    ``above``/``below`` exclusive); inf and nan are refused for floats."""
    word = "a whole number" if kind is int else "a number"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {word}, got '{text}'") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got '{text}'")
        if min is not None and value < min:
            raise argparse.ArgumentTypeError(f"must be at least {min:g}, got {text}")
        if max is not None and value > max:
            raise argparse.ArgumentTypeError(f"must be at most {max:g}, got {text}")
        if above is not None and value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {text}")
        if below is not None and value >= below:
            raise argparse.ArgumentTypeError(f"must be less than {below:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def config_overrides(args: argparse.Namespace, flags: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(dotted-key overrides, dotted key -> flag) for ``flags`` = {"--lr": "training.lr", …};
    flags the user did not give are left out."""
    overrides: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for flag, key in flags.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"))
        labels[key] = flag
        if value is not None:
            overrides[key] = value
    return overrides, labels


# ``--method`` of `studio train` and `studio estimate`: how the weights change (lora, qlora, full) or,
# for dpo / orpo, what the run optimises (the objective), which keeps the config's lora or qlora.
METHOD_CHOICES = ["lora", "qlora", "full", "dpo", "orpo"]
PREFERENCE_METHODS = ("dpo", "orpo")


def method_as_objective(overrides: dict[str, Any], labels: dict[str, str]) -> None:
    """Move a ``--method dpo|orpo`` override to ``objective`` (in place), so both verbs read the flag alike
    and a bad combination (dpo on full) is reported against ``--method``."""
    if overrides.get("method") in PREFERENCE_METHODS:
        overrides["objective"] = overrides.pop("method")
        labels["objective"] = labels.pop("method", "--method")


def _explicit_path(arg: str) -> bool:
    """``./x``, ``../x``, ``~/x``, ``/x`` or ``a/b``: the user spelled a path, not a library name."""
    return arg.startswith((".", "~")) or "/" in arg or os.sep in arg or Path(arg).is_absolute()


def find_adapter(arg: str):
    """The adapter the user meant by ``arg``: a folder (holding adapter_config.json, or adapter/ with
    it), or a library entry (name, id, or id prefix) — as a Path or a LibraryEntry.

    A bare name that is both a folder in the current directory and a library entry is refused rather
    than guessed: using the wrong adapter would look like success. A path spelled as a path
    (``./name``) always means the folder; the entry's id always means the entry.
    """
    from studio.core.errors import StudioError
    from studio.core.library.adapter_files import ADAPTER_CONFIG
    from studio.core.library.registry import ADAPTER_SUBDIR, get_entry

    path = Path(arg).expanduser()
    folder: Path | None = None
    if path.is_dir():
        if (path / ADAPTER_CONFIG).is_file():
            folder = path
        elif (path / ADAPTER_SUBDIR / ADAPTER_CONFIG).is_file():
            folder = path / ADAPTER_SUBDIR
        else:
            from studio.core.library.full_model import is_model_folder

            for candidate in (path, path / "model"):  # a full fine-tune's model folder, or its run folder
                if is_model_folder(candidate):
                    folder = candidate
                    break
    elif path.exists():
        raise StudioError("This is a file; give the adapter's folder (the one with adapter_config.json).", path=path)
    entry = None
    if not _explicit_path(arg):
        try:
            entry = get_entry(arg)
        except StudioError:
            entry = None
    if folder is not None and entry is not None and folder.resolve() != entry.files_dir.resolve():
        raise StudioError(
            f"'{arg}' is both a folder here ({path.resolve()}) and a library entry ('{entry.name}', id {entry.id}). "
            f"Write ./{arg} for the folder, or the entry's id {entry.id} for the library entry."
        )
    if entry is not None:
        return entry
    if folder is not None:
        return folder
    if path.is_dir():
        raise StudioError(f"This folder holds no adapter ({ADAPTER_CONFIG}).", path=path)
    raise StudioError(
        f"'{arg}' is neither an adapter folder nor a library entry. `studio library list` shows the library."
    )
