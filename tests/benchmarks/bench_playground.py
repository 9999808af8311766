"""Playground generation (adapter active, streamed) vs plain ``PeftModel.generate`` in the same run.

Run: ``.venv/bin/python tests/benchmarks/bench_playground.py [--repeat 5] [--tokens 48] [--base DIR]``.
Not collected by pytest. Uses the bundled SmolLM2-135M from the model store when it is there
(``STUDIO_HOME`` decides which store), else a tiny random Llama with the bundled tokenizer, and
says which. A LoRA (all-linear, r=8, small random update) is made on the fly.

Measured, interleaved so both sides see the same machine load, medians over ``--repeat``:

- first-token latency: Playground = time from the call to the first streamed token; plain =
  ``generate(max_new_tokens=1)`` on the same prompt ids;
- tokens/s: greedy generation of up to ``--tokens`` tokens, new tokens / wall time;
- switching adapters: ``ensure_adapter`` of a second adapter (hot-swap) vs loading base + adapter anew.

Prints a markdown table with the ratio and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Explain in two sentences why the sky is blue."


def _machine() -> str:
    import psutil
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM{gpu}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), Python {platform.python_version()}")


def _make_adapter(base: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.mul_(0.02)  # a trained-sized update: changes outputs without wrecking the model
    peft_model.save_pretrained(out)
    data = json.loads((out / "adapter_config.json").read_text())
    data["base_model_name_or_path"] = str(base.resolve())
    (out / "adapter_config.json").write_text(json.dumps(data, indent=2))
    return out


def _pick_base(arg: str | None, work: Path) -> tuple[Path, str]:
    from studio.core.models.store import default_model_path, default_model_ready

    if arg:
        return Path(arg), f"{Path(arg).name} (given)"
    if default_model_ready():
        return default_model_path(), f"{default_model_path().name} (bundled model, from the store)"
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from studio.core.models.gguf_import import bundled_gguf

    out = work / "tiny-llama"
    gguf = bundled_gguf()
    if gguf is None:
        raise SystemExit("Neither the bundled model in the store nor the bundled GGUF (for its tokenizer) was found.")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)
    return out, "tiny random 2-layer Llama (the bundled model is NOT in the store; numbers are not representative)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--base", help="base model folder (default: the bundled model in the store)")
    args = parser.parse_args()

    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from studio.core.library.playground import GenerationSettings, Playground
    from studio.core.training.engine import quiet_libraries

    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="bench_playground_"))
    try:
        base, described = _pick_base(args.base, work)
        adapter_a = _make_adapter(base, work / "a", seed=1)
        adapter_b = _make_adapter(base, work / "b", seed=2)

        pg = Playground(base, device="cpu", dtype="fp32")
        pg.ensure_adapter(adapter_a)
        ids = pg.prompt_ids(PROMPT)
        t = time.perf_counter()
        plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32),
                                          str(adapter_a)).eval()
        cold_load = time.perf_counter() - t
        settings = GenerationSettings(max_new_tokens=args.tokens)
        inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long)}
        greedy = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None,
                  "pad_token_id": pg.tokenizer.pad_token_id}

        def plain_run(n: int) -> tuple[float, int]:
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = plain.generate(**inputs, max_new_tokens=n, **greedy)
                return time.perf_counter() - t0, out.shape[1] - len(ids)

        pg.generate(PROMPT, adapter_a, settings)  # warm-up both sides
        plain_run(args.tokens)
        pg_first, pg_tps, plain_first, plain_tps, same = [], [], [], [], True
        for _ in range(args.repeat):
            gen = pg.generate(PROMPT, adapter_a, settings, on_token=lambda _t: None)
            pg_first.append(gen.first_token_s or float("nan"))
            pg_tps.append(gen.tokens_per_s)
            plain_first.append(plain_run(1)[0])
            seconds, n = plain_run(args.tokens)
            plain_tps.append(n / seconds)
            same = same and n == gen.new_tokens
        t = time.perf_counter()
        pg.ensure_adapter(adapter_b)
        swap = time.perf_counter() - t
        assert pg.base_loads == 1

        med = statistics.median
        print(f"Base: {described}. Prompt {len(ids)} tokens, up to {args.tokens} new tokens, greedy, "
              f"median of {args.repeat}{'' if same else ' (token counts differed!)'}.\n")
        print("| measure | Playground (adapter active, streamed) | plain PeftModel.generate | ratio |")
        print("|---|---|---|---|")
        print(f"| first-token latency | {med(pg_first) * 1000:.1f} ms | {med(plain_first) * 1000:.1f} ms | "
              f"{med(pg_first) / med(plain_first):.2f}× |")
        print(f"| tokens/s | {med(pg_tps):.1f} | {med(plain_tps):.1f} | {med(pg_tps) / med(plain_tps):.2f}× |")
        print(f"| switch to another adapter | {swap * 1000:.0f} ms (hot-swap, base kept) | "
              f"{cold_load * 1000:.0f} ms (load base + adapter) | {swap / cold_load:.3f}× |")
        print(f"\nMachine: {_machine()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
