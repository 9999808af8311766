"""``studio estimate`` from a config file and from flags, JSON and table output, and errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from studio.cli import main
from studio.core.config import RunConfig, apply_overrides

LLAMA = dict(model_type="llama", hidden_size=64, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, vocab_size=500, max_position_embeddings=256)


@pytest.fixture
def model_dir(tmp_path) -> Path:
    d = tmp_path / "tiny-llama"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(LLAMA))
    return d


def run_json(capsys, argv: list[str]) -> tuple[int, dict]:
    code = main(argv)
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_from_config_file(tmp_path, model_dir, capsys):
    cfg = apply_overrides(RunConfig(), {"model.path": str(model_dir), "lora.r": 4,
                                        "lora.target_modules": ["q_proj", "v_proj"], "training.batch_size": 2})
    path = tmp_path / "run.yaml"
    cfg.save(path)
    code, data = run_json(capsys, ["estimate", str(path), "--json", "--device", "cpu", "--budget-gib", "64"])
    assert code == 0
    # q_proj 4*(64+64) + v_proj 4*(64+32), two layers
    assert data["trainable_params"] == 2 * (4 * 128 + 4 * 96)
    assert set(data["bytes"]) == {"weights", "adapter", "gradients", "optimizer", "activations", "logits", "overhead"}
    assert data["total_bytes"] == sum(data["bytes"].values())
    assert data["fits"] is True
    assert data["device"]["kind"] == "cpu" and data["device"]["bytes"] == 64 * 2**30
    assert isinstance(data["suggestions"], list)
    assert data["targets"] == ["q_proj", "v_proj"]


def test_flags_override_the_file(tmp_path, model_dir, capsys):
    path = tmp_path / "run.yaml"
    apply_overrides(RunConfig(), {"model.path": str(model_dir), "lora.r": 4}).save(path)
    _, base = run_json(capsys, ["estimate", str(path), "--json", "--device", "cuda"])
    _, over = run_json(capsys, ["estimate", str(path), "--json", "--device", "cuda", "--rank", "8",
                                "--targets", "q_proj", "--batch", "3", "--seq", "128", "--grad-ckpt",
                                "--method", "qlora"])
    assert over["trainable_params"] == 2 * 8 * (64 + 64)
    assert over["method"] == "qlora"
    assert base["trainable_params"] != over["trainable_params"]


def test_flags_only(model_dir, capsys):
    code, data = run_json(capsys, ["estimate", "--model", str(model_dir), "--method", "full", "--batch", "1",
                                   "--seq", "64", "--json", "--device", "cuda"])
    assert code in (0, 1)
    assert data["trainable_params"] == data["total_params"]
    assert data["device"]["kind"] == "cuda"


def test_does_not_fit_exits_1_with_suggestions(model_dir, capsys):
    code, data = run_json(capsys, ["estimate", "--model", str(model_dir), "--batch", "64", "--seq", "256",
                                   "--device", "cuda", "--budget-gib", "0.5", "--json"])
    assert code == 1 and data["fits"] is False
    kinds = {s["kind"] for s in data["suggestions"]}
    assert "grad_checkpointing" in kinds
    assert any(s["fits"] for s in data["suggestions"])
    # a suggestion that "fits" lands in the green zone: at most 90 % of the budget
    assert all(s["total_bytes"] <= 0.9 * 0.5 * 2**30 for s in data["suggestions"] if s["fits"])


def test_config_estimate_uses_its_dataset_and_shows_the_worst_case(model_dir, capsys, tmp_path, smol_tokenizer_dir):
    import shutil

    for f in smol_tokenizer_dir.iterdir():  # the dataset is counted with the model's tokenizer
        shutil.copy(f, model_dir / f.name)
    rows = tmp_path / "short.jsonl"
    rows.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"q{i}?"},
                                                       {"role": "assistant", "content": "a " * (i + 1)}]}) + "\n"
                            for i in range(12)), encoding="utf-8")
    cfg = tmp_path / "run.yaml"
    apply_overrides(RunConfig(), {"model.path": str(model_dir), "dataset.train": [str(rows)],
                                  "training.max_seq_len": 512, "training.batch_size": 4}).save(cfg)
    code, data = run_json(capsys, ["estimate", str(cfg), "--device", "cpu", "--budget-gib", "64", "--json"])
    assert code == 0 and data["basis"] == "dataset" and data["verdict"] == "green"
    assert data["batch_rows"] == 4 and data["batch_tokens"] < 512
    assert data["total_bytes"] < data["worst_case_total_bytes"]
    code, flags = run_json(capsys, ["estimate", "--model", str(model_dir), "--dataset", str(rows), "--seq", "512",
                                    "--device", "cpu", "--budget-gib", "64", "--json"])
    assert flags["batch_tokens"] == data["batch_tokens"] and flags["total_bytes"] == data["total_bytes"]
    main(["estimate", str(cfg), "--device", "cpu", "--budget-gib", "64"])
    out = capsys.readouterr().out
    assert "this dataset:" in out and "worst case, every row at max length:" in out


def test_human_table(model_dir, capsys):
    code = main(["estimate", "--model", str(model_dir), "--device", "cpu", "--budget-gib", "64"])
    out = capsys.readouterr().out
    assert code == 0
    for word in ("weights", "adapter", "gradients", "optimizer", "activations", "logits", "overhead", "total"):
        assert word in out
    assert "MiB" in out and "fits: " in out and "of 64.00 GiB" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("  ") and ln.strip().split()[0] in ("weights", "total")]
    assert len({len(r) for r in rows}) == 1  # aligned columns


def test_bad_model_folder_is_a_clear_error(tmp_path, capsys):
    code = main(["estimate", "--model", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert code == 2 and "Model folder not found" in err and "Traceback" not in err


def test_unknown_target_named(model_dir, capsys):
    code = main(["estimate", "--model", str(model_dir), "--targets", "q_proj,wq", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 2 and "'wq'" in data["error"]


def test_needs_config_or_model(capsys):
    assert main(["estimate"]) == 2
    assert "--model" in capsys.readouterr().err
