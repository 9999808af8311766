"""This machine's memory, and sizes as the GUI and CLI show them."""

from __future__ import annotations

from studio.core.memory.constants import GiB, KiB, MiB

# The machine


def device_memory() -> tuple[str, str, int]:
    """(kind, name, bytes): the first CUDA GPU's total memory, else this machine's RAM."""
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return "cuda", str(props.name), int(props.total_memory)
    import platform

    import psutil

    name = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    return "cpu", f"{name} (system RAM)", int(psutil.virtual_memory().total)


def format_bytes(n: float) -> str:
    """Human size in binary units, as the GUI and CLI show it."""
    n = float(n)
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"
