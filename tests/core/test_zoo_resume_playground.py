"""Every zoo family through resume and the playground, as the bundled model goes through them.

Resume: a run stopped halfway and resumed ends with the losses and adapter weights of the run that
was never stopped, bit for bit (on CPU, where the kernels are deterministic). Playground: the adapter
that run leaves answers with the family's own chat template, stops on the family's end-of-turn token,
and says exactly what plain PEFT's greedy ``generate`` says. The adapter is trained on two short
question/answer rows until it has learned to answer and end its turn, so "stops" is measured on a
model that stops, not assumed."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _lib_fixtures import one_thread  # noqa: F401
from _zoo import FAMILIES, SPECS, zoo  # noqa: F401

from studio.core.config import RunConfig, apply_overrides
from studio.core.control import Control
from studio.core.training.engine import train

ROWS = (("What is the capital of France?", "Paris."), ("How many legs does a bee have?", "Six."))
STEPS = 16     # enough for every family's tiny model to learn to end its turn (measured: 12 is not, for Llama-3)
STOP_AT = 7    # not a multiple of save_steps: the stop itself must write the checkpoint the resume starts from
MAX_NEW = 12


@pytest.fixture(autouse=True)
def _threads(one_thread):
    return None


@pytest.fixture(scope="module")
def chat_rows(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rows") / "two_questions.jsonl"
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": q},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for q, a in ROWS), encoding="utf-8")
    return path


def _cfg(model: Path, data: Path) -> RunConfig:
    return apply_overrides(RunConfig(), {
        "model.path": str(model), "dataset.train": [str(data)], "dataset.eval": [], "dataset.eval_ratio": 0.0,
        "lora.target_modules": ["all-linear"], "lora.r": 4, "lora.alpha": 8, "lora.dropout": 0.1,
        "training.max_steps": STEPS, "training.batch_size": 2, "training.max_seq_len": 64,
        "training.eval_steps": 0, "training.save_steps": 4, "training.lr": 2e-2, "training.logging_steps": 1,
        "training.device": "cpu",
    })


@pytest.fixture(scope="module")
def reference(zoo, chat_rows, tmp_path_factory):
    """``reference(family)``: (step events, result) of the uninterrupted run, trained once per family.
    Called from inside a test, so it trains under that test's STUDIO_HOME, never the user's."""
    done: dict[str, tuple[list, object]] = {}

    def get(family: str):
        if family not in done:
            events: list = []
            result = train(_cfg(zoo(family), chat_rows), run_dir=tmp_path_factory.mktemp(f"ref-{family}") / "run",
                           emit=events.append)
            assert result.status == "completed" and result.step == STEPS, result.reason
            done[family] = ([e for e in events if e.kind == "step"], result)
        return done[family]

    return get


def _tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter_model.safetensors"))


# ---------------------------------------------------------------- resume


@pytest.mark.parametrize("family", FAMILIES)
def test_stop_and_resume_ends_bit_identical(zoo, chat_rows, reference, family, tmp_path):
    ref_steps, ref_result = reference(family)
    cfg, run_dir = _cfg(zoo(family), chat_rows), tmp_path / "run"
    control = Control()

    def stop_at(ev):
        if ev.kind == "step" and ev.step == STOP_AT:
            control.request_stop()

    stopped = train(cfg, run_dir=run_dir, emit=stop_at, control=control)
    assert stopped.status == "stopped" and stopped.step == STOP_AT, stopped.reason
    events: list = []
    resumed = train(cfg, run_dir=run_dir, emit=events.append, resume=True)
    assert resumed.status == "completed" and resumed.step == STEPS, resumed.reason
    assert next(e for e in events if e.kind == "run_started").resumed_from_step == STOP_AT
    want = {e.step: e.loss for e in ref_steps}
    got = {e.step: e.loss for e in events if e.kind == "step"}
    assert sorted(got) == list(range(STOP_AT + 1, STEPS + 1))
    assert got == {s: want[s] for s in got}, family  # the same floats, not merely close ones
    assert len(set(want.values())) > 1  # the losses moved: equal curves of a frozen model would prove nothing
    ref_w, new_w = _tensors(ref_result.adapter_dir), _tensors(resumed.adapter_dir)
    assert ref_w.keys() == new_w.keys() and ref_w
    assert all(bool((ref_w[k] == new_w[k]).all()) for k in ref_w), family


# ---------------------------------------------------------------- playground


def _stop_ids(tok, family: str) -> list[int]:
    spec = SPECS[family]
    return sorted({tok.convert_tokens_to_ids(spec.eos), tok.convert_tokens_to_ids(spec.end_of_turn)})


def _plain_greedy(model_dir: Path, adapter_dir: Path | None, family: str, question: str) -> list[int]:
    """What plain transformers (+ PEFT) generate greedily from the family's chat template, stopping on
    the family's eos and end-of-turn: nothing of the studio's is involved."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    ids = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                  tokenize=True, return_dict=False)
    with torch.inference_mode():
        out = model.eval().generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                    max_new_tokens=MAX_NEW, do_sample=False, eos_token_id=_stop_ids(tok, family),
                                    pad_token_id=tok.pad_token_id)
    return [int(t) for t in out[0, len(ids):]]


