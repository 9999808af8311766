"""tests/benchmarks/gpu_check.py runs end to end on CPU (--dry-run), so the GPU script cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_dry_run_writes_its_table(tmp_path, smol_tokenizer_dir):
    out = tmp_path / "table.md"
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "benchmarks" / "gpu_check.py"), "--dry-run",
                           "--out", str(out), "--work", str(tmp_path / "work"),
                           "--tokenizer", str(smol_tokenizer_dir)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-2000:]
    rows = [ln for ln in out.read_text().splitlines() if ln.startswith("| tiny-lora-mixed")]
    assert len(rows) == 1 and "failed" not in rows[0]
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    measured, estimated = (float(c.replace(",", "")) for c in cells[7:9])
    assert measured > 0 and estimated > 0
    assert cells[9].endswith("%")
