"""The memory estimate against the real run on a CUDA GPU: one script, run whenever a GPU is at hand.

Run: ``.venv/bin/python tests/benchmarks/gpu_check.py`` (about 8 minutes on one H100/H200), then
commit tests/benchmarks/memory_results_cuda.md with the GPU's name and the date it writes.
``--dry-run`` runs the same path on CPU with one tiny model and one step (the test suite does, so
the script cannot rot); it writes its table to ``--out`` and claims nothing about a GPU.

Each row is the real engine (``studio train CONFIG`` in its own process, bf16 on CUDA) on random
weights built from a config: the bench_memory grid's shapes (SmolLM2-135M-, Gemma-3-270M- and
Qwen2-0.5B-shaped) plus 1-8B-shaped models. The measured figure is the engine's journaled peak,
``torch.cuda.max_memory_allocated`` since the run began; the estimate is compared on the same
scale (the CUDA context, which max_memory_allocated does not see, is left out of both).
Datasets: the bench's mixed-length chat set and the demo data, counted by the dataset check.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

import bench_memory as bm  # noqa: E402  (the models, datasets and estimate of the CPU grid)

LLAMA = dict(model_type="llama", architectures=["LlamaForCausalLM"], max_position_embeddings=8192,
             tie_word_embeddings=False)
SHAPES = {
    "S": dict(LLAMA, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
              num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True),
    **bm.SHAPES,
    "L1B": dict(LLAMA, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    "Q3B": dict(bm.SHAPES["Q"], hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                num_attention_heads=16, num_key_value_heads=2),
    "L8B": dict(LLAMA, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256),
}
TINY = dict(LLAMA, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=49152, max_position_embeddings=1024)

# name: (model, dataset, method, max_seq_len, batch, grad checkpointing, packing)
GRID = {
    "S-lora-mixed": ("S", "mixed", "lora", 1024, 8, False, False),
    "S-full-mixed": ("S", "mixed", "full", 1024, 8, False, False),
    "S-qlora-demo-pack": ("S", "demo", "qlora", 512, 8, False, True),
    "G-lora-mixed-gc": ("G", "mixed", "lora", 1024, 8, True, False),
    "G-full-demo": ("G", "demo", "full", 512, 8, False, False),
    "Q-qlora-mixed": ("Q", "mixed", "qlora", 1024, 8, False, False),
    "Q-full-mixed-gc": ("Q", "mixed", "full", 1024, 4, True, False),
    "L1B-lora-mixed": ("L1B", "mixed", "lora", 1024, 4, False, False),
    "Q3B-qlora-mixed-gc": ("Q3B", "mixed", "qlora", 1024, 4, True, False),
    "L8B-qlora-mixed-gc": ("L8B", "mixed", "qlora", 1024, 2, True, False),
    "L8B-lora-demo-pack": ("L8B", "demo", "lora", 512, 4, False, True),
}
DRY_GRID = {"tiny-lora-mixed": ("T", "mixed", "lora", 128, 2, False, False)}


def build_model(folder: Path, shape: dict, tokenizer_dir: Path) -> Path:
    """A random-weight model from ``shape``, written in bf16 with the bundled model's tokenizer."""
    if (folder / "config.json").exists():
        return folder
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.for_model(**{k: v for k, v in shape.items() if k != "architectures"})
    cfg.architectures = shape["architectures"]
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    tmp = folder.with_name(".tmp-" + folder.name)
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    del model
    for f in tokenizer_dir.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("chat_template.jinja", "special_tokens_map.json"):
            shutil.copy(f, tmp / f.name)
    tmp.rename(folder)
    return folder


