"""A full fine-tune is a first-class Library result: an entry of kind "full model" with lineage, that
survives its run folder, opens in the playground without an adapter, and exports without a merge
into a folder plain transformers loads, proven against the weights the run finished with."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
import os
import shutil

import pytest
from _lib_fixtures import one_thread  # noqa: F401
from _zoo import make_family

from studio.cli import main
from studio.core.library import registry


@pytest.fixture(scope="module")
def qwen2(tmp_path_factory):
    return make_family("qwen2", tmp_path_factory.mktemp("zoo") / "qwen2")


@pytest.fixture()
def full_run(qwen2, demo_train, tmp_path, one_thread, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--model", str(qwen2), "--dataset", str(demo_train), "--method", "full", "--max-steps", "2",
               "--batch", "2", "--seq", "64", "--lr", "0.01", "--out", str(run), "--json"])
    capsys.readouterr()
    assert rc == 0
    return run


def _logits(model_dir, prompt="How many legs does a bee have?"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                  tokenize=True, return_dict=False)
    with torch.inference_mode():
        return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)(torch.tensor([ids])).logits[0]


def test_full_run_is_a_library_entry_with_lineage_and_no_extra_disk(full_run, qwen2, capsys):
    (entry,) = registry.list_entries()
    assert entry.kind == registry.KIND_FULL and entry.is_full_model and entry.method == "full"
    assert entry.base_model == str(qwen2.resolve()) and entry.base_model_hash and entry.dataset_fingerprint
    assert entry.run_dir == str(full_run) and entry.metrics["steps"] == 2
    model = entry.files_dir
    assert (model / "config.json").is_file() and (model / "tokenizer.json").is_file()
    assert not (entry.path / registry.ADAPTER_SUBDIR).exists()
    # The weights are the run's own files (hard links), not a second copy of a possibly huge model.
    assert os.path.samefile(model / "model.safetensors", full_run / "model" / "model.safetensors")
    assert json.loads((model / "config.json").read_text())["use_cache"] is True
    assert main(["library", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    rows = listed if isinstance(listed, list) else listed.get("entries", listed)
    assert rows[0]["kind"] == "full model" and rows[0]["model_dir"] == str(model)


def test_export_loads_in_plain_transformers_and_matches_the_run(full_run, qwen2, tmp_path, capsys):
    import torch

    entry = registry.list_entries()[0]
    final = _logits(full_run / "model")
    shutil.rmtree(full_run)  # deleting the run must not lose the library's model
    out = tmp_path / "exported"
    assert main(["export", entry.name, "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "passed" and report["kind"] == "full", report
    assert report["equivalence"][0]["greedy_identical"]
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(os.listdir(out))
    assert torch.equal(_logits(out), final)  # as stored: the very weights the run finished with
    assert not torch.allclose(_logits(out), _logits(qwen2), atol=1e-4)  # and not the base's
    bf16 = tmp_path / "bf16"
    assert main(["export", entry.id, "--out", str(bf16), "--dtype", "bf16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "passed"
    assert json.loads((bf16 / "config.json").read_text())["dtype"] == "bfloat16"


def test_playground_uses_the_full_model_without_an_adapter(full_run, tmp_path):
    from studio.core.library.playground import GenerationSettings, Playground

    entry = registry.list_entries()[0]
    pg = Playground(entry.files_dir, device="cpu")
    out = pg.generate("How many legs does a bee have?", None, GenerationSettings(max_new_tokens=5, temperature=0.0))
    assert out.new_tokens >= 1 and pg.base_loads == 1 and not pg.loaded_adapters
