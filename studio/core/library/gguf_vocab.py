"""The ``tokenizer.ggml.*`` part of a GGUF, for the two tokenizer kinds the studio's families use.

* Byte-level BPE (Llama 3, Qwen, SmolLM): llama.cpp's ``gpt2`` model with the merges, and a
  pre-tokenizer name llama.cpp knows, chosen by behaviour (``gguf_pretokenizer``).
* SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Gemma, Phi-3): llama.cpp's ``llama``
  (SPM) model. SPM has no merge list: it repeatedly joins the adjacent pair whose joined piece scores
  highest. Scoring each piece with minus the rank of the merge that creates it makes that the HF
  merge order. Byte pieces ``<0xXX>`` are typed BYTE, which is how llama.cpp finds its fallback.
  llama.cpp puts a space before the text at the start and after every special token when
  ``add_space_prefix`` is set; HF's Metaspace "first" prepends only at the very start, which in a
  chat (always opened by a special token) is never, so only "always" maps to the flag.

The export proves the choice: llama.cpp tokenizes the chat text and must give our ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from studio.core.datasets.tokenizer import adds_bos
from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure
from studio.core.library.gguf_arch import CONVERT_HINT
from studio.core.library.gguf_pretokenizer import llamacpp_pre_name

# llama.cpp token types
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_BYTE_PIECE = re.compile(r"<0x[0-9A-F]{2}>")


def _metaspace(tok_json: dict) -> dict | None:
    """The Metaspace pre-tokenizer (alone or inside a Sequence), or None."""
    pre = tok_json.get("pre_tokenizer") or {}
    for p in [pre, *(pre.get("pretokenizers") or [])]:
        if p and p.get("type") == "Metaspace":
            return p
    return None


def _prepends_always(tok_json: dict) -> bool:
    """Whether the HF tokenizer puts "▁" before every text run (what llama.cpp's add_space_prefix does)."""
    meta = _metaspace(tok_json)
    if meta is not None:
        return meta.get("prepend_scheme", "always" if meta.get("add_prefix_space", True) else "never") == "always"
    norm = tok_json.get("normalizer") or {}  # the older Llama-2 shape: Prepend("▁") + Replace(" ", "▁")
    return any(n.get("type") == "Prepend" for n in [norm, *(norm.get("normalizers") or [])])


def sentencepiece_prefix_gap(folder: Path) -> str | None:
    """transformers' GGUF reader rebuilds every SentencePiece-style tokenizer with a "▁" after each special
    token (the legacy Llama-2 behaviour); one that does not prepend always tokenizes chats differently there."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    tok_json = json.loads(path.read_text(encoding="utf-8"))
    if (tok_json.get("model") or {}).get("byte_fallback") and not _prepends_always(tok_json):
        return "transformers' GGUF reader puts a space after every special token, which this tokenizer does not"
    return None


def _vocab_table(tok_json: dict, vocab_size: int, folder: Path) -> tuple[list[str], dict[str, dict], dict[int, str]]:
    model = tok_json.get("model") or {}
    vocab: dict[str, int] = dict(model["vocab"])
    added = {a["content"]: a for a in tok_json.get("added_tokens", [])}
    for content, a in added.items():
        vocab[content] = a["id"]
    by_id = {i: t for t, i in vocab.items()}
    if by_id and max(by_id) >= vocab_size:
        raise StudioError(
            f"The tokenizer has ids up to {max(by_id)} but the model only {vocab_size} embeddings.", path=folder)
    tokens = [by_id.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    return tokens, added, by_id


def _merges(model: dict) -> list[tuple[str, str]]:
    return [tuple(m.split(" ", 1)) if isinstance(m, str) else (m[0], m[1]) for m in model.get("merges", [])]


def tokenizer_metadata(folder: Path, vocab_size: int) -> dict:
    """Everything ``tokenizer.ggml.*`` needs, from the HF folder's fast tokenizer."""
    ensure()
    from transformers import AutoTokenizer

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise StudioError("GGUF export needs a fast tokenizer (tokenizer.json) in the model folder.", path=folder)
    tok_json = json.loads(path.read_text(encoding="utf-8"))
    model = tok_json.get("model") or {}
    if model.get("type") != "BPE":
        raise StudioError(f"The studio writes GGUF for BPE tokenizers; this one is '{model.get('type')}'. "
                          f"{CONVERT_HINT}", path=folder)
    tok = AutoTokenizer.from_pretrained(str(folder))
    tokens, added, by_id = _vocab_table(tok_json, vocab_size, folder)
    meta: dict[str, Any] = {
        "tokens": tokens,
        "bos": tok.bos_token_id, "eos": tok.eos_token_id, "unk": tok.unk_token_id, "pad": tok.pad_token_id,
        "add_bos": adds_bos(tok),
        "chat_template": tok.chat_template if isinstance(tok.chat_template, str) else None,
    }
    if model.get("byte_fallback"):
        meta.update(_sentencepiece_style(tok_json, tokens, added, by_id, folder))
    else:
        meta.update(_byte_level(tok, tokens, added, by_id, model, folder))
    return meta


def _byte_level(tok: Any, tokens: list[str], added: dict, by_id: dict, model: dict, folder: Path) -> dict:
    pre = llamacpp_pre_name(tok.backend_tokenizer)
    if pre is None:
        raise StudioError(
            "llama.cpp splits text with a fixed set of rules, and none of them matches this tokenizer's "
            f"pre-tokenizer, so a GGUF would tokenize differently from the model you trained. {CONVERT_HINT}",
            path=folder)
    types = []
    for i, t in enumerate(tokens):
        if i not in by_id:
            types.append(UNUSED)
        elif t in added:
            types.append(CONTROL if added[t].get("special") else USER_DEFINED)
        else:
            types.append(NORMAL)
    return {"model": "gpt2", "pre": pre, "types": types, "merges": [f"{a} {b}" for a, b in _merges(model)],
            "scores": None, "add_space_prefix": None}


def _sentencepiece_style(tok_json: dict, tokens: list[str], added: dict, by_id: dict, folder: Path) -> dict:
    model = tok_json["model"]
    missing = [f"<0x{b:02X}>" for b in range(256) if f"<0x{b:02X}>" not in model["vocab"]]
    if missing:
        raise StudioError(f"The tokenizer falls back to bytes but lacks {len(missing)} byte pieces (e.g. "
                          f"{missing[0]}); llama.cpp could not encode every text. {CONVERT_HINT}", path=folder)
    rank = {a + b: r for r, (a, b) in reversed(list(enumerate(_merges(model))))}  # first merge making a piece wins
    unk = model.get("unk_token")
    scores, types = [], []
    for i, t in enumerate(tokens):
        scores.append(-float(rank[t] + 1) if t in rank else 0.0)
        if i not in by_id:
            types.append(UNUSED)
        elif t in added and not _BYTE_PIECE.fullmatch(t):
            types.append(UNKNOWN if t == unk else CONTROL if added[t].get("special") else USER_DEFINED)
        elif _BYTE_PIECE.fullmatch(t):
            types.append(BYTE)
        elif t == unk:
            types.append(UNKNOWN)
        else:
            types.append(NORMAL)
    return {"model": "llama", "pre": "default", "types": types, "merges": None, "scores": scores,
            "add_space_prefix": _prepends_always(tok_json)}


def write_tokenizer(writer: Any, meta: dict) -> None:
    """The tokenizer keys, special ids and chat template."""
    writer.add_tokenizer_model(meta["model"])
    writer.add_tokenizer_pre(meta["pre"])
    writer.add_token_list(meta["tokens"])
    writer.add_token_types(meta["types"])
    if meta["scores"] is not None:
        writer.add_token_scores(meta["scores"])
    if meta["merges"] is not None:
        writer.add_token_merges(meta["merges"])
    if meta["add_space_prefix"] is not None:
        writer.add_add_space_prefix(meta["add_space_prefix"])
    for key, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                     ("unk", writer.add_unk_token_id), ("pad", writer.add_pad_token_id)):
        if meta[key] is not None:
            add(int(meta[key]))
    if meta.get("eot") is not None:
        writer.add_eot_token_id(int(meta["eot"]))
    writer.add_add_bos_token(meta["add_bos"])
    writer.add_add_eos_token(False)  # chat turns end with the template's own end token, never an extra eos
    if meta["chat_template"]:
        writer.add_chat_template(meta["chat_template"])


