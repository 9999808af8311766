"""Helpers shared by the training benchmarks: the machine line, the load on it, a scratch home
with the bundled model, and a mixed-length dataset written on the fly."""

from __future__ import annotations

import json
import os
import platform
import random
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming the machine the numbers come from."""
    import psutil
    import torch

    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"{cpu_model()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM{gpu}, "
            f"torch {torch.__version__} ({torch.get_num_threads()} intra-op thread(s)), "
            f"Python {platform.python_version()}")


def random_adapter(base: Path, out: Path, seed: int = 0) -> Path:
    """An all-linear r=8 LoRA with a small random update, saved in PEFT format for ``base``."""
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


def load_average() -> str:
    """The 1/5/15-minute load averages: on a shared machine they say how much others were running."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def scratch_home(path: Path | None = None) -> Path:
    """Point STUDIO_HOME at a scratch folder (reused between runs so the model converts once)."""
    home = Path(path or os.environ.get("STUDIO_BENCH_HOME", "/tmp/studio-bench-home"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["STUDIO_HOME"] = str(home)
    return home


def bundled_model() -> Path:
    """The bundled SmolLM2-135M in the scratch store, converted from its GGUF on first use (~20 s)."""
    from studio.core.models.store import ensure_default_model

    return ensure_default_model()


WORDS = ["the", "model", "learns", "to", "answer", "short", "questions", "about", "numbers", "colours", "animals", "and", "places", "with", "a", "single", "clear", "sentence", "that", "names", "the", "thing", "asked", "for", "and", "nothing", "else", "so", "every", "answer", "stays", "easy", "to", "check"]


def mixed_length_dataset(out: Path, rows: int = 96, seed: int = 0, lo: int = 8, hi: int = 180) -> Path:
    """prompt/completion rows whose lengths spread from a few words to ~``hi`` words (log-uniform),
    the shape that wastes most compute on padding when batched unsorted."""
    rng = random.Random(seed)
    with open(out, "w", encoding="utf-8") as fh:
        for _ in range(rows):
            n = round(lo * (hi / lo) ** rng.random())
            prompt = " ".join(rng.choice(WORDS) for _ in range(max(3, n // 3)))
            answer = " ".join(rng.choice(WORDS) for _ in range(max(2, n - n // 3)))
            fh.write(json.dumps({"prompt": prompt, "completion": answer}) + "\n")
    return out
