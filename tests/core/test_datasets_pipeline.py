"""The Dataset pane's read job counts tokens while it reads, and ends with the same report as the
CLI; a model whose tokenizer cannot load still gives every other finding."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from studio.core.datasets import pipeline
from studio.core.datasets.pipeline import check_files


class _State:
    def __init__(self) -> None:
        self.partials: list = []

    def progress(self, frac: float, message: str = "") -> None:
        pass

    def partial(self, value) -> None:
        self.partials.append(value)

    def should_stop(self) -> bool:
        return False


def _dataset(path, n: int):
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(json.dumps({"instruction": "long " * (i % 90), "output": f"answer {i % 300}."}) + "\n")
    return path


def _spec(path, model: str) -> pipeline.LoadSpec:
    return pipeline.LoadSpec(train=(str(path),), eval=(), column_map=(), model_path=model, trust_remote_code=False,
                         chat_template="", max_len=64, eval_ratio=0.0, split_seed=42)


@pytest.mark.parametrize("worker", [False, True], ids=["thread", "worker-process"])
def test_read_counts_tokens_while_reading_and_matches_the_cli(tmp_path, smol_tokenizer_dir, monkeypatch, worker):
    from transformers import AutoTokenizer

    from studio.core.datasets import tokencheck

    monkeypatch.setattr(tokencheck, "worth_a_process", lambda **_: worker)
    path = _dataset(tmp_path / "d.jsonl", 4500)
    state = _State()
    loaded = pipeline.read(state, _spec(path, str(smol_tokenizer_dir)), pipeline.TokenizerCache())
    assert loaded is not None and loaded.report.token_checked and loaded.tokens_note == ""
    # The quick report (no token findings yet) was shown before the complete one.
    first = next(p for p in state.partials if isinstance(p, pipeline.Loaded))
    assert not first.report.token_checked
    cli = check_files(path, tokenizer=AutoTokenizer.from_pretrained(smol_tokenizer_dir), max_len=64)
    assert [(f.code, f.lines) for f in loaded.report.findings] == [(f.code, f.lines) for f in cli.findings]
    assert "tokens.no_trained_tokens" in {f.code for f in cli.findings}


def test_read_without_a_usable_tokenizer_still_reports(tmp_path):
    path = _dataset(tmp_path / "d.jsonl", 2500)
    loaded = pipeline.read(_State(), _spec(path, str(tmp_path / "no-such-model")), pipeline.TokenizerCache())
    assert loaded is not None and not loaded.report.token_checked
    assert loaded.tokens_note.startswith("Token checks are off")
    assert loaded.report.rows == 2500


def test_a_model_without_a_chat_template_is_named_and_a_choice_counts_tokens(tmp_path, tiny_model_dir):
    """A base model (no template) makes the check say so, naming the model and the choice, and holds
    the token checks; with a chat format chosen in the run config the rows are counted in that format."""
    import shutil

    from studio.core.datasets.templates import TEMPLATES

    base = tmp_path / "base-model"
    shutil.copytree(tiny_model_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    cfg_file = base / "tokenizer_config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg.pop("chat_template", None)
    cfg_file.write_text(json.dumps(cfg))
    data = tmp_path / "chat.jsonl"
    data.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello."}]}) + "\n")
    tokenizers = pipeline.TokenizerCache()

    def run(choice: str):
        spec = replace(_spec(data, str(base)), chat_template=choice)
        return pipeline.read(_State(), spec, tokenizers)

    plain = run("")
    codes = [f.code for f in plain.report.findings]
    assert "model.no_chat_template" in codes and "base-model" in plain.report.findings[0].message
    assert "pick one" in plain.tokens_note.lower()
    chosen = run("chatml")
    assert "model.no_chat_template" not in [f.code for f in chosen.report.findings]
    assert chosen.report.stats.get("tokens") and not chosen.tokens_note
    assert tokenizers.get(str(base), "check").chat_template is None  # the choice did not stick to the cache
    assert "im_start" in TEMPLATES["chatml"]
