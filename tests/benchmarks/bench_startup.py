"""Time from launching ``studio`` to its window being visible, against an empty Qt window.

    .venv/bin/python tests/benchmarks/bench_startup.py [--runs 7]

Each launch is a fresh process with a fresh STUDIO_HOME. The app prints ``window-visible`` once
``show()`` has been processed (STUDIO_PRINT_STARTUP=1) and quits; we time spawn → that line. The
baseline is a bare PySide6 QMainWindow in the same interpreter, so the ratio shows what the studio
adds on top of Qt itself. Uses the offscreen platform unless DISPLAY is set.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BASELINE = (
    "from PySide6.QtWidgets import QApplication, QMainWindow\n"
    "app = QApplication([]); w = QMainWindow(); w.setWindowTitle('x'); w.show(); app.processEvents()\n"
    "print('window-visible', flush=True)\n"
)


def time_launch(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("window-visible"):
            elapsed = time.perf_counter() - t0
            break
    else:
        raise RuntimeError(f"{cmd} never showed a window")
    proc.wait(timeout=30)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    env = dict(os.environ, STUDIO_PRINT_STARTUP="1")
    if not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    studio = [str(Path(sys.executable).with_name("studio"))]
    baseline = [sys.executable, "-c", BASELINE]
    rows = []
    for name, cmd in (("empty Qt window (baseline)", baseline), ("studio", studio)):
        times = []
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as home:
                times.append(time_launch(cmd, dict(env, STUDIO_HOME=home)))
        rows.append((name, statistics.median(times), min(times), max(times)))
    base = rows[0][1]
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"platform {env.get('QT_QPA_PLATFORM', 'xcb')}; {args.runs} launches each\n")
    print("| launch | median s | min s | max s | ratio to baseline |")
    print("|---|---|---|---|---|")
    for name, med, lo, hi in rows:
        print(f"| {name} | {med:.2f} | {lo:.2f} | {hi:.2f} | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
