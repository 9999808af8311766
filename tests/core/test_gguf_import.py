"""GGUF import of every family the studio trains: a GGUF written from a tiny model of that family
comes back as a folder that computes, tokenizes and chats like the source (within f16 rounding)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from studio.core.errors import StudioError
from studio.core.library.gguf_export import write_gguf
from studio.core.models.gguf_fidelity import pre_tokenizer_check, read_header
from studio.core.models.gguf_import import SOURCE_RECORD, import_gguf, import_summary
from tests.core._zoo import FAMILIES, make_family, make_tokenizer

# What transformers' GGUF reader names each family (Mistral is written as llama.cpp's "llama").
MODEL_TYPE = {"llama3": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2",
              "gemma3": "gemma3_text", "phi3": "phi3"}
CHAT = [{"role": "system", "content": "Answer in one short sentence."},
        {"role": "user", "content": "What is 12345 + 6? It's fine, we'll wait."},
        {"role": "assistant", "content": "12351 — they're 3.5 km apart!"}]


@pytest.fixture(scope="module", params=FAMILIES)
def imported(request, tmp_path_factory) -> tuple[str, Path, Path]:
    family = request.param
    root = tmp_path_factory.mktemp(f"gguf_{family}")
    src = make_family(family, root / "src")
    gguf = write_gguf(src, root / f"{family}-F16.gguf", "f16", name="Tiny zoo model")
    return family, src, import_gguf(gguf, root / "imported", dtype="float32")


def _chat_text(tok) -> str:
    msgs = CHAT if "system" in (tok.chat_template or "") else CHAT[1:]
    return tok.apply_chat_template(msgs, tokenize=False)


def test_imported_family_computes_like_its_source(imported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    family, src, dest = imported
    cfg = json.loads((dest / "config.json").read_text())
    assert cfg["model_type"] == MODEL_TYPE[family]
    src_tok, dest_tok = AutoTokenizer.from_pretrained(src), AutoTokenizer.from_pretrained(dest)
    assert dest_tok.chat_template, "the chat template must come across"
    text = _chat_text(src_tok)
    assert dest_tok.apply_chat_template(CHAT if "system" in src_tok.chat_template else CHAT[1:], tokenize=False) == text
    ids = src_tok(text, add_special_tokens=False).input_ids
    assert dest_tok(text, add_special_tokens=False).input_ids == ids
    # The file declares Mistral's sliding window as its context (llama.cpp has no window for it).
    ids = ids[: cfg["max_position_embeddings"]]
    a = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    b = AutoModelForCausalLM.from_pretrained(dest, dtype=torch.float32).eval()
    with torch.no_grad():
        la, lb = a(torch.tensor([ids])).logits, b(torch.tensor([ids])).logits
    # f16 weights: a few 1e-4 on logits of size ~1; a dropped scale or layer type moves them by 1e-2 or more.
    assert (la - lb).abs().max().item() < 3e-3, family
    assert la.argmax(-1).tolist() == lb.argmax(-1).tolist()


def test_imported_folder_keeps_name_and_pre_tokenizer(imported):
    family, _src, dest = imported
    record = json.loads((dest / SOURCE_RECORD).read_text())
    # The writer may add "(Phi-3)", the one name llama.cpp reads to strip spaces after special tokens.
    assert record["name"].startswith("Tiny zoo model")
    assert f"# {record['name']}" in (dest / "README.md").read_text()
    if family in ("llama3", "qwen2", "qwen3"):  # byte-level BPE: the recorded split is checked
        assert record["pre_tokenizer"]["matches"], record["pre_tokenizer"]
    else:
        assert "pre_tokenizer" not in record


def test_license_reaches_model_card(tmp_path, monkeypatch):
    import gguf

    add_name = gguf.GGUFWriter.add_name

    def with_license(self, name):
        add_name(self, name)
        self.add_license("apache-2.0")

    monkeypatch.setattr(gguf.GGUFWriter, "add_name", with_license)
    src = make_family("qwen2", tmp_path / "src")
    path = write_gguf(src, tmp_path / "q.gguf", "f16", name="Licensed Qwen")
    dest = import_gguf(path, tmp_path / "imported")
    assert json.loads((dest / SOURCE_RECORD).read_text())["license"] == "apache-2.0"
    assert "License: apache-2.0" in (dest / "README.md").read_text()


def test_pre_tokenizer_mismatch_is_reported(tmp_path):
    tok = make_tokenizer("llama3", tmp_path)
    report = pre_tokenizer_check(tok, {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm"})
    assert report is not None and not report["matches"]
    assert report["imported"] == "llama-bpe" and "'smollm'" in report["note"]
    record = {"config_fixes": [], "pre_tokenizer": report}
    assert import_summary(record).startswith("Model ready: ") and "'smollm'" in import_summary(record)
    assert import_summary({"config_fixes": [], "pre_tokenizer": {"matches": True}}) == "Model ready"


def _bare_gguf(path: Path, arch: str, **keys) -> Path:
    import gguf

    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name("odd")
    for key, value in keys.items():
        writer.add_float32(key, value) if isinstance(value, float) else writer.add_string(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_unsupported_architecture_is_refused_by_name(tmp_path):
    path = _bare_gguf(tmp_path / "bert.gguf", "bert")
    with pytest.raises(StudioError, match="'bert'"):
        import_gguf(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rope_scaling_the_reader_drops_is_refused(tmp_path):
    from transformers import LlamaConfig

    from studio.core.models.gguf_fidelity import fix_config

    cfg = LlamaConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=2)
    header = {"general.architecture": "llama", "llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": 4.0}
    with pytest.raises(StudioError, match="yarn"):
        fix_config(cfg, header, tmp_path / "x.gguf")


def test_header_reader_refuses_a_non_gguf(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(StudioError, match="not a readable GGUF"):
        read_header(bad)


# -- the split rules the file names: the bundled SmolLM2's "smollm" (every digit on its own) ----------

# Numbers in every neighbourhood the two splits treat differently (whitespace runs before digits,
# indentation, digits after punctuation), numeric characters beyond ASCII, and chat markup.
NUMBER_ATOMS = ["0", "7", "42", "2024", "12345", "3.50", "$3.50", "1e-9", "v1.2.3-rc4", "0x1F", "-7", "+8",
                "1st", "10th", "(555)", "010-9999", "17*23=391", "²³", "٣٤٥", "①②", "Ⅷ", "１２３", "𝟙𝟚",
                "hello", "Don't", "it's", "naïve", "日本", "😀", ",", ".", "...", "'", " ", "  ", "   ", "\n",
                "\n\n", "\t", " \n", "\n  ", "\r\n", "<|im_start|>", "<|im_end|>", "user\n", "assistant\n"]


def _number_texts(n: int) -> list[str]:
    import random

    rnd = random.Random(13)
    fixed = ["   12   ", "a  3", "x:\n  42", " 3 33 333 3333  33333\n\n4444\t5", "In 2024, 12345 apples cost $3.50."]
    return fixed + ["".join(rnd.choice(NUMBER_ATOMS) + rnd.choice(["", " ", "  ", "\n", "\t", ""])
                            for _ in range(rnd.randint(1, 24))) for _ in range(n)]


def test_bundled_tokenizer_tokenizes_like_llamacpp(bundled_gguf, tmp_path):
    from transformers import AutoTokenizer

    from studio.core.library import llamacpp_runner
    from studio.core.models.gguf_import import gguf_tokenizer

    assert llamacpp_runner.available(), "llama-cpp-python is a dev dependency: ./bootstrap.sh test installs it"
    tok, fixes = gguf_tokenizer(bundled_gguf)
    assert any("'smollm'" in f for f in fixes), fixes
    tok.save_pretrained(tmp_path / "store")   # what the import writes, read back as training reads it
    store = AutoTokenizer.from_pretrained(tmp_path / "store")
    texts = _number_texts(400)
    want = llamacpp_runner.gguf_tokens(bundled_gguf, texts)
    got = [store(t, add_special_tokens=False).input_ids for t in texts]
    assert [(t, g, w) for t, g, w in zip(texts, got, want, strict=True) if g != w] == []
    # transformers' own rebuild (GPT-2's split) is what this replaced: it differs on these texts.
    plain = AutoTokenizer.from_pretrained(str(bundled_gguf.parent), gguf_file=bundled_gguf.name)
    assert sum(plain(t, add_special_tokens=False).input_ids != w for t, w in zip(texts, want, strict=True)) > 50


@pytest.mark.parametrize(("name", "splits_like"), [("smollm", "smollm"), ("starcoder", "smollm"),
                                                   ("command-r", "smollm"), ("gpt-2", "gpt-2"), ("olmo", "gpt-2"),
                                                   ("qwen2", "qwen2"), ("stablelm2", "qwen2"),
                                                   ("llama-bpe", "llama-bpe"), ("chatglm-bpe", "llama-bpe")])
def test_named_split_rules_are_rebuilt(tmp_path, name, splits_like):
    from studio.core.library.gguf_pretokenizer import llamacpp_pre_name
    from studio.core.models.gguf_fidelity import fix_pre_tokenizer

    tok = make_tokenizer("llama3", tmp_path)   # byte-level BPE behind Llama 3's split
    header = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": name}
    fixes = fix_pre_tokenizer(tok, header)
    assert bool(fixes) == (splits_like != "llama-bpe")   # already Llama 3's rules: nothing to change
    assert llamacpp_pre_name(tok.backend_tokenizer) == splits_like
    report = pre_tokenizer_check(tok, header)
    assert report["matches"] and "note" not in report


def test_unknown_split_rules_are_kept_and_reported(tmp_path):
    from studio.core.models.gguf_fidelity import fix_pre_tokenizer

    tok = make_tokenizer("llama3", tmp_path)
    before = tok.backend_tokenizer.to_str()
    header = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "deepseek-coder"}
    assert fix_pre_tokenizer(tok, header) == [] and tok.backend_tokenizer.to_str() == before
    report = pre_tokenizer_check(tok, header)
    assert not report["matches"] and "'deepseek-coder'" in report["note"]
