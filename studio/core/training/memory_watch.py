"""Training memory, estimated before the run and measured during it, on one scale.

The estimate comes from the meta-device estimator (:mod:`studio.core.memory`) and is journaled in
``run_started``; each ``step`` carries the measured figure, so the Train pane can draw both and an
out-of-memory message can say how far reality was from the plan. Estimation is advisory: any
failure here returns no estimate and a note, never an exception that would stop a run.

Scales: on CUDA the measurement is ``torch.cuda.max_memory_allocated`` (tensors only), so the CUDA
context the estimator adds is taken back out; on CPU both are the process's resident set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from studio.core.config import RunConfig
from studio.core.formatting import format_bytes_in


@dataclass(frozen=True)
class RunEstimate:
    peak_bytes: int  # comparable with measured_bytes() on the same device
    budget_bytes: int  # the device's memory (GPU total, or system RAM)
    info: object = field(repr=False, default=None)  # ModelInfo, kept for the OOM suggestions


def estimate_run(cfg: RunConfig, device: str, row_lengths: list[int] | None = None) -> tuple[RunEstimate | None, str]:
    """(estimate, note). ``note`` says why there is no estimate; it is empty when there is one.

    ``row_lengths`` are the token lengths of the rows the trainer batches (truncated, packed):
    the estimate is then for the widest batch of this run, not for rows at max_seq_len. The
    journaled figure is uncorrected, so runs can calibrate the estimator (memory.calibration).
    """
    try:
        from studio.core.memory import DatasetLengths, estimate
        from studio.core.models.device import probe_device
        from studio.core.models.introspect import inspect_model

        info = inspect_model(Path(cfg.model.path), trust_remote_code=cfg.model.trust_remote_code,
                             allow_pickle=cfg.model.allow_pickle)
        kind = "cuda" if device == "cuda" else "cpu"
        lengths = DatasetLengths(tuple(row_lengths), final=True) if row_lengths else None
        est = estimate(info, cfg, device_kind=kind, lengths=lengths)
        peak = est.total_bytes - est.overhead_parts.get("cuda_context", 0)
        budget = probe_device().memory_bytes
        return RunEstimate(peak_bytes=int(peak), budget_bytes=int(budget), info=info), ""
    except Exception as err:  # advisory only: a model the estimator cannot read still trains
        return None, f"No memory estimate for this model ({type(err).__name__}: {err}); training goes on without it."


def reset_peak(device: str) -> None:
    """Start the peak counter at this run, not at an earlier run in the same process.

    On CPU the kernel's resident-set high-water mark (VmHWM) is reset by writing 5 to
    /proc/self/clear_refs (Linux 4.0+); where that is not possible the mark covers the process's life.
    """
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
        return
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def measured_bytes(device: str) -> int:
    """Peak since reset_peak: allocated CUDA memory, or the process's resident set on CPU.

    A peak, not a sample: the largest batch's backward lasts a fraction of a step, and a sample
    taken when the step is logged would miss it (the estimate is a peak too).
    """
    if device == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated())
    peak = _status_bytes("VmHWM")
    if peak:
        return peak
    import psutil

    return int(psutil.Process().memory_info().rss)


def _status_bytes(field_name: str) -> int:
    """A ``kB`` field of /proc/self/status in bytes; 0 where there is no such file (not Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def oom_message(cfg: RunConfig, device: str, est: RunEstimate | None, measured: int, step: int) -> str:
    """What ran out, how it compares with the estimate, and the estimator's ways to fit."""
    where = "GPU memory" if device == "cuda" else "memory"
    head = f"Out of {where} at step {step}: measured peak {format_bytes_in(measured)}"
    if est is None:
        return (head + ". Lower the batch size or sequence length, turn on gradient checkpointing, or switch "
                "to QLoRA (the Configure pane shows what fits).")
    head += f", estimated peak {format_bytes_in(est.peak_bytes)} for this configuration; the device has {format_bytes_in(est.budget_bytes)}."
    tips: list[str] = []
    try:
        from studio.core.memory import suggestions

        kind = "cuda" if device == "cuda" else "cpu"
        found = suggestions(est.info, cfg, est.budget_bytes, device_kind=kind)
        tips = [f"{s.text} (estimate {format_bytes_in(s.estimate.total_bytes)})" for s in found
                if s.kind not in ("batch_size", "max_seq_len") or s.fits][:3]
    except Exception:  # suggestions are a courtesy; the measured-vs-estimated line still helps
        tips = []
    if not tips:
        tips = ["Lower the batch size or sequence length, or turn on gradient checkpointing."]
    return head + " Try: " + " ".join(tips)
