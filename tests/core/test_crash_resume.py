"""kill -9 in the middle of a headless run: the journal survives, the run is interrupted, resume continues."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from studio.core.training import runs


def test_kill9_then_resume_continues_the_curve(tiny_model_dir, demo_train, tmp_path):
    run_dir = tmp_path / "run"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "training:\n  max_steps: 40\n  save_steps: 3\n  eval_steps: 0\n  lr: 0.001\n  logging_steps: 1\n"
        "dataset:\n  eval_ratio: 0.0\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    studio = str(Path(sys.executable).with_name("studio"))
    cmd = [studio, "train", str(cfg), "--model", str(tiny_model_dir), "--dataset", str(demo_train),
           "--batch", "2", "--seq", "96", "--out", str(run_dir), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    deadline = time.time() + 180
    for line in proc.stdout:
        ev = json.loads(line)
        if ev["type"] == "step" and ev["step"] >= 7:
            break
        assert time.time() < deadline
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    summary = runs.summarize(run_dir)
    assert summary.status == "interrupted"
    assert summary.resumable
    ckpt = runs.last_checkpoint(run_dir)
    resumed_at = int(ckpt.name.split("-")[1])
    assert resumed_at >= 6 and resumed_at % 3 == 0
    before = [e.step for e in runs.read_events(run_dir) if e.kind == "step"]
    assert before[:7] == list(range(1, 8))  # every step up to the kill is on disk

    out = subprocess.run([studio, "train", "--resume", str(run_dir), "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    events = [json.loads(line) for line in out.stdout.splitlines()]
    started = next(e for e in events if e["type"] == "run_started")
    assert started["resumed_from_step"] == resumed_at
    first_new = next(e for e in events if e["type"] == "step")
    assert first_new["step"] == resumed_at + 1
    summary = runs.summarize(run_dir)
    assert summary.status == "completed" and summary.step == 40
    curve = [e.step for e in runs.effective_events(runs.read_events(run_dir)) if e.kind == "step"]
    assert curve == list(range(1, 41))
