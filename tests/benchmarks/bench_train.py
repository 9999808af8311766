"""Training throughput of the studio engine against a plain transformers ``Trainer`` + peft loop.

    .venv/bin/python tests/benchmarks/bench_train.py [--steps 8] [--batch 4] [--seq 256] [--rounds 1]

One process, one model (the bundled SmolLM2-135M, converted into a scratch STUDIO_HOME once), one
mixed-length prompt/completion dataset, the same LoRA config (r=8, alpha=16, dropout 0.05,
all-linear), batch, learning rate and fp32 on CPU. Three arms, run in turn (``--rounds`` repeats
the cycle and reports the median):

* ``baseline``: ``Trainer`` + ``get_peft_model`` + ``DataCollatorForSeq2Seq``, default random
  batching, fed the same token lists the studio renders (so both see the same tokens);
* ``studio``: ``studio.core.training.engine.train`` without packing (it batches by length);
* ``studio+packing``: the same with ``training.packing`` (best-fit-decreasing rows of ``--seq``).

Throughput is *effective* tokens/s: real (non-padding) tokens per second, from the start of training
(model loaded, optimizer built) to the end of the last step. The dataset has exactly ``steps x
batch`` rows, so the unpacked arms train on the same examples once each, only in a different
order (the studio batches by length, the baseline at random); the packed arm goes through its
fewer, fuller rows as often as the step count allows. Padding is not counted, so time spent on
it shows up as lower throughput, which is what packing removes.

Fraction of the matmul ceiling. The ceiling is the best fp32 ``torch.matmul`` rate measured here at
the model's own GEMM shapes (tokens-per-batch x hidden against hidden x {hidden, intermediate,
vocab}). Useful training FLOPs per real token, with N the parameters that do matmuls (every Linear,
the LM head included, embeddings excluded), L layers, h hidden, s_eff = sum(n_i^2)/sum(n_i) the
token-weighted example length (causal attention scores and values ~ 2*s*h per layer per token):

    forward             2N + 2*L*s_eff*h
    backward, inputs    2N + 4*L*s_eff*h   (gradients flow through the frozen base too)
    backward, weights   2*N_trainable      (LoRA: only the adapters; a full fine-tune would add 2N)
    adapters fwd+bwd    4*N_lora           (their own forward and input-gradient matmuls)

so LoRA costs (4N + 6*N_lora + 6*L*s_eff*h) per token, against the 6N of a full fine-tune.
Packed examples are counted at their own length (attention is block-diagonal), so packing is not
credited for the longer rows it builds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import bundled_model, load_average, machine, mixed_length_dataset, scratch_home

LORA = {"r": 8, "alpha": 16.0, "dropout": 0.05}
LR = 2e-4
SEED = 42


@dataclass
class Arm:
    name: str
    tokens: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.tokens / self.seconds


def studio_cfg(model: Path, data: Path, *, packing: bool, steps: int, batch: int, seq: int):
    from studio.core.config import RunConfig, apply_overrides

    return apply_overrides(RunConfig(name="bench"), {
        "model.path": str(model), "dataset.train": [str(data)], "dataset.eval_ratio": 0.0,
        "lora.r": LORA["r"], "lora.alpha": LORA["alpha"], "lora.dropout": LORA["dropout"],
        "lora.target_modules": ["all-linear"], "training.max_steps": steps, "training.batch_size": batch,
        "training.max_seq_len": seq, "training.lr": LR, "training.eval_steps": 0, "training.save_steps": 0,
        "training.packing": packing, "training.seed": SEED, "training.device": "cpu",
    })


def run_studio(model: Path, data: Path, work: Path, *, packing: bool, steps: int, batch: int, seq: int) -> Arm:
    from studio.core.training.engine import train

    events: list = []
    cfg = studio_cfg(model, data, packing=packing, steps=steps, batch=batch, seq=seq)
    train(cfg, run_dir=Path(tempfile.mkdtemp(dir=work)), emit=events.append)
    began = next(e for e in events if e.kind == "run_started")
    last = [e for e in events if e.kind == "step"][-1]
    return Arm("studio+packing" if packing else "studio", last.tokens_seen, last.t - began.t)


def studio_features(model: Path, data: Path, seq: int):
    """The token lists the studio trains on (unpacked), so the baseline sees the same tokens."""
    from transformers import AutoTokenizer

    from studio.core.training.data import build_features

    tok = AutoTokenizer.from_pretrained(model)
    cfg = studio_cfg(model, data, packing=False, steps=1, batch=1, seq=seq)
    return tok, build_features(cfg, tok).train


def run_baseline(model_dir: Path, tok, feats: list[dict], work: Path, *, steps: int, batch: int) -> Arm:
    """What a user writes from the transformers + peft docs: Trainer, LoRA, seq2seq padding collator."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        set_seed,
    )

    set_seed(SEED)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    pad = DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100)
    seen = {"tokens": 0}

    def collate(batch_rows):
        seen["tokens"] += sum(len(r["input_ids"]) for r in batch_rows)
        return pad([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in batch_rows])

    marks: list[tuple[float, int]] = []

    class Clock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            marks.append((time.time(), 0))

        def on_step_end(self, args, state, control, **kw):
            marks.append((time.time(), seen["tokens"]))

    args = TrainingArguments(
        output_dir=str(Path(tempfile.mkdtemp(dir=work))), per_device_train_batch_size=batch, max_steps=steps,
        learning_rate=LR, lr_scheduler_type="cosine", warmup_steps=0.03, logging_steps=1, save_strategy="no",
        report_to="none", use_cpu=True, remove_unused_columns=False, disable_tqdm=True, seed=SEED,
        optim="adamw_torch", dataloader_num_workers=0,
    )
    Trainer(model=model, args=args, train_dataset=feats, data_collator=collate, callbacks=[Clock()]).train()
    (t0, k0), (t1, k1) = marks[0], marks[-1]
    return Arm("baseline", k1 - k0, t1 - t0)


