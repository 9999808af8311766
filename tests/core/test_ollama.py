"""Ollama Modelfiles: the chat template translated to Go-template syntax and *proven* by rendering
conversations through it and comparing with ``apply_chat_template``, for every family of the zoo
and the bundled model's ChatML template."""

from __future__ import annotations

import pytest
from _zoo import FAMILIES, make_tokenizer

from studio.core.datasets.tokenizer import adds_bos
from studio.core.library.ollama import measure_turns, ollama_modelfile, render_go_template, translate

# Conversations the translation itself never saw (translate() proves on its own probes).
CONVERSATIONS = (
    [{"role": "user", "content": "Write one line\nabout the sea."}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
     {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}],
)
WITH_SYSTEM = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye"}]
# Families whose official template has a system role that stays a turn of its own.
SYSTEM_ROLE = {"llama3", "qwen2", "qwen3", "phi3"}


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory) -> dict:
    from transformers import AutoTokenizer

    out = {}
    for family in FAMILIES:
        folder = tmp_path_factory.mktemp(family)
        make_tokenizer(family, folder)
        out[family] = AutoTokenizer.from_pretrained(folder)
    return out


def _prefix(tok, template: str) -> str:
    """What llama.cpp puts before the rendered prompt: BOS, when the GGUF says so and the template does not."""
    return tok.bos_token if adds_bos(tok) and not template.startswith(str(tok.bos_token)) else ""


@pytest.mark.parametrize("family", FAMILIES)
def test_modelfile_template_renders_like_the_chat_template(family, tokenizers):
    tok = tokenizers[family]
    found = translate(tok, add_bos=adds_bos(tok))
    assert found is not None, f"{family}: no faithful translation"
    turns, template, with_system = found
    assert with_system == (family in SYSTEM_ROLE)
    conversations = [*CONVERSATIONS, *([WITH_SYSTEM] if with_system else [])]
    for messages in conversations:
        given = messages
        if turns.default_system is not None and messages[0]["role"] != "system":
            given = [{"role": "system", "content": turns.default_system}, *messages]  # Ollama's SYSTEM line
        want = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert _prefix(tok, template) + render_go_template(template, given) == want
    text = ollama_modelfile(tok, "m.gguf", [tok.eos_token], add_bos=adds_bos(tok))
    assert f'TEMPLATE """{template}"""' in text
    assert f'PARAMETER stop "{tok.eos_token}"' in text


def test_the_proof_catches_a_wrong_translation(tokenizers):
    tok = tokenizers["qwen2"]
    _turns, template, _ = translate(tok, add_bos=False)
    broken = template.replace("<|im_end|>\n{{ else if", "<|im_end|>{{ else if", 1)  # a lost newline
    want = tok.apply_chat_template(CONVERSATIONS[1], add_generation_prompt=True, tokenize=False)
    assert render_go_template(broken, CONVERSATIONS[1]) != want


def test_bundled_chatml_template_keeps_its_default_system_prompt(smol_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    text = ollama_modelfile(tok, "m.gguf", ["<|im_end|>"])
    assert 'SYSTEM """You are a helpful AI assistant named SmolLM' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text


def test_a_template_with_no_fixed_turn_text_gets_no_template_line(tmp_path, smol_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_tokenizer_dir)
    # Numbers each turn: the text around a message depends on its position, which a Go template of
    # fixed pieces cannot say, so no TEMPLATE may be written.
    tok.chat_template = ("{% for m in messages %}Turn {{ loop.index }} ({{ m['role'] }}): {{ m['content'] }}\n"
                         "{% endfor %}{% if add_generation_prompt %}Turn {{ messages|length + 1 }} (assistant): "
                         "{% endif %}")
    assert measure_turns(tok) is None or translate(tok, add_bos=False) is None
    text = ollama_modelfile(tok, "m.gguf", ["<|im_end|>"])
    assert "TEMPLATE" not in text.split("#")[0] and "write TEMPLATE by hand" in text


def test_go_template_subset_follows_gos_whitespace_trims():
    template = '{{- range .Messages }}\n  {{- if eq .Role "user" }}U: {{ .Content }}\n{{ else }}A: {{ .Content -}}\n\n{{ end }}{{ end }}'
    msgs = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    assert render_go_template(template, msgs) == "U: x\nA: y"
    with pytest.raises(ValueError):
        render_go_template("{{ .Messages | len }}", msgs)

