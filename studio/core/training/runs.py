"""The run journal: every run is a folder that outlives the process that made it.

``events.jsonl`` is appended (and flushed to disk) before any UI sees an event, so a crash, a
``kill -9`` or a closed window loses at most the step in flight. A run with no ``run_finished``
event and no live owner process is *interrupted* and can be resumed from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core import paths
from studio.core.errors import StudioError
from studio.core.training import checkpoints
from studio.core.training.events import Event, RunFinished, event_from_dict

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.yaml"
LOCK_FILE = "owner.pid"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"


_SPLIT_SUFFIX = re.compile(r"[._ -]+(train|training)$", re.IGNORECASE)


def run_name(name: str, train_files: list[str], model_path: str = "") -> str:
    """The name a run (and its library entry) goes by: the one the user gave, else its dataset's.

    A run is recognised by what it learned from, so ``support_train.jsonl`` gives "support"; the
    model's folder name is the last resort (a config without a dataset fails later anyway).
    """
    if str(name).strip():
        return str(name).strip()
    if train_files:
        stem = Path(str(train_files[0])).stem
        stem = _SPLIT_SUFFIX.sub("", stem) or stem
        if stem:
            return stem
    return Path(model_path).name or "run"


def new_run_dir(name: str, root: Path | None = None) -> Path:
    root = root or paths.runs_dir()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")[:60] or "run"
    run_dir = root / f"{stamp}-{slug}"
    n = 1
    while run_dir.exists():
        n += 1
        run_dir = root / f"{stamp}-{slug}-{n}"
    run_dir.mkdir(parents=True)
    return run_dir


class Journal:
    """Append-only events file; one JSON object per line, fsynced so a crash keeps every finished step."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / EVENTS_FILE
        _mend_torn_tail(self.path)
        # Unbuffered: a write that fails must not stay in a buffer that a later flush or close
        # would put on disk after the cut below.
        self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the run

    def append(self, event: Event) -> None:
        """Add one whole line or nothing: a write the disk refuses part-way (full, quota) is cut
        back off, so the next event does not glue onto a fragment and the journal stays readable."""
        data = (json.dumps(event.to_dict(), allow_nan=True) + "\n").encode("utf-8")
        fd = self._fh.fileno()
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise

    def close(self) -> None:
        self._fh.close()


def _mend_torn_tail(path: Path) -> None:
    """A kill mid-append leaves a last line without its newline; appending to it would glue the next
    event on and leave a bad line in the middle of the journal for good. A tail that is a whole event
    only gets its newline; a fragment (it never parsed, nothing is lost) is cut off."""
    try:
        fh = open(path, "rb+")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    with fh:
        end = fh.seek(0, os.SEEK_END)
        if end == 0:
            return
        fh.seek(end - 1)
        if fh.read(1) == b"\n":
            return
        cut, pos = 0, end
        while pos > 0:  # back to the last newline, a block at a time: journals grow long
            start = max(0, pos - 65536)
            fh.seek(start)
            i = fh.read(pos - start).rfind(b"\n")
            if i >= 0:
                cut = start + i + 1
                break
            pos = start
        fh.seek(cut)
        try:
            event_from_dict(json.loads(fh.read(end - cut)))
            fh.seek(end)
            fh.write(b"\n")
        except (ValueError, KeyError, TypeError):
            fh.truncate(cut)
        fh.flush()
        os.fsync(fh.fileno())