_PHI3_NAME = re.compile(r"phi-?3", re.IGNORECASE)
_NEVER_STRIPPED = ("<unk>", "<s>", "<|endoftext|>")  # llama.cpp's Phi-3 rule leaves these alone


def llamacpp_name(name: str, folder: Path) -> str:
    """``general.name`` adjusted for the one place llama.cpp reads it: a name containing "phi-3"/"phi3"
    makes it strip whitespace after every special token (Phi-3's tokenizer does), whatever the
    architecture. The name says so exactly when this tokenizer's special tokens strip to the right."""
    path = folder / "tokenizer.json"
    added = json.loads(path.read_text(encoding="utf-8")).get("added_tokens", []) if path.is_file() else []
    specials = [a for a in added if a.get("special") and a["content"] not in _NEVER_STRIPPED]
    strips = bool(specials) and all(a.get("rstrip") for a in specials)
    named = bool(_PHI3_NAME.search(name))
    if strips and not named:
        return f"{name} (Phi-3)"
    if named and not strips:
        return _PHI3_NAME.sub(lambda m: m.group(0).replace("-", "").replace("3", " 3"), name)
    return name


def end_of_turn_id(folder: Path, meta: dict) -> int | None:
    """The token an assistant turn ends with when it is not eos (``<|eot_id|>``, ``<end_of_turn>``…): the
    generation config's other stop id, so llama.cpp stops where ``generate`` stops."""
    path = folder / "generation_config.json"
    if not path.is_file():
        return None
    stops = json.loads(path.read_text(encoding="utf-8")).get("eos_token_id")
    stops = stops if isinstance(stops, list) else [stops]
    others = [int(s) for s in stops if s is not None and s != meta["eos"]]
    return others[0] if others else None
