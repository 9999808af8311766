"""The run journal: every run is a folder that outlives the process that made it.

``events.jsonl`` is appended (and flushed to disk) before any UI sees an event, so a crash, a
``kill -9`` or a closed window loses at most the step in flight. A run with no ``run_finished``
event and no live owner process is *interrupted* and can be resumed from its last checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core import paths
from studio.core.training.events import Event, RunFinished, event_from_dict

EVENTS_FILE = "events.jsonl"
CONFIG_FILE = "config.yaml"
LOCK_FILE = "owner.pid"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"


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
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the run

    def append(self, event: Event) -> None:
        self._fh.write(json.dumps(event.to_dict(), allow_nan=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


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


def claim(run_dir: Path) -> None:
    (Path(run_dir) / LOCK_FILE).write_text(str(os.getpid()))


def release(run_dir: Path) -> None:
    (Path(run_dir) / LOCK_FILE).unlink(missing_ok=True)


def _owner_alive(run_dir: Path) -> bool:
    lock = Path(run_dir) / LOCK_FILE
    try:
        pid = int(lock.read_text().strip())
    except (OSError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def last_checkpoint(run_dir: Path) -> Path | None:
    ckpt_root = Path(run_dir) / CHECKPOINTS_DIR
    if not ckpt_root.is_dir():
        return None
    done = [p for p in ckpt_root.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    if not done:
        return None
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[-1]))


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
    duration_s: float = 0.0
    trainable_params: int = 0
    adapter_path: str = ""
    reason: str = ""
    resumable: bool = False
    best_checkpoint: str = ""

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
    for ev in events:
        kind = ev.kind
        if kind == "run_started":
            if seg_start:
                worked += max(0.0, last_t - seg_start)
            seg_start = ev.t
            if not s.started:
                s.started = ev.t
            s.model, s.dataset, s.method = ev.model, list(ev.dataset), ev.method
            s.total_steps, s.trainable_params = ev.total_steps, ev.trainable_params
            s.estimated_peak_bytes = ev.estimated_peak_bytes or s.estimated_peak_bytes
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
        elif kind == "run_finished":
            finished = ev
        last_t = ev.t
    if finished is not None:
        s.status, s.reason, s.adapter_path = finished.status, finished.reason, finished.adapter_path
        s.best_checkpoint = finished.best_checkpoint
        s.peak_memory_bytes = max(s.peak_memory_bytes, finished.peak_memory_bytes)
    elif not _owner_alive(run_dir):
        s.status = "interrupted"
    s.tokens_per_s = sum(rates) / len(rates) if rates else 0.0
    s.duration_s = worked + (max(0.0, last_t - seg_start) if seg_start else 0.0)
    s.resumable = s.status in ("interrupted", "stopped", "failed") and last_checkpoint(run_dir) is not None
    return s


def list_runs(root: Path | None = None) -> list[RunSummary]:
    root = root or paths.runs_dir()
    if not root.is_dir():
        return []
    out = [summarize(d) for d in root.iterdir() if (d / EVENTS_FILE).exists()]
    return sorted(out, key=lambda s: s.started, reverse=True)
