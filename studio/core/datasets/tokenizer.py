"""The tokenizer of a local model folder, loaded the way training loads it.

The Dataset pane's token checks and its "what the model sees" preview must count and mask exactly
what the trainer will, so they load the same files with the same options. Never touches the
network; a folder holding only a ``.gguf`` file works too (its tokenizer is embedded).
"""

from __future__ import annotations

from pathlib import Path

from studio.core.errors import StudioError
from studio.core.heavy_imports import ensure_tokenizer

# The files a tokenizer is saved as (any one of them means the folder has a tokenizer).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "tokenizer.model", "vocab.json", "merges.txt",
                   "vocab.txt", "spiece.model")


def has_tokenizer_files(folder: str | Path) -> bool:
    path = Path(folder)
    return bool(str(folder)) and any((path / n).is_file() for n in TOKENIZER_FILES)


def has_tokenizer(folder: str | Path) -> bool:
    """Whether ``load_tokenizer`` has something to load here (HF tokenizer files or a GGUF)."""
    path = Path(folder)
    return bool(str(folder)) and path.is_dir() and (has_tokenizer_files(path) or any(path.glob("*.gguf")))


def load_tokenizer(folder: str | Path, *, trust_remote_code: bool = False):
    """``AutoTokenizer`` for ``folder``; StudioError with a plain message when it has none."""
    path = Path(folder)
    if not str(folder) or not path.is_dir():
        raise StudioError("Model folder not found. Pick the folder that holds the model files.", path=path)
    try:
        ensure_tokenizer()
        from transformers import AutoTokenizer

        ggufs = sorted(path.glob("*.gguf"))
        if ggufs and not has_tokenizer_files(path):
            from studio.core.models.gguf_import import gguf_tokenizer  # as the import will save it

            return gguf_tokenizer(ggufs[0])[0]
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
    except Exception as err:
        raise StudioError("Could not load a tokenizer from this folder. Pick a model folder with tokenizer files.",
                          path=path, detail=f"{type(err).__name__}: {err}") from None


def adds_bos(tokenizer) -> bool:
    """Whether encoding plain text puts the BOS token first (the tokenizer's post-processor does it).
    A GGUF records this as ``add_bos_token``; llama.cpp then adds BOS itself, so nothing else may."""
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id
