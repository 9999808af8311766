"""Playground: one base, adapters hot-swapped, streamed text, and prompt-set scoring."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
from pathlib import Path

import pytest
from _lib_fixtures import lib_adapter, lib_base, make_adapter, make_base, one_thread  # noqa: F401

from studio.core.errors import StudioError
from studio.core.library import registry
from studio.core.library.playground import GenerationSettings, Playground, PlaygroundHolder, adapter_ref
from studio.core.library.prompt_set import exact_match, load_prompt_set, run_columns

GREEDY = GenerationSettings(max_new_tokens=12)


@pytest.fixture(scope="module")
def second_adapter(tmp_path_factory, lib_base) -> Path:
    return make_adapter(lib_base, tmp_path_factory.mktemp("lib_run_b") / "adapter", seed=7, r=2)


@pytest.fixture(scope="module")
def playground(lib_base, one_thread) -> Playground:
    return Playground(lib_base)


@pytest.fixture()
def entries(lib_adapter, second_adapter):
    a = registry.register_adapter(lib_adapter, {"metrics": {"eval_loss": 1.5}}, name="alpha")
    b = registry.register_adapter(second_adapter, {"metrics": {"eval_loss": 1.2}}, name="beta")
    return a, b


def _plain_peft_greedy(base: Path, adapter: Path, ids: list[int], n: int) -> list[int]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(model, str(adapter)).eval()
    with torch.inference_mode():
        out = peft_model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                  max_new_tokens=n, do_sample=False)
    return out[0, len(ids):].tolist()


def test_hot_swap_keeps_the_one_base(playground, entries, monkeypatch):
    from transformers import AutoModelForCausalLM

    a, b = entries
    base_obj, base_id = playground.base_model, id(playground.base_model)
    before = playground.generate("What is the capital of France?", None, GREEDY).text

    def no_reload(*_a, **_k):
        raise AssertionError("the base model was loaded again")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", no_reload)
    out_a = playground.generate("What is the capital of France?", a, GREEDY).text
    out_b = playground.generate("What is the capital of France?", b, GREEDY).text
    again_a = playground.generate("What is the capital of France?", a, GREEDY).text
    after = playground.generate("What is the capital of France?", None, GREEDY).text

    assert playground.base_loads == 1
    assert id(playground.base_model) == base_id and playground.model.get_base_model() is base_obj
    assert {r.label for r in playground.loaded_adapters} == {"alpha", "beta"}
    assert out_a != before and out_b != before and out_a != out_b  # each column really differs
    assert again_a == out_a  # switching back gives the same answer
    assert after == before  # the base column is the untouched base, adapters disabled


def test_greedy_with_adapter_equals_plain_peft_model(playground, entries, lib_base, lib_adapter, second_adapter):
    a, b = entries
    prompt = "List three prime numbers."
    ids = playground.prompt_ids(prompt)
    playground.ensure_adapter(b)  # another adapter loaded (and used) first must not leak into A's output
    playground.generate(prompt, b, GREEDY)
    got = playground.generate(prompt, a, GREEDY)
    want = _plain_peft_greedy(lib_base, lib_adapter, ids, GREEDY.max_new_tokens)
    text = playground.tokenizer.decode(want, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert got.text == text
    assert got.new_tokens == len(want) and got.prompt_tokens == len(ids)


def test_tokens_stream_and_compose_the_answer(playground, entries):
    chunks: list[str] = []
    gen = playground.generate("Write a haiku about autumn leaves.", entries[0], GenerationSettings(max_new_tokens=16),
                              on_token=chunks.append)
    assert len(chunks) >= 2 and "".join(chunks) == gen.text
    assert gen.first_token_s is not None and 0 < gen.first_token_s <= gen.total_s
    assert gen.finish in ("eos", "length") and gen.tokens_per_s > 0


def test_stop_request_ends_generation_early(playground, entries):
    seen: list[str] = []
    gen = playground.generate("Tell a long story.", entries[1], GenerationSettings(max_new_tokens=200),
                              on_token=seen.append, should_stop=lambda: len(seen) >= 2)
    assert gen.finish == "stopped" and gen.new_tokens < 200


def test_same_seed_same_sample_across_calls(playground, entries):
    hot = GenerationSettings(temperature=1.5, top_p=0.95, max_new_tokens=16, seed=3)
    one = playground.generate("Name a colour.", entries[0], hot).text
    two = playground.generate("Name a colour.", entries[0], hot).text
    other = playground.generate("Name a colour.", entries[0], GenerationSettings(1.5, 0.95, 16, seed=4)).text
    assert one == two and one != other


@pytest.mark.parametrize("bad", [dict(temperature=-1), dict(top_p=0), dict(top_p=1.5), dict(max_new_tokens=0),
                                 dict(max_new_tokens=10**6), dict(seed=-1)])
def test_settings_are_checked(bad):
    with pytest.raises(StudioError):
        GenerationSettings(**bad).checked()


def test_answer_loss_matches_the_masked_training_loss(playground, entries, lib_base, lib_adapter):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from studio.core.datasets.formats import Example
    from studio.core.datasets.render import render_example

    loss_sum, n = playground.answer_loss("How many legs does a bee have?", '{"answer": 6}', entries[0])
    base_sum, base_n = playground.answer_loss("How many legs does a bee have?", '{"answer": 6}', None)
    assert n == base_n > 3 and loss_sum != base_sum
    tok = AutoTokenizer.from_pretrained(lib_base)
    r = render_example(Example(messages=(("user", "How many legs does a bee have?"), ("assistant", '{"answer": 6}'))),
                       tok, 512)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(lib_base, dtype=torch.float32),
                                      str(lib_adapter)).eval()
    with torch.inference_mode():
        hf = model(input_ids=torch.tensor([r.input_ids]), labels=torch.tensor([r.labels])).loss
    assert loss_sum / n == pytest.approx(float(hf), rel=1e-4)


def test_adapter_of_another_base_is_refused_clearly(playground, tmp_path, smol_tokenizer_dir):
    other = make_base(tmp_path / "wide", smol_tokenizer_dir, hidden=96, seed=2)
    stray = make_adapter(other, tmp_path / "stray" / "adapter")
    entry = registry.register_adapter(stray, {}, name="stray")
    assert not playground.fits(entry)
    with pytest.raises(StudioError, match="trained on wide"):
        playground.ensure_adapter(entry)
    # A bare folder has no recorded hash: the shape check speaks instead of a PEFT size-mismatch dump.
    data = json.loads((stray / "adapter_config.json").read_text())
    data["base_model_name_or_path"] = ""
    (stray / "adapter_config.json").write_text(json.dumps(data))
    with pytest.raises(StudioError, match="different model"):
        playground.ensure_adapter(stray)
    assert playground.base_loads == 1


def test_adapter_ref_of_folder_and_run_folder(lib_adapter):
    ref = adapter_ref(lib_adapter)
    assert ref.adapter_dir == lib_adapter.resolve() and "." not in ref.key
    assert adapter_ref(lib_adapter.parent).key == ref.key  # a run folder holding adapter/
    with pytest.raises(StudioError, match=r"adapter_config\.json"):
        adapter_ref(lib_adapter.parent.parent)


def test_holder_reuses_the_same_base(lib_base, one_thread):
    holder = PlaygroundHolder()
    first = holder.get(lib_base)
    assert holder.get(str(lib_base)) is first
    holder.release()
    assert holder.current is None


def test_base_folder_problems_are_clear(tmp_path):
    with pytest.raises(StudioError, match=r"config\.json"):
        Playground(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(StudioError, match="pickle"):
        Playground(tmp_path)


# ------------------------------------------------------------------ prompt sets


def _write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_prompt_set_formats(tmp_path):
    f = _write(tmp_path / "set.jsonl", [
        {"prompt": "Hi?", "expected": "Hello"},
        {"prompt": "No answer given"},
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "4"}]},
        {"instruction": "Say yes", "output": "yes"},
    ])
    items = load_prompt_set(f)
    assert [i.prompt for i in items] == ["Hi?", "No answer given", "2+2?", "Say yes"]
    assert [i.expected for i in items] == ["Hello", None, "4", "yes"]
    assert items[2].messages == (("system", "Be brief."), ("user", "2+2?"))
    assert [i.line for i in items] == [1, 2, 3, 4]


@pytest.mark.parametrize(("rows", "match", "line"), [
    ([{"prompt": "ok"}, "{not json"], "not valid JSON", 2),
    ([{"prompt": "ok"}, {"question": "x"}], "not a prompt", 2),
    ([{"prompt": ""}], "non-empty", 1),
    ([{"prompt": "x", "expected": 42}], "quote numbers", 1),
    ([{"text": "raw"}], "no prompt", 1),
    ([[1, 2]], "must be an object", 1),
    ([{"messages": [{"role": "assistant", "content": "hi"}]}], "no user turn", 1),
])
def test_bad_prompt_sets_name_file_and_line(tmp_path, rows, match, line):
    f = _write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(StudioError, match=match) as info:
        load_prompt_set(f)
    assert info.value.line == line and Path(info.value.path) == f


def test_empty_and_missing_prompt_sets(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(StudioError, match="empty"):
        load_prompt_set(empty)
    with pytest.raises(StudioError, match="not found"):
        load_prompt_set(tmp_path / "nope.jsonl")


def test_run_columns_scores_every_column(playground, entries, tmp_path):
    a, b = entries
    settings = GenerationSettings(max_new_tokens=8)
    base_answer = playground.generate("What is 2+2?", None, settings).text
    items = load_prompt_set(_write(tmp_path / "set.jsonl", [
        {"prompt": "What is 2+2?", "expected": base_answer},
        {"prompt": "Name a fruit.", "expected": "apple"},
        {"prompt": "Say hi."},
    ]))
    events = []
    report = run_columns(playground, items, [None, adapter_ref(a), adapter_ref(b)], settings, on_event=events.append)
    assert [c.label for c in report.columns] == ["base", "alpha", "beta"]
    base = report.columns[0]
    assert base.outputs[0] == base_answer and base.matches >= 1 and base.scored == 2
    assert base.exact_match == base.matches / 2
    for col, ref in zip(report.columns[1:], (a, b), strict=True):
        assert len(col.outputs) == 3 and col.scored == 2
        s1, n1 = playground.answer_loss("What is 2+2?", base_answer, ref)
        s2, n2 = playground.answer_loss("Name a fruit.", "apple", ref)
        assert col.eval_loss == pytest.approx((s1 + s2) / (n1 + n2))
    assert report.columns[1].outputs != base.outputs
    done = [e for e in events if e.kind == "done"]
    assert [(e.column, e.item) for e in done] == [(c, i) for c in range(3) for i in range(3)]
    streamed = "".join(e.text for e in events if e.kind == "chunk" and e.column == 1 and e.item == 0)
    assert streamed == report.columns[1].outputs[0]
    d = report.to_dict()
    assert json.loads(json.dumps(d))["columns"][0]["exact_match"] == base.exact_match


def test_exact_match_ignores_surrounding_whitespace():
    assert exact_match("  42\n", "42") and not exact_match("42.", "42")


def test_least_recently_used_adapter_is_unloaded_past_the_limit(lib_base, entries, one_thread):
    a, b = entries
    small = Playground(lib_base, max_loaded=1)
    first = small.generate("Hi", a, GREEDY).text
    small.generate("Hi", b, GREEDY)
    assert [r.label for r in small.loaded_adapters] == ["beta"]
    assert set(small.model.peft_config) == {adapter_ref(b).key}  # really gone from the model, not just the list
    assert small.generate("Hi", a, GREEDY).text == first  # loaded again on demand
    assert small.base_loads == 1


def test_layers_left_in_another_dtype_by_a_concurrent_load_are_cast_back(lib_base, monkeypatch, one_thread):
    """transformers flips torch's global default dtype while building a model; a second thread's load
    at the same moment can leave layers of ours in bf16 ("expected m1 and m2 to have the same dtype")."""
    import torch
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained

    def raced(*args, **kwargs):
        model = original(*args, **kwargs)
        model.model.layers[1].to(torch.bfloat16)
        return model

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", raced)
    pg = Playground(lib_base, dtype="fp32")
    assert {p.dtype for p in pg.base_model.parameters()} == {torch.float32}
    assert pg.generate("Hi", None, GREEDY).new_tokens > 0
