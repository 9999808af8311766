"""Where a model runs and in what dtype: one probe of this machine, one device choice, one dtype rule.

Training, the playground, the merge and the memory estimate each used to pick these their own way,
and the probe's answer came back as text that one caller decorated and another undecorated. The
probe now returns facts (``DeviceInfo``); each screen formats them as it shows them.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Any

from studio.core.errors import StudioError

DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
          "f16": "float16", "fp32": "float32", "float32": "float32"}
SHORT_DTYPE = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}


@dataclass(frozen=True)
class DeviceInfo:
    """This machine as the studio uses it: the first CUDA GPU when there is one, else the CPU."""

    kind: str  # "cuda" | "cpu"
    name: str  # the GPU's name, or the CPU's model name
    memory_bytes: int  # what a run can fill: the GPU's memory, or the system RAM on CPU
    ram_bytes: int  # system RAM, either way
    threads: int  # logical CPU threads


def _cpu_name() -> str:
    name = platform.processor() or platform.machine() or "CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            name = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), name)
    except OSError:
        pass
    return name


def probe_device() -> DeviceInfo:
    """Read this machine (imports torch: call it off the UI thread)."""
    import psutil
    import torch

    ram = int(psutil.virtual_memory().total)
    threads = int(psutil.cpu_count(logical=True) or 1)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return DeviceInfo("cuda", str(props.name), int(props.total_memory), ram, threads)
    return DeviceInfo("cpu", _cpu_name(), ram, ram, threads)


def pick_device(want: str | None = "auto") -> str:
    """"cuda" when asked for or when ``auto`` finds a GPU, else "cpu"; an explicit device name
    (``cuda:1``) is kept as given."""
    if want and want not in ("auto", "cuda"):
        return want
    import torch

    if want == "cuda" and not torch.cuda.is_available():
        raise StudioError("CUDA was requested but no CUDA GPU is visible. Set device to auto or cpu.")
    return "cuda" if torch.cuda.is_available() else "cpu"


def normalise_dtype(dtype: str) -> str:
    """The torch name of a dtype the user may spell bf16, fp16 or fp32."""
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise StudioError(f"Unknown dtype '{dtype}'; choose bf16, fp16 or fp32.") from None


def gpu_has_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def resolve_dtype(want: str, device: str, *, bf16: bool | None = None) -> str:
    """The dtype weights are loaded in. ``auto``: fp32 on CPU (bf16 matmuls are slower there on most
    CPUs); bf16 on a GPU, fp16 on one without bf16 (pre-Ampere). ``bf16`` says whether the GPU has
    it; None asks this machine's (the memory estimate passes True: it plans for a GPU, not this one)."""
    if want != "auto":
        return normalise_dtype(want)
    if not device.startswith("cuda"):
        return "float32"
    if bf16 is None:
        bf16 = gpu_has_bf16()
    return "bfloat16" if bf16 else "float16"


def torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, normalise_dtype(name))
