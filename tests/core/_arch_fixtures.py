"""Tiny configs of several architectures (Llama, Qwen2, Mistral, GPT-2 with Conv1D, tied embeddings).

Shared by the introspection and memory tests so both check the same shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

TINY = {
    "llama": dict(model_type="llama", hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=500, max_position_embeddings=256),
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=1, vocab_size=300, max_position_embeddings=512,
                  tie_word_embeddings=False),
    "mistral": dict(model_type="mistral", hidden_size=32, intermediate_size=80, num_hidden_layers=3,
                    num_attention_heads=4, num_key_value_heads=2, vocab_size=200, max_position_embeddings=1024),
    "gpt2": dict(model_type="gpt2", n_embd=48, n_layer=2, n_head=4, vocab_size=210, n_positions=128,
                 bos_token_id=0, eos_token_id=0),
    "tied": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, vocab_size=400, tie_word_embeddings=True,
                 dtype="bfloat16"),
}


def write_config(folder: Path, data: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(data))
    return folder