def matmul_ceiling(shapes: list[tuple[int, int, int]], seconds: float = 1.5) -> dict[tuple[int, int, int], float]:
    """Best fp32 FLOP/s of ``torch.matmul`` at each (m, k, n)."""
    import torch

    out = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b  # warm-up (thread pool, packing buffers)
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            a @ b
            reps += 1
        out[(m, k, n)] = 2.0 * m * k * n * reps / (time.perf_counter() - t0)
    return out


def flop_terms(model_dir: Path, feats: list[dict]) -> dict:
    """N (matmul params incl. LM head), N_lora, L, h, s_eff for the FLOP formula in the module docstring."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    n_matmul = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    peft = get_peft_model(model, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], target_modules="all-linear",
                                            task_type="CAUSAL_LM"))
    n_lora = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    lengths = [len(f["input_ids"]) for f in feats]
    return {"N": n_matmul, "N_lora": n_lora, "L": cfg.num_hidden_layers, "h": cfg.hidden_size,
            "I": cfg.intermediate_size, "V": cfg.vocab_size,
            "s_eff": sum(n * n for n in lengths) / sum(lengths), "mean_len": sum(lengths) / len(lengths)}


def lora_flops_per_token(t: dict) -> float:
    return 4 * t["N"] + 6 * t["N_lora"] + 6 * t["L"] * t["s_eff"] * t["h"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch intra-op threads for every arm and the GEMM ceiling (0 = torch's default); "
                         "on a loaded shared machine 1 avoids threads waiting on each other")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    scratch_home()
    from studio.core.training.engine import quiet_libraries

    quiet_libraries()
    load_before = load_average()
    model = bundled_model()
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    data = mixed_length_dataset(work / "mixed.jsonl", rows=args.steps * args.batch)
    tok, feats = studio_features(model, data, args.seq)
    terms = flop_terms(model, feats)

    results: dict[str, list[Arm]] = {"baseline": [], "studio": [], "studio+packing": []}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        print("  baseline", file=sys.stderr, flush=True)
        results["baseline"].append(run_baseline(model, tok, feats, work, steps=args.steps, batch=args.batch))
        print("  studio", file=sys.stderr, flush=True)
        results["studio"].append(run_studio(model, data, work, packing=False, steps=args.steps,
                                            batch=args.batch, seq=args.seq))
        print("  studio+packing", file=sys.stderr, flush=True)
        results["studio+packing"].append(run_studio(model, data, work, packing=True, steps=args.steps,
                                                    batch=args.batch, seq=args.seq))
    print("matmul ceiling", file=sys.stderr, flush=True)
    tokens_per_batch = int(args.batch * terms["mean_len"])
    h, inter, vocab = terms["h"], terms["I"], terms["V"]
    shapes = [(tokens_per_batch, h, h), (tokens_per_batch, h, inter), (tokens_per_batch, h, vocab)]
    ceil = matmul_ceiling(shapes)
    ceiling = max(ceil.values())
    load_after = load_average()

    import torch

    threads = torch.get_num_threads()
    rate = {k: statistics.median(a.rate for a in v) for k, v in results.items()}
    fpt = lora_flops_per_token(terms)
    print("\n### Training throughput (studio engine vs plain Trainer + peft)\n")
    print(f"Machine: {machine()}  ")
    print(f"Load average before / after: {load_before} -> {load_after} (the machine is shared)  ")
    print(f"Model: {model.name} ({terms['N'] / 1e6:.1f}M matmul params, LoRA r={LORA['r']} all-linear: "
          f"{terms['N_lora']:,} trainable); fp32 on CPU; batch {args.batch}; max {args.seq} tokens; "
          f"{args.steps} steps per arm, timed from train start; {args.rounds} round(s), median; "
          f"{threads} torch thread(s).  ")
    print(f"Data: {len(feats)} mixed-length rows, {terms['mean_len']:.0f} tokens mean, "
          f"s_eff {terms['s_eff']:.0f}.\n")
    print("| arm | effective tokens/s | vs baseline | useful GFLOP/s | of matmul ceiling |")
    print("|---|---:|---:|---:|---:|")
    for k in results:
        gf = rate[k] * fpt / 1e9
        print(f"| {k} | {rate[k]:,.0f} | {rate[k] / rate['baseline']:.2f}x | {gf:.1f} | {gf * 1e9 / ceiling:.0%} |")
    print(f"\nPacking vs the studio without packing: {rate['studio+packing'] / rate['studio']:.2f}x.  ")
    print(f"Useful FLOPs per token (LoRA): 4N + 6N_lora + 6·L·s_eff·h = {fpt / 1e6:.0f} MFLOP.\n")
    print("| fp32 GEMM (m x k x n) | GFLOP/s |")
    print("|---|---:|")
    for (m, k, n), f in ceil.items():
        print(f"| {m} x {k} x {n} | {f / 1e9:.1f} |")
    if args.rounds > 1:
        print("\nPer round (tokens/s): " + "; ".join(
            f"{k}: " + ", ".join(f"{a.rate:,.0f}" for a in v) for k, v in results.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
