"""DPO throughput and peak memory of the studio against plain TRL ``DPOTrainer`` + peft.

    .venv/bin/python tests/benchmarks/bench_dpo.py [--steps 8] [--batch 4] [--seq 256] [--rounds 3]

Three arms on the same model (the bundled SmolLM2-135M, converted into a scratch STUDIO_HOME once), the
same pairs (``resources/datasets/demo_pref_train.jsonl``) and the same settings: LoRA r=8, alpha 16,
dropout 0.05, all-linear; lr, cosine schedule with 3 % warmup, batch, max length, steps, seed, beta 0.1,
sigmoid loss, AdamW, gradient clipping at 1.0, fp32 on CPU, no eval set, no checkpoints, gradient
checkpointing off. TRL's configs default to gradient checkpointing on and to bf16 autocast (on CPU
too); the studio trains fp32 with checkpointing off unless asked, so the baseline is told
``gradient_checkpointing=False, bf16=False`` — otherwise the two arms would not compute the same thing:

* ``studio``: ``studio.core.training.engine.train`` with ``objective: dpo`` — the product path of
  ``studio train --method dpo`` and the Train pane: the studio renders the pairs with the chat
  template, journals every event, watches memory, saves the adapter and adds it to the Library.
* ``trl``: what a user writes from TRL's DPO docs: the pairs in TRL's conversational form
  (``prompt`` = the user turn, ``chosen`` / ``rejected`` = the assistant turn), ``DPOTrainer`` with
  ``peft_config=LoraConfig(...)`` (so both arms use the base with the adapter off as the reference),
  then ``save_pretrained``.
* ``trl-defaults``: the same script with TRL's own defaults for the two settings above (bf16
  autocast, gradient checkpointing on): what a user gets who does not override them. Not the same
  computation, so it is shown beside the comparison, not in it.

Each run is its own child process, so its peak RSS (``ru_maxrss`` from ``os.wait4``) is that run's
alone, imports and model load included. The arms alternate (studio, trl, trl-defaults, studio, …) as the
machine is shared; medians over ``--rounds`` are reported.

Tokens/s counts the real (non-padding) tokens of both sequences of every pair the trainer batched,
2 × prompt + chosen + rejected — the same definition in both arms: the studio's own counter, and in
the baseline the attention mask of each collated batch. It is timed from the Trainer's train begin
(model loaded, optimizer built) to the end of the last step. "Whole run" is the child's wall time
from launch to exit (imports, load, rendering, training, saving; the studio also registers the
adapter).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, bundled_model, load_average, machine, scratch_home

DATA = REPO / "resources" / "datasets" / "demo_pref_train.jsonl"
RESULTS = Path(__file__).resolve().parent / "dpo_results_cpu.md"
LORA = {"r": 8, "alpha": 16.0, "dropout": 0.05}
LR = 5e-4
BETA = 0.1
SEED = 42
WARMUP = 0.03
ARMS = ("studio", "trl", "trl-defaults")


def _threads(n: int) -> None:
    if n:
        import torch

        torch.set_num_threads(n)


def child_studio(model: Path, work: Path, steps: int, batch: int, seq: int) -> dict:
    from studio.core.config import RunConfig, apply_overrides
    from studio.core.training.engine import train

    cfg = apply_overrides(RunConfig(name="bench-dpo"), {
        "objective": "dpo", "method": "lora", "model.path": str(model), "dataset.train": [str(DATA)],
        "dataset.eval_ratio": 0.0, "lora.r": LORA["r"], "lora.alpha": LORA["alpha"],
        "lora.dropout": LORA["dropout"], "lora.target_modules": ["all-linear"], "training.max_steps": steps,
        "training.batch_size": batch, "training.max_seq_len": seq, "training.lr": LR,
        "training.warmup_ratio": WARMUP, "training.scheduler": "cosine", "training.eval_steps": 0,
        "training.save_steps": 0, "training.seed": SEED, "training.device": "cpu",
        "training.grad_checkpointing": False, "preference.beta": BETA, "preference.loss_type": "sigmoid",
    })
    events: list = []
    clock: dict[str, tuple[float, float]] = {}

    def emit(ev) -> None:  # called synchronously from the Trainer's callbacks
        if ev.kind in ("run_started", "step"):
            clock[ev.kind] = (time.time(), time.process_time())
        events.append(ev)

    result = train(cfg, run_dir=work / "run", emit=emit)
    if result.status != "completed":
        raise SystemExit(f"studio run did not complete: {result.reason}")
    steps_ev = [e for e in events if e.kind == "step"]
    last = steps_ev[-1]
    (w0, c0), (w1, c1) = clock["run_started"], clock["step"]
    return {"tokens": last.tokens_seen, "seconds": w1 - w0, "cpu_seconds": c1 - c0, "loss": last.loss,
            "accuracy": last.rewards.get("accuracy"), "margin": last.rewards.get("margin"),
            "first_loss": steps_ev[0].loss, "steps": len(steps_ev)}


def child_trl(model_dir: Path, work: Path, steps: int, batch: int, seq: int, *, trl_defaults: bool = False) -> dict:
    import warnings

    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from trl import DPOConfig, DPOTrainer

    from datasets.utils.logging import disable_progress_bar
    from transformers import PrinterCallback

    disable_progress_bar()  # its tokenizing bars; the studio prints none either
    set_seed(SEED)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    data = Dataset.from_list([{
        "prompt": [{"role": "user", "content": r["prompt"]}],
        "chosen": [{"role": "assistant", "content": r["chosen"]}],
        "rejected": [{"role": "assistant", "content": r["rejected"]}],
    } for r in rows])
    same = {} if trl_defaults else {"gradient_checkpointing": False, "bf16": False}
    args = DPOConfig(
        output_dir=str(work / "out"), per_device_train_batch_size=batch, max_steps=steps, learning_rate=LR,
        lr_scheduler_type="cosine", warmup_steps=WARMUP, beta=BETA, loss_type=["sigmoid"], max_length=seq,
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, seed=SEED, data_seed=SEED,
        disable_tqdm=True, max_grad_norm=1.0, optim="adamw_torch", dataloader_num_workers=0, **same,
    )
    peft = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")
    marks: list[tuple[float, int]] = []
    logged: list[dict] = []
    seen = {"tokens": 0}

    class Clock(TrainerCallback):
        def on_train_begin(self, a, state, control, **kw):
            marks.append((time.time(), time.process_time(), seen["tokens"]))

        def on_step_end(self, a, state, control, **kw):
            marks.append((time.time(), time.process_time(), seen["tokens"]))

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                logged.append(dict(logs))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft,
                             callbacks=[Clock()])
    trainer.remove_callback(PrinterCallback)  # as the studio does: no per-step dict on stdout
    inner = trainer.data_collator

    def counting(batch_rows):
        out = inner(batch_rows)
        seen["tokens"] += int(out["attention_mask"].sum())
        return out

    trainer.data_collator = counting
    trainer.train()
    trainer.model.save_pretrained(work / "adapter")
    (t0, c0, k0), (t1, c1, k1) = marks[0], marks[-1]
    return {"tokens": k1 - k0, "seconds": t1 - t0, "cpu_seconds": c1 - c0, "loss": logged[-1]["loss"],
            "accuracy": logged[-1].get("rewards/accuracies"), "margin": logged[-1].get("rewards/margins"),
            "first_loss": logged[0]["loss"], "steps": len(logged)}


def run_child(arm: str, model: Path, args: argparse.Namespace) -> dict:
    """One arm in its own process; its wall time and peak RSS measured from here."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-dpo-{arm}-"))
    out = work / "result.json"
    cmd = [sys.executable, __file__, "--child", arm, "--model", str(model), "--work", str(work),
           "--steps", str(args.steps), "--batch", str(args.batch), "--seq", str(args.seq),
           "--threads", str(args.threads), "--result", str(out)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{arm} run failed (exit {proc.returncode}); see its output above")
    res = json.loads(out.read_text())
    res.update(wall=wall, peak_rss=usage.ru_maxrss * 1024,  # Linux reports KiB
               cpu_total=usage.ru_utime + usage.ru_stime)
    return res


def table(results: dict[str, list[dict]], args: argparse.Namespace, model: Path, load: tuple[str, str]) -> str:
    from studio.core.formatting import format_bytes

    def med(arm: str, key: str) -> float:
        return statistics.median(r[key] for r in results[arm])

    rate = {a: statistics.median(r["tokens"] / r["seconds"] for r in results[a]) for a in results}
    per_cpu = {a: statistics.median(r["tokens"] / r["cpu_seconds"] for r in results[a]) for a in results}
    lines = [
        f"Command: `.venv/bin/python tests/benchmarks/bench_dpo.py --steps {args.steps} --batch {args.batch} "
        f"--seq {args.seq} --rounds {args.rounds}` — run {datetime.date.today().isoformat()} on AMD EPYC, "
        f"2 cores, 23 GiB RAM, no GPU.",
        "",
        "### DPO: the studio vs plain TRL DPOTrainer + peft",
        "",
        f"Machine: {machine()}  ",
        f"Load average before / after: {load[0]} -> {load[1]} (the machine is shared)  ",
        f"Model: {model.name}, fp32 on CPU; LoRA r={LORA['r']} alpha {LORA['alpha']:g} dropout {LORA['dropout']} "
        f"all-linear; DPO sigmoid, beta {BETA}; lr {LR:g} cosine; batch {args.batch} pairs; max {args.seq} "
        f"tokens; {args.steps} steps; seed {SEED}; no eval set; gradient checkpointing off.  ",
        f"Data: {DATA.relative_to(REPO)}. Each run in its own process, arms alternating "
        f"({', '.join(ARMS)}) × {args.rounds}; medians.  ",
        "The baseline is told `gradient_checkpointing=False, bf16=False` (TRL's configs default to both on, "
        "bf16 autocast on CPU too) so that it computes what the studio computes; `trl-defaults` leaves them "
        "as TRL sets them, for reference.  ",
        "Tokens: real tokens of both sequences of each pair batched (2 × prompt + chosen + rejected), "
        "timed from train begin to the last step's end; per CPU-second divides by the process's CPU time "
        "(all threads) over the same window, which a loaded machine disturbs less than the wall clock.",
        "",
        "| arm | tokens/s | vs trl | tokens per CPU-s | vs trl | tokens trained | peak RSS | vs trl | whole run "
        "| whole run CPU | last-step loss | reward acc. |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm in ("trl", "studio", "trl-defaults"):
        lines.append(
            f"| {arm} | {rate[arm]:,.1f} | {rate[arm] / rate['trl']:.2f}x | {per_cpu[arm]:,.1f} | "
            f"{per_cpu[arm] / per_cpu['trl']:.2f}x | {med(arm, 'tokens'):,.0f} | "
            f"{format_bytes(med(arm, 'peak_rss'))} | {med(arm, 'peak_rss') / med('trl', 'peak_rss'):.2f}x | "
            f"{med(arm, 'wall'):.1f} s | {med(arm, 'cpu_total'):.1f} s | {med(arm, 'loss'):.4f} | "
            f"{med(arm, 'accuracy'):.2f} |")
    lines += ["", "Per run (tokens/s, tokens per CPU-s, peak RSS, whole run):  "]
    for arm, runs in results.items():
        lines.append(f"{arm}: " + "; ".join(
            f"{r['tokens'] / r['seconds']:,.1f}, {r['tokens'] / r['cpu_seconds']:,.1f}, "
            f"{format_bytes(r['peak_rss'])}, {r['wall']:.1f} s" for r in runs) + "  ")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch intra-op threads in each run (0 = torch's default)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where the results table is written")
    ap.add_argument("--child", choices=ARMS, help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()

    scratch_home()
    if args.child:
        from studio.core.training.engine import quiet_libraries

        quiet_libraries()
        _threads(args.threads)
        if args.child == "studio":
            res = child_studio(args.model, args.work, args.steps, args.batch, args.seq)
        else:
            res = child_trl(args.model, args.work, args.steps, args.batch, args.seq,
                            trl_defaults=args.child == "trl-defaults")
        args.result.write_text(json.dumps(res))
        return 0

    load_before = load_average()
    model = bundled_model()
    results: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for r in range(args.rounds):
        for arm in ARMS:
            print(f"round {r + 1}/{args.rounds}: {arm}", file=sys.stderr, flush=True)
            results[arm].append(run_child(arm, model, args))
            last = results[arm][-1]
            print(f"  {last['tokens'] / last['seconds']:.1f} tokens/s, peak {last['peak_rss'] / 2**30:.2f} GiB, "
                  f"{last['wall']:.1f} s", file=sys.stderr, flush=True)
    text = table(results, args, model, (load_before, load_average()))
    print(text)
    from studio.core.fsutil import atomic_write_text

    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
