"""The memory estimate of preference runs: DPO and ORPO forward chosen and rejected in one batch, DPO
adds a reference forward, and the dataset's pairs give the widest batch the trainers pad to."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from _arch_fixtures import TINY, write_config

from studio.cli import main
from studio.core.config import RunConfig, apply_overrides
from studio.core.memory import DatasetLengths, batch_shape, count_lengths, estimate, objective_line
from studio.core.memory.constants import (
    DTYPE_BYTES,
    FP32,
    TRL_FUSED_HEAD_FWD_FP32_TILES,
    TRL_FUSED_HEAD_TOKEN_TILE,
    TRL_FUSED_HEAD_VOCAB_TILE,
)
from studio.core.memory.objective import reference_forward_bytes
from studio.core.memory.plan import make_plan
from studio.core.models.introspect import inspect_model

LENGTHS = DatasetLengths((31, 40, 57, 44, 62, 38, 50, 29, 61, 35), final=True)  # rows as the engine batches them


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("models") / "llama", TINY["llama"])


def cfg_for(path: Path, **over) -> RunConfig:
    # dropout 0: TRL turns dropout off in preference runs, so a supervised run compared with one must too
    return apply_overrides(RunConfig(), {"model.path": str(path), "lora.dropout": 0.0, "training.batch_size": 4,
                                         "training.max_seq_len": 128, **over})


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_dpo_exceeds_sft_by_the_modelled_terms(llama, device):
    info = inspect_model(llama)
    sft = estimate(info, cfg_for(llama), device_kind=device, lengths=LENGTHS)
    dpo = estimate(info, cfg_for(llama, objective="dpo"), device_kind=device, lengths=LENGTHS)
    # the same tokens as a supervised batch of twice the rows: chosen and rejected of 4 pairs
    sft8 = estimate(info, cfg_for(llama, **{"training.batch_size": 8}), device_kind=device, lengths=LENGTHS)
    assert (dpo.batch_rows, dpo.forward_rows, dpo.batch_tokens) == (4, 8, 62)
    assert batch_shape(dpo) == "4 pairs (8 rows) × 62 tokens"
    assert dpo.total_bytes > sft.total_bytes
    fwd, fwd8 = dpo.phase_breakdown["forward_end"], sft8.phase_breakdown["forward_end"]
    assert fwd["activations"] == fwd8["activations"] > sft.phase_breakdown["forward_end"]["activations"]
    # beside the activations only the head differs (TRL's fused log-prob head, no (tokens x vocab) logits)
    # and, on CPU, what the allocator keeps of the reference pass
    kept = dpo.overhead_parts.get("reference_pass_retention", 0)
    assert (kept > 0) == (device == "cpu")
    assert fwd["overhead"] - kept == fwd8["overhead"]
    assert {k: v for k, v in fwd.items() if k not in ("logits", "overhead")} == \
        {k: v for k, v in fwd8.items() if k not in ("logits", "overhead")}
    tokens = 8 * 62
    tile = min(tokens, TRL_FUSED_HEAD_TOKEN_TILE) * min(info.vocab_size, TRL_FUSED_HEAD_VOCAB_TILE)
    plan = make_plan(info, cfg_for(llama, objective="dpo"), device, LENGTHS)
    res = DTYPE_BYTES[plan.dtype]  # LoRA: the residual stream and the head compute in the base's dtype
    fold = 0 if device == "cuda" else TRL_FUSED_HEAD_FWD_FP32_TILES * FP32  # the Triton kernel folds in registers
    assert fwd["logits"] == tokens * info.hidden_size * res + tile * (res + fold)
    # the reference forward: its own term, counted in the backward phase on top of the saved activations
    ref = reference_forward_bytes(info, plan, res, res)
    assert dpo.objective_parts == {"reference_forward": ref, "rejected_activations": fwd["activations"] // 2}
    base = sum(v for k, v in fwd.items() if k not in ("activations", "logits"))
    assert dpo.phases["backward"] >= base + fwd["activations"] + ref
    assert "reference forward" in objective_line(dpo) and "2 × 4 rows × 62 tokens" in objective_line(dpo)
    assert objective_line(sft) == ""


def test_reference_forward_decides_the_peak_when_it_is_the_widest_term(llama):
    """With a small vocabulary next to a wide MLP, the no-grad pass's working set (one layer's MLP
    intermediates) outgrows the head's backward and a layer's backward workspace: the backward phase
    is then the reference forward on top of the saved activations."""
    info = inspect_model(llama)
    wide = replace(info, intermediate_size=40 * info.intermediate_size)
    dpo = estimate(wide, cfg_for(llama, objective="dpo"), device_kind="cpu", lengths=LENGTHS)
    bwd, fwd = dpo.phase_breakdown["backward"], dpo.phase_breakdown["forward_end"]
    assert bwd["logits"] == dpo.objective_parts["reference_forward"] > fwd["logits"]
    assert bwd["activations"] == fwd["activations"] and bwd["gradients"] == 0
    assert bwd["overhead"] == fwd["overhead"]  # not a layer's backward workspace


def test_orpo_has_no_reference_pass_and_keeps_full_logits(llama):
    info = inspect_model(llama)
    dpo = estimate(info, cfg_for(llama, objective="dpo"), device_kind="cpu", lengths=LENGTHS)
    orpo = estimate(info, cfg_for(llama, objective="orpo"), device_kind="cpu", lengths=LENGTHS)
    assert orpo.objective_parts["reference_forward"] == 0
    assert orpo.forward_rows == 8
    assert orpo.phase_breakdown["forward_end"]["activations"] == dpo.phase_breakdown["forward_end"]["activations"]
    # logits of both answers + the chosen half's copy and its fp32 log-softmax (fp32 model on CPU)
    full = 8 * 62 * info.vocab_size
    assert orpo.phase_breakdown["forward_end"]["logits"] == full * FP32 + 2 * (full // 2) * FP32
    line = objective_line(orpo)
    assert line.startswith("ORPO:") and "no reference forward" in line and "takes" not in line


def _pairs(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for prompt, chosen, rejected in rows:
            fh.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected}) + "\n")
    return path


def test_pair_estimate_uses_the_widest_pair_batch(tmp_path, smol_tokenizer_dir):
    """Counted like the dataset check counts sides, the lengths are the rows the engine batches
    (prompt + the longer answer), a pair whose answer is cut away is left out as training drops it,
    and the estimate's width is the widest row the trainer's collator pads both answers to."""
    from studio.core.datasets.tokenizer import load_tokenizer
    from studio.core.training.pair_data import build_pair_features

    word = "word "
    rows = [(f"question {i}?", word * c, word * r) for i, (c, r) in
            enumerate([(3, 9), (20, 4), (7, 7), (1, 30), (12, 2), (5, 16)])]
    rows.append(("a very long prompt " * 60 + "?", "yes", "no"))  # both answers start past max_seq_len
    data = _pairs(tmp_path / "pairs.jsonl", rows)
    cfg = cfg_for(smol_tokenizer_dir, objective="dpo", **{"dataset.train": [str(data)], "dataset.eval_ratio": 0.0,
                                                           "training.max_seq_len": 96, "training.batch_size": 3})
    tok = load_tokenizer(smol_tokenizer_dir)
    counted = count_lengths(cfg, tok)
    feats = build_pair_features(cfg, tok)
    assert feats.dropped == 1
    assert sorted(counted.lengths) == sorted(feats.row_lengths())
    info = inspect_model(write_config(tmp_path / "m", {**TINY["llama"], "vocab_size": len(tok)}))
    est = estimate(info, cfg, device_kind="cpu", lengths=counted)
    widest = max(feats.row_lengths())
    assert (est.batch_rows, est.forward_rows, est.batch_tokens, est.basis) == (3, 6, widest, "dataset")
    # both answers of the widest pair share one batch padded to its longer side (TRL's collator)
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    i = feats.row_lengths().index(widest)
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id or 0)([feats.train[i], feats.train[0]])
    assert tuple(batch["input_ids"].shape) == (4, widest)


def test_cli_estimate_takes_the_method_as_train_does(tmp_path, capsys):
    model = write_config(tmp_path / "tiny", TINY["llama"])
    base = ["estimate", "--model", str(model), "--device", "cpu", "--no-dataset", "--json", "--seq", "64"]
    assert main([*base, "--method", "lora"]) == 0
    sft = json.loads(capsys.readouterr().out)
    assert main([*base, "--method", "dpo"]) == 0
    dpo = json.loads(capsys.readouterr().out)
    assert (sft["objective"], dpo["objective"], dpo["method"]) == ("sft", "dpo", "lora")
    assert dpo["forward_rows"] == 2 * dpo["batch_rows"] and dpo["total_bytes"] > sft["total_bytes"]
    # a preference objective on a full fine-tuning config is refused as `studio train` refuses it
    cfg = apply_overrides(RunConfig(), {"model.path": str(model), "method": "full"})
    cfg.save(tmp_path / "full.yaml")
    assert main(["estimate", str(tmp_path / "full.yaml"), "--method", "orpo", "--no-dataset", "--json"]) == 2
    assert "use method lora or qlora" in json.loads(capsys.readouterr().out)["error"]
