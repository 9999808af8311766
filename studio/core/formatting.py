"""How sizes, durations and counts read, in the window and on the command line alike.

One module so a figure the CLI prints reads the same as the one the window shows, and a change of
style happens once. Precision is the caller's choice (a narrow table column shows one decimal, an
estimate two), the rules are not: binary units (KiB, MiB, GiB), a space before every unit, clock
style for running times.
"""

from __future__ import annotations

KiB = 1024
MiB = 1024**2
GiB = 1024**3

_BYTE_UNITS = {"GiB": GiB, "MiB": MiB, "KiB": KiB}


def format_bytes(n: float, digits: int = 2) -> str:
    """``n`` bytes in the largest binary unit it reaches: "2.07 GiB", "1.50 MiB", "12 B".

    Estimates and budgets use two decimals (the README's "peak 2.07 GiB"); the Library's size
    columns pass ``digits=1`` ("9.5 MiB") to stay narrow.
    """
    n = float(n)
    for unit, size in _BYTE_UNITS.items():
        if abs(n) >= size:
            return f"{n / size:.{digits}f} {unit}"
    return f"{int(n)} B"


def format_bytes_in(n: float, unit: str = "GiB", digits: int = 2) -> str:
    """``n`` bytes in one fixed ``unit`` whatever its size: "0.52 GiB".

    For readings compared with each other (memory along a run, the runs table's peaks, a disk's
    need against its free space): a unit that changed from row to row would hide which is larger.
    """
    return f"{n / _BYTE_UNITS[unit]:.{digits}f} {unit}"


def format_duration(seconds: float) -> str:
    """A running time as a clock reads: "7:05", or "1:02:03" past the hour; never negative."""
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_seconds(seconds: float, digits: int = 1) -> str:
    """A short span in seconds with its unit: "1.3 s" (loading a model, the first token)."""
    return f"{seconds:.{digits}f} s"


def format_count(n: int) -> str:
    """Parameter counts the way model cards write them: 135 M, 70.6 B, 2.44 M."""
    n = int(n)
    for div, unit in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            val = n / div
            digits = 0 if val >= 100 else 1 if val >= 10 else 2
            return f"{val:.{digits}f} {unit}"
    return str(n)


METHOD_LABELS = {"lora": "LoRA", "qlora": "QLoRA", "full": "Full fine-tune"}


def method_label(method: str) -> str:
    """How a method is written for people: LoRA and QLoRA as their papers spell them (not LORA)."""
    return METHOD_LABELS.get(method, method or "—")


def run_method_label(method: str, objective: str = "sft") -> str:
    """A run's method with its objective when that is not plain supervised training: "DPO on LoRA"."""
    label = method_label(method)
    return label if objective in ("", "sft") else f"{objective.upper()} on {label}"


def rewards_text(rewards: dict[str, float]) -> str:
    """A preference eval in a line: how often the chosen answer wins, and by how much."""
    parts = []
    if "accuracy" in rewards:
        parts.append(f"preference accuracy {rewards['accuracy']:.0%}")
    if "margin" in rewards:
        parts.append(f"reward margin {rewards['margin']:+.3f}")
    if "chosen" in rewards and "rejected" in rewards:
        parts.append(f"(chosen {rewards['chosen']:+.3f}, rejected {rewards['rejected']:+.3f})")
    return "  ".join(parts)
