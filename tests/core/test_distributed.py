"""The headless command under a 2-process CPU launcher (gloo): both ranks finish, one adapter, one journal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_process_training_saves_one_adapter(tiny_model_dir, demo_train, tmp_path):
    run_dir = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "--master_port", "29533", "-m", "studio", "train",
         "--model", str(tiny_model_dir), "--dataset", str(demo_train), "--max-steps", "3", "--batch", "2",
         "--seq", "96", "--out", str(run_dir), "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert sum(e["type"] == "run_started" for e in events) == 1
    finished = [e for e in events if e["type"] == "run_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "completed" and finished[0]["step"] == 3
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    results = [json.loads(line) for line in proc.stdout.splitlines() if '"type": "result"' in line]
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["status"] == "completed" and r["step"] == 3 for r in results)
