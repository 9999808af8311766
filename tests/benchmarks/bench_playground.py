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
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, random_adapter

PROMPT = "Explain in two sentences why the sky is blue."


def _pick_base(arg: str | None, work: Path) -> tuple[Path, str]:
    from studio.core.models.store import default_model_path, default_model_ready

    if arg:
        return Path(arg), f"{Path(arg).name} (given)"
    if default_model_ready():
        return default_model_path(), f"{default_model_path().name} (bundled model, from the store)"
    from transformers import LlamaConfig, LlamaForCausalLM

    from studio.core.models.gguf_import import bundled_gguf, gguf_tokenizer

    out = work / "tiny-llama"
    gguf = bundled_gguf()
    if gguf is None:
        raise SystemExit("Neither the bundled model in the store nor the bundled GGUF (for its tokenizer) was found.")
    tok, _fixes = gguf_tokenizer(gguf)
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
        adapter_a = random_adapter(base, work / "a", seed=1)
        adapter_b = random_adapter(base, work / "b", seed=2)

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
        print(f"\nMachine: {machine()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
