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
    phase_bytes: dict[str, int] = field(default_factory=dict)  # each phase's estimate, same scale (PhaseMeter's)
    info: object = field(repr=False, default=None)  # ModelInfo, kept for the OOM suggestions


def estimate_run(cfg: RunConfig, device: str, row_lengths: list[int] | None = None,
                 start_rss: int = 0) -> tuple[RunEstimate | None, str]:
    """(estimate, note). ``note`` says why there is no estimate; it is empty when there is one.

    ``row_lengths`` are the token lengths of the rows the trainer batches (truncated, packed):
    the estimate is then for the widest batch of this run, not for rows at max_seq_len. The
    journaled figure is uncorrected, so runs can calibrate the estimator (memory.calibration).
    ``start_rss`` is the process's resident set when the run began (CPU): what it holds beyond the
    command line's imports at that point (a desktop window) is added, since the run shares it.
    """
    try:
        from studio.core.memory import DatasetLengths, estimate
        from studio.core.memory.constants import CPU_IMPORTS_RSS_BYTES
        from studio.core.models.device import probe_device
        from studio.core.models.introspect import inspect_model

        info = inspect_model(Path(cfg.model.path), trust_remote_code=cfg.model.trust_remote_code,
                             allow_pickle=cfg.model.allow_pickle)
        kind = "cuda" if device == "cuda" else "cpu"
        lengths = DatasetLengths(tuple(row_lengths), final=True) if row_lengths else None
        est = estimate(info, cfg, device_kind=kind, lengths=lengths)
        # CUDA: the measurement counts tensors only, so the context comes out. CPU: the measurement is
        # the whole process, so a process holding more than the command line's imports adds that.
        shift = -est.overhead_parts.get("cuda_context", 0) if kind == "cuda" else max(0, start_rss - CPU_IMPORTS_RSS_BYTES)
        budget = probe_device().memory_bytes
        phases = {name: int(total + shift) for name, total in est.phases.items()}
        return RunEstimate(peak_bytes=int(est.total_bytes + shift), budget_bytes=int(budget),
                           phase_bytes=phases, info=info), ""
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


class PhaseMeter:
    """Measured peak of each phase of a training step, to set beside the estimate's phases.

    The estimator predicts three moments (memory.constants.PHASES): the end of the forward pass,
    the backward pass, the optimizer step. The meter keeps the largest figure each phase reached
    over the run, so a run journals estimate vs measured per phase and a wrong term shows in the
    phase it belongs to. With gradient accumulation only the first micro-batch's forward counts as
    "forward_end"; the later micro-batches fall in "backward".

    CUDA: the allocator's peak counter is reset where a phase begins and read where it ends (exact).
    CPU: the kernel's high-water mark cannot be reset per phase without losing the whole process's
    peak that ``/usr/bin/time`` and ``getrusage`` report (they read the same mark), so a thread
    samples the resident set every ``interval`` seconds and at every phase boundary; a phase's
    figure is then a lower bound of its true peak (a spike shorter than the interval can be missed),
    and the run's peak stays the exact high-water mark.
    """

    def __init__(self, device: str, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.peaks: dict[str, int] = {}
        self.overall = 0
        self._phase: str | None = None
        self._thread = None
        self._done = None

    # -- phase boundaries (trainer callbacks and a forward hook) ---------------------------------
    def step_begin(self) -> None:
        if self.device == "cuda":
            self.overall = max(self.overall, measured_bytes(self.device))
            reset_peak(self.device)
        else:
            self._start_sampling()
        self._phase = "forward_end"

    def forward_end(self, module, args, output) -> None:
        """A forward hook on the trained model; evaluation forwards (eval mode) are not steps."""
        if self._phase == "forward_end" and module.training:
            self._close("forward_end", "backward")

    def backward_end(self) -> None:
        self._close("backward", "optimizer")

    def optimizer_end(self) -> None:
        self._close("optimizer", None)

    def _close(self, phase: str, following: str | None) -> None:
        if self.device == "cuda":
            got = measured_bytes(self.device)
            self.overall = max(self.overall, got)
            reset_peak(self.device)
        else:
            got = current_rss_bytes()
        self.peaks[phase] = max(self.peaks.get(phase, 0), got)
        self._phase = following

    # -- CPU sampling ------------------------------------------------------------------------------
    def _start_sampling(self) -> None:
        if self._thread is not None:
            return
        import threading

        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="phase-meter", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._done.wait(self.interval):
            phase = self._phase
            if phase is not None:
                got = current_rss_bytes()
                if got > self.peaks.get(phase, 0):
                    self.peaks[phase] = got

    def close(self) -> None:
        """Stop sampling (training is over; evaluation and saving are not phases of a step)."""
        self._phase = None
        if self._thread is not None:
            self._done.set()
            self._thread.join(timeout=1.0)
            self._thread = None

    def peak(self) -> int:
        """The run's peak so far: the high-water mark, or a sample above it (the kernel's per-CPU RSS
        counters make the mark lag a sample by a few hundred KiB)."""
        self.overall = max(self.overall, measured_bytes(self.device), *self.peaks.values())
        return self.overall


def current_rss_bytes() -> int:
    """The process's resident set now (not its peak): /proc/self/statm, else psutil."""
    try:
        import os

        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        return int(psutil.Process().memory_info().rss)


PHASE_LABELS = {"forward_end": "forward", "backward": "backward", "optimizer": "optimizer step"}


def phase_summary(estimated: dict[str, int], measured: dict[str, int]) -> str:
    """One line, estimate beside measurement for each phase of a step, so a user (and whoever tunes
    the estimator) sees which phase the estimate misses; empty when nothing was measured."""
    parts = []
    for phase, label in PHASE_LABELS.items():
        got = measured.get(phase)
        if not got:
            continue
        est = estimated.get(phase)
        if est:
            err = round(100 * (est - got) / got)
            parts.append(f"{label} {format_bytes_in(est)} → {format_bytes_in(got)} ({f'{err:+d}' if err else '±0'} %)")
        else:
            parts.append(f"{label} {format_bytes_in(got)}")
    if not parts:
        return ""
    head = "memory by phase, estimated → measured: " if estimated else "memory by phase: "
    return head + " · ".join(parts)


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
