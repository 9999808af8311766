"""Tiny base models and LoRA adapters for the library/export tests.

The base is a random 2-layer Llama with the bundled model's real tokenizer and chat template; its
initialiser is wider than Llama's default so logits are peaked, as in a trained model. With the
default 0.02 every token scores about the same and a greedy comparison would measure ties, not
the export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_base(out: Path, tokenizer_dir: Path, *, hidden: int = 64, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        initializer_range=0.2,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)  # the store keeps bf16, like real bases
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=[tok.eos_token_id, 0], pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_adapter(base: Path, out: Path, *, r: int = 4, seed: int = 1, targets: list[str] | None = None) -> Path:
    """A LoRA with non-zero B, so merging changes the weights; saved like the engine saves it."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=targets or TARGETS, init_lora_weights=False,
                     task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.mul_(0.5)
    peft_model.save_pretrained(out)
    data = json.loads((out / "adapter_config.json").read_text())
    data["base_model_name_or_path"] = str(Path(base).resolve())
    (out / "adapter_config.json").write_text(json.dumps(data, indent=2))
    return out


@pytest.fixture(scope="session")
def lib_base(tmp_path_factory, smol_tokenizer_dir) -> Path:
    return make_base(tmp_path_factory.mktemp("lib_base") / "tiny-llama", smol_tokenizer_dir)


@pytest.fixture(scope="session")
def lib_adapter(tmp_path_factory, lib_base) -> Path:
    return make_adapter(lib_base, tmp_path_factory.mktemp("lib_run") / "adapter")


@pytest.fixture()
def adapter_copy(tmp_path, lib_adapter) -> Path:
    """A private copy, for tests that modify the adapter."""
    dest = tmp_path / "adapter"
    shutil.copytree(lib_adapter, dest)
    return dest


@pytest.fixture(scope="module", autouse=False)
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP's barrier
    waits made these tests 5x slower; restored afterwards so other modules keep the default."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