def read_events(run_dir: Path) -> list[Event]:
    """Events of a run; a torn last line (killed mid-write) is skipped, not fatal."""
    path = Path(run_dir) / EVENTS_FILE
    out: list[Event] = []
    if not path.exists():
        return out
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                out.append(event_from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue
    return out


def effective_events(events: list[Event]) -> list[Event]:
    """The run's history as one curve: when a resume restarts at step k, points after k that were
    journaled before the crash (and never checkpointed) are superseded by the resumed ones."""
    out: list[Event] = []
    for ev in events:
        if ev.kind == "run_started" and ev.resumed_from_step:
            k = ev.resumed_from_step
            out = [e for e in out if getattr(e, "step", 0) <= k or e.kind in ("run_started", "log", "state")]
        out.append(ev)
    return out


@dataclass(frozen=True)
class Owner:
    """The process that holds a run folder. A pid alone is not enough, since the system hands pids
    out again; pid and process start time together name one process for good."""

    pid: int
    started: float | None = None  # None in locks written before start times were recorded

    def to_text(self) -> str:
        return f"{self.pid} {self.started!r}\n"

    @staticmethod
    def parse(text: str) -> Owner | None:
        parts = text.split()
        try:
            pid = int(parts[0])
            started = float(parts[1]) if len(parts) > 1 else None
        except (IndexError, ValueError):
            return None
        return Owner(pid, started) if pid > 0 else None

    def alive(self) -> bool:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return False
            created = proc.create_time()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:  # another user's process we cannot inspect: assume it is the owner
            return True
        # A live pid that started at another time is a recycled pid, not the owner.
        return self.started is None or _same_start(created, self.started)


def _same_start(a: float, b: float) -> bool:
    return abs(a - b) < 1.0  # start times are read back from text and from clock ticks


def _this_process() -> Owner:
    import psutil

    return Owner(os.getpid(), psutil.Process().create_time())


def read_owner(run_dir: Path) -> Owner | None:
    try:
        return Owner.parse((Path(run_dir) / LOCK_FILE).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def _create_lock(lock: Path, text: str) -> bool:
    """Create ``lock`` holding ``text`` unless it exists. The lock appears whole in one step (a hard link
    to a written temp file), so a rival never reads it half-written and takes it for stale."""
    import tempfile

    from studio.core.fsutil import TMP_PREFIX

    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + LOCK_FILE + ".", dir=lock.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # readable by whoever lists the runs, like the journal beside it
        try:
            os.link(tmp, lock)
        except FileExistsError:
            return False
        except OSError:  # a file system without hard links: an exclusive create instead
            try:
                lock_fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            with os.fdopen(lock_fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        return True
    finally:
        os.unlink(tmp)


def _discard_stale(lock: Path, stale: Owner | None) -> None:
    """Move a dead owner's lock away. Two claimers may both judge it stale; the move is atomic, and a
    claimer that finds it moved a fresh lock (a rival already took over) puts that one back."""
    from studio.core.fsutil import TMP_PREFIX

    aside = lock.with_name(f"{TMP_PREFIX}{lock.name}.stale-{os.getpid()}")  # a crash here leaves only a sweepable temp
    try:
        os.replace(lock, aside)
    except FileNotFoundError:
        return
    try:
        moved = Owner.parse(aside.read_text(encoding="utf-8", errors="replace"))
        if moved != stale:
            with contextlib.suppress(FileExistsError):
                os.link(aside, lock)
    finally:
        aside.unlink(missing_ok=True)


def claim(run_dir: Path) -> None:
    """Make this process the one writer of ``run_dir``, or refuse, naming the process that holds it.

    Two runs writing one folder would interleave one journal and overwrite each other's checkpoints.
    A lock left by a dead process, or whose pid now belongs to another program, is taken over.
    """
    run_dir = Path(run_dir)
    lock = run_dir / LOCK_FILE
    me = _this_process()
    for _attempt in range(5):
        if _create_lock(lock, me.to_text()):
            return
        holder = read_owner(run_dir)
        if holder is not None and holder.alive():
            who = "this program" if holder.pid == me.pid else f"process {holder.pid}"
            raise StudioError(
                f"This run folder is in use by another training run ({who}). Wait for it to finish or stop it, "
                "or train into another folder.",
                path=run_dir,
            )
        _discard_stale(lock, holder)
    raise StudioError("Another process keeps claiming this run folder; try again in a moment.", path=run_dir)


def release(run_dir: Path) -> None:
    """Drop the claim, but only our own: a refused or late caller must not free another run's folder."""
    holder = read_owner(run_dir)
    me = _this_process()
    if holder is not None and holder.pid == me.pid and holder.started is not None and _same_start(holder.started, me.started):
        (Path(run_dir) / LOCK_FILE).unlink(missing_ok=True)


def _owner_alive(run_dir: Path) -> bool:
    holder = read_owner(run_dir)
    return holder is not None and holder.alive()


def last_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint a resume can start from; damaged or unfinished ones are passed over."""
    return checkpoints.newest_intact(Path(run_dir) / CHECKPOINTS_DIR)[0]


@dataclass
class RunSummary:
    run_dir: Path
    status: str  # running | completed | stopped | failed | interrupted
    name: str = ""
    model: str = ""
    dataset: list[str] = field(default_factory=list)
    method: str = ""
    started: float = 0.0
    step: int = 0
    total_steps: int = 0
    train_loss: float | None = None
    eval_loss: float | None = None
    best_eval_loss: float | None = None
    tokens_per_s: float = 0.0  # mean over the logged steps
    peak_memory_bytes: int = 0
    estimated_peak_bytes: int = 0
    device_kind: str = ""  # "cpu" or "cuda": the scale both peaks are on
    duration_s: float = 0.0
    trainable_params: int = 0
    adapter_path: str = ""
    reason: str = ""
    resumable: bool = False
    best_checkpoint: str = ""
    objective: str = "sft"  # sft | dpo | orpo ("preference" for an old journal whose config is gone)
    # Preference runs: the best eval after the first step by preference accuracy, then reward margin
    # (the step-0 eval is the base's, not the adapter's); what ``compare.ranked`` orders them by.
    best_eval_accuracy: float | None = None
    best_eval_margin: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["run_dir"] = str(self.run_dir)
        return d


def summarize(run_dir: Path, events: list[Event] | None = None) -> RunSummary:
    run_dir = Path(run_dir)
    events = effective_events(read_events(run_dir) if events is None else events)
    s = RunSummary(run_dir=run_dir, status="running", name=run_dir.name)
    finished: RunFinished | None = None
    last_t = 0.0
    rates: list[float] = []
    seg_start, worked = 0.0, 0.0  # time between a resume and a crash is not training time
    rewarded = False
    for ev in events:
        kind = ev.kind
        if kind == "run_started":
            if seg_start:
                worked += max(0.0, last_t - seg_start)
            seg_start = ev.t
            if not s.started:
                s.started = ev.t
            s.model, s.dataset, s.method = ev.model, list(ev.dataset), ev.method
            s.objective = ev.objective
            s.total_steps, s.trainable_params = ev.total_steps, ev.trainable_params
            s.estimated_peak_bytes = ev.estimated_peak_bytes or s.estimated_peak_bytes
            s.device_kind = "cpu" if ev.device == "cpu" else "cuda"
            finished = None
        elif kind == "step":
            s.step, s.train_loss = ev.step, ev.loss
            if ev.tokens_per_s > 0:
                rates.append(ev.tokens_per_s)
            s.peak_memory_bytes = max(s.peak_memory_bytes, ev.memory_bytes)
        elif kind == "eval":
            s.eval_loss = ev.eval_loss
            if s.best_eval_loss is None or ev.eval_loss < s.best_eval_loss:
                s.best_eval_loss = ev.eval_loss
            rewarded = rewarded or "accuracy" in ev.rewards
            if ev.step > 0 and "accuracy" in ev.rewards:
                score = (ev.rewards["accuracy"], ev.rewards.get("margin", float("-inf")))
                if s.best_eval_accuracy is None or score > (s.best_eval_accuracy, s.best_eval_margin or float("-inf")):
                    s.best_eval_accuracy, s.best_eval_margin = ev.rewards["accuracy"], ev.rewards.get("margin")
        elif kind == "run_finished":
            finished = ev
        last_t = ev.t
    if finished is not None:
        s.status, s.reason, s.adapter_path = finished.status, finished.reason, finished.adapter_path
        s.best_checkpoint = finished.best_checkpoint
        s.peak_memory_bytes = max(s.peak_memory_bytes, finished.peak_memory_bytes)
    elif not _owner_alive(run_dir):
        s.status = "interrupted"
    if rewarded and s.objective == "sft":  # journaled before RunStarted named its objective
        s.objective = _saved_objective(run_dir)
    s.tokens_per_s = sum(rates) / len(rates) if rates else 0.0
    s.duration_s = worked + (max(0.0, last_t - seg_start) if seg_start else 0.0)
    s.resumable = s.status in ("interrupted", "stopped", "failed") and last_checkpoint(run_dir) is not None
    return s


def _saved_objective(run_dir: Path) -> str:
    """The objective in the run's saved config: an older preference journal's RunStarted does not name it."""
    import yaml

    try:
        value = (yaml.safe_load((run_dir / CONFIG_FILE).read_text("utf-8")) or {}).get("objective")
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        value = None
    return value if value in ("dpo", "orpo") else "preference"


def delete_run(run_dir: Path) -> None:
    """Remove a run folder for good (a failed run that never trained, a run not worth keeping).

    Refused while a process trains in it. The folder is first renamed to a temp name, so a crash
    half-way leaves a leftover the one sweep rule removes, never a half-deleted run that still lists.
    Adapters already copied into the library are separate folders and stay.
    """
    import shutil

    from studio.core.fsutil import _temp_path

    run_dir = Path(run_dir)
    if not (run_dir / EVENTS_FILE).is_file():
        raise StudioError("This folder is not a run (it has no events.jsonl), so it was left alone.", path=run_dir)
    if _owner_alive(run_dir):
        raise StudioError("This run is still training. Stop it first, then delete it.", path=run_dir)
    aside = _temp_path(run_dir)
    try:
        os.rename(run_dir, aside)
    except OSError as err:
        raise StudioError(f"The run folder could not be removed: {err.strerror or err}.", path=run_dir) from None
    shutil.rmtree(aside, ignore_errors=True)


def list_runs(root: Path | None = None) -> list[RunSummary]:
    root = root or paths.runs_dir()
    if not root.is_dir():
        return []
    out = [summarize(d) for d in root.iterdir() if (d / EVENTS_FILE).exists()]
    return sorted(out, key=lambda s: s.started, reverse=True)
