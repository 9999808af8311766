"""Chat templates are a choice for base models, never a silent ChatML; and "will it stop?" checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from studio.cli import main as cli_main
from studio.core.config import RunConfig, apply_overrides
from studio.core.datasets.formats import Example
from studio.core.datasets.render import render_example
from studio.core.datasets.stopcheck import model_findings
from studio.core.datasets.templates import TEMPLATES, apply_choice
from studio.core.errors import StudioError


def _strip_template(src: Path, out: Path) -> Path:
    """A copy of ``src`` as a base model: the same weights and tokenizer, no chat template."""
    shutil.copytree(src, out)
    (out / "chat_template.jinja").unlink(missing_ok=True)
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("chat_template", None)
    cfg_path.write_text(json.dumps(cfg))
    return out


@pytest.fixture(scope="module")
def base_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    return _strip_template(tiny_model_dir, tmp_path_factory.mktemp("base") / "tiny-base")


def _tok(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


CHAT = Example(messages=(("user", "What is two plus two?"), ("assistant", "Four.")))


def test_base_model_is_never_rendered_with_a_silent_default(base_model_dir):
    tok = _tok(base_model_dir)
    assert not tok.chat_template
    with pytest.raises(StudioError, match="no chat template"):
        render_example(CHAT, tok, 64)


def test_model_findings_name_the_folder_and_the_choice(base_model_dir):
    found = model_findings(_tok(base_model_dir), base_model_dir)
    assert [f.code for f in found] == ["model.no_chat_template"]
    assert found[0].severity == "error"
    assert "tiny-base" in found[0].message
    for label in ("ChatML", "Llama-3", "Gemma", "Mistral", "Alpaca"):
        assert label in found[0].message


@pytest.mark.parametrize("choice, marker", [("chatml", "<|im_start|>assistant\n"), ("llama3", "<|start_header_id|>"),
                                            ("gemma", "<start_of_turn>model\n"), ("mistral", "[INST] "),
                                            ("alpaca", "### Response:\n")])
def test_the_choice_reaches_the_rendered_text(base_model_dir, choice, marker):
    tok = _tok(base_model_dir)
    apply_choice(tok, choice)
    rendered = render_example(CHAT, tok, 128)
    assert marker in rendered.text
    assert rendered.trained_tokens > 0


def test_validate_cli_says_so_and_takes_template(base_model_dir, demo_train, capsys):
    rc = cli_main(["validate", str(demo_train), "--model", str(base_model_dir), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    codes = [f["code"] for f in out["findings"]]
    assert "model.no_chat_template" in codes
    rc = cli_main(["validate", str(demo_train), "--model", str(base_model_dir), "--template", "alpaca", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert "model.no_chat_template" not in [f["code"] for f in out["findings"]]
    assert out["stats"]["tokens"] is not None   # the token checks ran with the chosen format


def test_chatml_on_a_base_whose_eos_is_not_im_end_warns_it_will_not_stop(base_model_dir, tmp_path):
    model = tmp_path / "other-eos"
    shutil.copytree(base_model_dir, model)
    tok = _tok(model)
    # Generation stops on a token that ChatML turns never end with.
    (model / "generation_config.json").write_text(json.dumps({"eos_token_id": tok.bos_token_id or 0}))
    found = model_findings(tok, model, "chatml")
    assert [f.code for f in found] == ["model.stop_not_eos"]
    assert "<|im_end|>" in found[0].message


def test_end_of_turn_without_loss_warns(base_model_dir):
    tok = _tok(base_model_dir)
    # A template that puts nothing after the answer: there is no end-of-turn token to learn.
    tok.chat_template = ("{%- for m in messages %}{{- m['role'] + ': ' + m['content'] }}{%- endfor %}"
                         "{%- if add_generation_prompt %}{{- 'assistant: ' }}{%- endif %}")
    assert [f.code for f in model_findings(tok, base_model_dir)] == ["model.stop_not_trained"]


def test_models_own_template_that_ends_on_eos_is_clean(tiny_model_dir):
    assert model_findings(_tok(tiny_model_dir), tiny_model_dir) == []


def test_unknown_choice_is_refused(base_model_dir):
    with pytest.raises(StudioError, match="Unknown chat template"):
        apply_choice(_tok(base_model_dir), "vicuna")


def test_training_uses_the_choice_and_the_adapter_carries_it(base_model_dir, demo_train, tmp_path):
    from studio.core.training.engine import train

    cfg = apply_overrides(RunConfig(), {
        "model.path": str(base_model_dir), "model.chat_template": "gemma", "dataset.train": [str(demo_train)],
        "training.max_steps": 1, "training.batch_size": 2, "training.max_seq_len": 64,
    })
    result = train(cfg, run_dir=tmp_path / "run")
    saved = Path(result.adapter_dir) / "chat_template.jinja"
    assert saved.read_text() == TEMPLATES["gemma"]
    tok = _tok(result.adapter_dir)
    assert "<start_of_turn>model\n" in tok.apply_chat_template([{"role": "user", "content": "hi"}],
                                                               tokenize=False, add_generation_prompt=True)


def test_training_a_base_model_without_a_choice_fails_with_the_choice(base_model_dir, demo_train, tmp_path):
    from studio.core.training.engine import train

    cfg = apply_overrides(RunConfig(), {
        "model.path": str(base_model_dir), "dataset.train": [str(demo_train)],
        "training.max_steps": 1, "training.batch_size": 2, "training.max_seq_len": 64,
    })
    with pytest.raises(StudioError, match=r"no chat template.*ChatML \(chatml\), Llama-3"):
        train(cfg, run_dir=tmp_path / "run")


def test_eos_share_counts_answers_that_stop_before_the_limit():
    from studio.core.library.playground import Generation
    from studio.core.library.prompt_set import ColumnResult
    from studio.core.library.stopping import eos_share

    def gen(finish: str) -> Generation:
        return Generation(text="x", new_tokens=3, prompt_tokens=5, first_token_s=0.1, total_s=0.2, finish=finish)

    assert eos_share([gen("eos"), gen("length"), gen("eos"), gen("stopped")]) == pytest.approx(2 / 3)
    assert eos_share([gen("stopped")]) is None
    col = ColumnResult(label="a", adapter_dir=None, generations=[gen("length"), gen("eos")])
    assert col.to_dict()["stop_share"] == 0.5


def test_playground_uses_the_adapters_chosen_template_on_a_base_model(base_model_dir, demo_train, tmp_path):
    from studio.core.library.playground import GenerationSettings, Playground
    from studio.core.training.engine import train

    cfg = apply_overrides(RunConfig(), {
        "model.path": str(base_model_dir), "model.chat_template": "alpaca", "dataset.train": [str(demo_train)],
        "training.max_steps": 1, "training.batch_size": 2, "training.max_seq_len": 64,
    })
    adapter = train(cfg, run_dir=tmp_path / "run").adapter_dir
    pg = Playground(base_model_dir, device="cpu")
    with pytest.raises(StudioError, match="no chat template"):
        pg.prompt_ids("hi")   # the base alone has no chat format
    ids = pg.prompt_ids("hi", adapter)
    assert pg.tokenizer.decode(ids).endswith("### Response:\n")
    out = pg.generate("hi", adapter, GenerationSettings(max_new_tokens=4))
    assert out.finish in ("eos", "length")