@pytest.mark.parametrize("family", FAMILIES)
def test_playground_answers_in_the_family_template_like_plain_peft(zoo, reference, family):
    from transformers import AutoTokenizer

    from studio.core.library.playground import GenerationSettings, Playground

    _, result = reference(family)
    base = zoo(family)
    spec = SPECS[family]
    tok = AutoTokenizer.from_pretrained(base)
    # The adapter carries the family's template, and the playground's prompt is that template's rendering.
    assert (result.adapter_dir / "chat_template.jinja").read_text(encoding="utf-8") == spec.template
    question = ROWS[0][0]
    play = Playground(base)
    want_prompt = tok.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                          tokenize=True, return_dict=False)
    assert play.prompt_ids(question, result.adapter_dir) == want_prompt == play.prompt_ids(question)

    streamed: list[str] = []
    tuned = play.generate(question, result.adapter_dir, GenerationSettings(max_new_tokens=MAX_NEW),
                          on_token=streamed.append)
    plain = _plain_greedy(base, result.adapter_dir, family, question)
    # It learned to end its turn, and the playground stopped there, on the family's own token.
    assert plain[-1] in _stop_ids(tok, family) and len(plain) < MAX_NEW, tok.convert_ids_to_tokens(plain)
    assert tuned.finish == "eos" and tuned.new_tokens == len(plain)
    assert tuned.text == tok.decode(plain, skip_special_tokens=True) == "".join(streamed)
    # Every family but Phi-3 learns its answer and end-of-turn within STEPS. Phi-3's template trains one token
    # past the turn ('<|end|>', '\n', then '<|endoftext|>'); on a model this small, "'\n' is followed by
    # <|endoftext|>" beats "'<|assistant|>\n' is followed by the answer", so it ends at once, on its eos.
    if family != "phi3":
        assert tuned.text.strip(), tuned
        assert plain[-1] == tok.convert_tokens_to_ids(spec.end_of_turn), tok.convert_ids_to_tokens(plain)

    untuned = play.generate(question, None, GenerationSettings(max_new_tokens=MAX_NEW))
    base_plain = _plain_greedy(base, None, family, question)
    assert untuned.new_tokens == len(base_plain) and untuned.text == tok.decode(base_plain, skip_special_tokens=True)
    assert base_plain != plain  # the base column is the base: the adapter is off there
    assert play.base_loads == 1


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_playground_stops_on_the_turn_end_the_generation_config_lacks(zoo, reference, family, tmp_path):
    """Base models often stop only on their end of document (Gemma 2's ``<eos>``, Llama-3.2's
    ``<|end_of_text|>``) while their template ends a turn with another token; the playground must stop
    on the template's token anyway, or an adapter that learned to stop rambles to the token limit."""
    from transformers import AutoTokenizer, GenerationConfig

    from studio.core.library.playground import GenerationSettings, Playground

    _, result = reference(family)
    base = tmp_path / family
    shutil.copytree(zoo(family), base)
    tok = AutoTokenizer.from_pretrained(base)
    spec = SPECS[family]
    gen = GenerationConfig.from_pretrained(base)
    gen.eos_token_id = tok.convert_tokens_to_ids(spec.eos)
    assert gen.eos_token_id != tok.convert_tokens_to_ids(spec.end_of_turn)
    gen.save_pretrained(base)
    play = Playground(base)
    question = ROWS[0][0]
    got = play.generate(question, result.adapter_dir, GenerationSettings(max_new_tokens=MAX_NEW))
    want = _plain_greedy(zoo(family), result.adapter_dir, family, question)  # stops on both, as the family does
    assert got.finish == "eos" and got.new_tokens == len(want) < MAX_NEW
    assert got.text == tok.decode(want, skip_special_tokens=True)