def run_grid(work: Path, grid: dict, shapes: dict, device: str, steps: int,
             tokenizer_dir: Path | None = None) -> list[dict]:
    if tokenizer_dir is None:  # the bundled model's tokenizer, converted like the first launch does
        env = {**os.environ, "STUDIO_HOME": str(work / "home")}
        small = subprocess.run([sys.executable, "-c", "from studio.core.models.store import ensure_default_model as e;"
                                " print(e())"], env=env, cwd=bm.ROOT, check=True, capture_output=True, text=True)
        tokenizer_dir = Path(small.stdout.strip().splitlines()[-1])
    data = {"demo": bm.ROOT / "resources" / "datasets" / "demo_train.jsonl", "mixed": work / "mixed.jsonl"}
    if not data["mixed"].exists():
        bm.mixed_dataset(data["mixed"])
    from studio.core.config import RunConfig, apply_overrides
    from studio.core.memory import count_lengths, estimate
    from studio.core.models.introspect import inspect_model

    rows = []
    for name, (model, dataset, method, seq, batch, gc, pack) in grid.items():
        folder = build_model(work / f"model-{model}", shapes[model], tokenizer_dir)
        cfg = apply_overrides(RunConfig(name=name), {
            "method": method, "model.path": str(folder), "dataset.train": [str(data[dataset])],
            "dataset.eval_ratio": 0.0, "training.max_seq_len": seq, "training.batch_size": batch,
            "training.grad_checkpointing": gc, "training.packing": pack, "training.max_steps": steps,
            "training.eval_steps": 0, "training.save_steps": 0, "training.device": device,
            "quant.compute_dtype": "bfloat16",
        })
        config = work / f"{name}.yaml"
        cfg.save(config)
        row = bm.measure(work, name, config)
        est = estimate(inspect_model(folder), cfg, device_kind="cuda" if device == "cuda" else "cpu",
                       lengths=count_lengths(cfg))
        context = est.overhead_parts.get("cuda_context", 0)
        row.update(name=name, method=method, seq=seq, batch=batch, gc=gc, pack=pack,
                   estimate=est.total_bytes - context, widest=f"{est.batch_rows}×{est.batch_tokens}")
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "error"}), flush=True)
    return rows


def write_table(out: Path, rows: list[dict], device_name: str, dry: bool) -> float:
    scale = ("process peak RSS (dry run on CPU: checks the script, measures no GPU)" if dry
             else "torch.cuda.max_memory_allocated since the run began (journaled by the engine)")
    lines = [f"# Memory estimate vs measured peak ({'dry run' if dry else 'CUDA'})", "",
             f"Device: {device_name}. Date: {dt.date.today().isoformat()}. "
             "Command: `.venv/bin/python tests/benchmarks/gpu_check.py`.",
             f"Measured: {scale}. The estimate leaves the CUDA context out, to be on the same scale.", "",
             "| config | method | seq | batch | ckpt | pack | widest batch | measured MiB | estimate MiB | error |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    worst = 0.0
    for r in rows:
        measured = r["engine_peak"]
        if r.get("rc") or not measured:
            lines.append(f"| {r['name']} | {r['method']} | {r['seq']} | {r['batch']} | {int(r['gc'])} | "
                         f"{int(r['pack'])} | {r['widest']} | failed (exit {r.get('rc')}) | | |")
            continue
        err = 100.0 * (r["estimate"] - measured) / measured
        worst = max(worst, abs(err))
        lines.append(f"| {r['name']} | {r['method']} | {r['seq']} | {r['batch']} | {int(r['gc'])} | {int(r['pack'])} "
                     f"| {r['widest']} | {measured / 2**20:,.0f} | {r['estimate'] / 2**20:,.0f} | {err:+.1f} % |")
    lines += ["", f"Worst error: {worst:.1f} % (goal: within 10 %).", ""]
    out.write_text("\n".join(lines), encoding="utf-8")
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="one tiny model, one step, on CPU (no GPU needed)")
    ap.add_argument("--out", type=Path, help="table to write (default: memory_results_cuda.md here)")
    ap.add_argument("--tokenizer", type=Path, help="tokenizer folder to use (default: the bundled model's)")
    ap.add_argument("--work", type=Path, help="folder for models, configs and runs (default: a temporary one)")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.dry_run:
        rows = run_grid(work, DRY_GRID, {"T": TINY}, "cpu", steps=1, tokenizer_dir=args.tokenizer)
        device_name = "CPU (dry run)"
    else:
        import torch

        if not torch.cuda.is_available():
            print("No CUDA GPU here; use --dry-run to check the script on CPU.", file=sys.stderr)
            return 2
        device_name = torch.cuda.get_device_name(0)
        rows = run_grid(work, GRID, SHAPES, "cuda", steps=3, tokenizer_dir=args.tokenizer)
    out = args.out or HERE / ("memory_results_dry_run.md" if args.dry_run else "memory_results_cuda.md")
    worst = write_table(out, rows, device_name, args.dry_run)
    print(out.read_text())
    failed = any(r.get("rc") for r in rows)
    return 1 if failed or (not args.dry_run and worst > 10.0) else 0


if __name__ == "__main__":
    raise SystemExit(main())
