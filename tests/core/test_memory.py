"""The memory estimator against ground truth: PEFT's own parameter counts, meta-device byte
counts, bitsandbytes' real 4-bit and 8-bit storage, and autograd's saved tensors."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from _arch_fixtures import TINY, write_config

from studio.core.config import RunConfig, apply_overrides
from studio.core.errors import StudioError
from studio.core.memory import (
    GREEN_SHARE,
    DatasetLengths,
    GiB,
    adam8_bytes,
    calibrate,
    estimate,
    green_limit,
    nf4_bytes,
    suggestions,
    verdict,
    versus_full,
    widest_batch,
)
from studio.core.models.device import probe_device
from studio.core.models.introspect import inspect_model

PRESETS = {
    "llama": {"q,v": ["q,v"], "attn": ["all attention"], "all": ["all-linear"]},
    "qwen2": {"q,v": ["q,v"], "attn": ["all attention"], "all": ["all-linear"]},
    "mistral": {"q,v": ["q,v"], "attn": ["all attention"], "all": ["all-linear"]},
    "gpt2": {"q,v": ["c_attn"], "attn": ["c_attn", "c_proj"], "all": ["all-linear"]},
    "tied": {"q,v": ["q,v"], "attn": ["all attention"], "all": ["all-linear"]},
}
PEFT_TARGETS = {"q,v": ["q_proj", "v_proj"], "all attention": ["q_proj", "k_proj", "v_proj", "o_proj"],
                "all-linear": "all-linear"}


def cfg_for(path: Path, **over) -> RunConfig:
    return apply_overrides(RunConfig(), {"model.path": str(path), **over})


def meta_model(name: str, dtype=None):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    d = dict(TINY[name])
    d.pop("dtype", None)
    cfg = AutoConfig.for_model(d.pop("model_type"), **d)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg, dtype=dtype) if dtype else AutoModelForCausalLM.from_config(cfg)


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {name: write_config(root / name, data) for name, data in TINY.items()}


@pytest.mark.parametrize("dora", [False, True], ids=["lora", "dora"])
@pytest.mark.parametrize("preset", ["q,v", "attn", "all"])
@pytest.mark.parametrize("name", sorted(TINY))
def test_trainable_params_equal_peft(tiny_dirs, name, preset, dora):
    from peft import LoraConfig, get_peft_model

    targets = PRESETS[name][preset]
    info = inspect_model(tiny_dirs[name])
    est = estimate(info, cfg_for(tiny_dirs[name], **{"lora.target_modules": targets, "lora.r": 4,
                                                     "lora.use_dora": dora}), device_kind="cpu")
    peft_targets = PEFT_TARGETS.get(targets[0], targets) if len(targets) == 1 else targets
    lcfg = LoraConfig(r=4, target_modules=peft_targets, use_dora=dora, fan_in_fan_out=(name == "gpt2"))
    trainable, total = get_peft_model(meta_model(name), lcfg).get_nb_trainable_parameters()
    assert est.trainable_params == trainable
    assert est.total_params == total
    assert est.trainable_pct == pytest.approx(100 * trainable / total)


@pytest.mark.parametrize("name", ["llama", "gpt2", "tied"])
def test_full_finetune_trains_everything(tiny_dirs, name):
    info = inspect_model(tiny_dirs[name])
    est = estimate(info, cfg_for(tiny_dirs[name], method="full"), device_kind="cpu")
    assert est.trainable_params == est.total_params == sum(p.numel() for p in meta_model(name).parameters())


@pytest.mark.parametrize(("device", "dtype", "torch_dtype"), [
    ("cpu", "auto", "float32"), ("cuda", "auto", "bfloat16"), ("cpu", "float16", "float16"),
])
@pytest.mark.parametrize("name", ["llama", "tied"])
def test_weight_bytes_equal_meta_count(tiny_dirs, name, device, dtype, torch_dtype):
    import torch

    model = meta_model(name, dtype=getattr(torch, torch_dtype))
    expected = sum(p.numel() * p.element_size() for p in model.parameters())
    for method in ("full", "lora"):
        est = estimate(inspect_model(tiny_dirs[name]), cfg_for(tiny_dirs[name], method=method, **{"model.dtype": dtype}),
                       device_kind=device)
        assert est.phase_breakdown["optimizer"]["weights"] == expected
        assert est.dtype == torch_dtype


def _quant_state_bytes(q, st) -> int:
    def nb(t):
        return t.numel() * t.element_size()

    total = nb(q) + nb(st.absmax) + nb(st.code)
    if st.nested:
        total += nb(st.state2.absmax) + nb(st.state2.code) + nb(st.offset)
    return total


@pytest.mark.parametrize("double_quant", [False, True])
@pytest.mark.parametrize("shape", [(64, 64), (96, 160), (7, 33), (512, 768)])
def test_nf4_bytes_match_bitsandbytes(shape, double_quant):
    import bitsandbytes.functional as F
    import torch

    w = torch.randn(*shape, dtype=torch.bfloat16)
    q, st = F.quantize_4bit(w, blocksize=64, compress_statistics=double_quant, quant_type="nf4")
    assert nf4_bytes(w.numel(), double_quant=double_quant) == _quant_state_bytes(q, st)


def test_nf4_is_about_half_a_byte_per_param():
    n = 4096 * 4096
    assert nf4_bytes(n, double_quant=False) / n == pytest.approx(0.5 + 4 / 64, rel=1e-3)
    assert nf4_bytes(n, double_quant=True) / n == pytest.approx(0.5 + 1 / 64 + 4 / (64 * 256), rel=1e-3)


def test_qlora_weight_bytes_equal_a_real_4bit_load(tmp_path):
    """Only Linear weights are quantised; embeddings, head and norms end up fp32."""
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    src = write_config(tmp_path / "cfg", TINY["llama"])
    real = AutoModelForCausalLM.from_config(inspect_model_cfg(src)).to(torch.bfloat16)
    real.save_pretrained(tmp_path / "model")
    for dq in (False, True):
        model = AutoModelForCausalLM.from_pretrained(
            tmp_path / "model", dtype=torch.bfloat16,
            quantization_config=BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                   bnb_4bit_use_double_quant=dq,
                                                   bnb_4bit_compute_dtype=torch.bfloat16))
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        measured = 0
        for p in model.parameters():
            if type(p).__name__ == "Params4bit":
                measured += _quant_state_bytes(p.data, p.quant_state)
            else:
                assert p.dtype == torch.float32
                measured += p.numel() * p.element_size()
        info = inspect_model(tmp_path / "model")
        est = estimate(info, cfg_for(tmp_path / "model", method="qlora", **{"quant.double_quant": dq}),
                       device_kind="cuda")
        assert est.phase_breakdown["optimizer"]["weights"] == measured


def inspect_model_cfg(folder: Path):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(folder)


def test_adam8_bytes_match_bitsandbytes():
    import bitsandbytes as bnb
    import torch

    params = [torch.nn.Parameter(torch.randn(300, 100)), torch.nn.Parameter(torch.randn(50)),
              torch.nn.Parameter(torch.randn(4096))]
    opt = bnb.optim.AdamW8bit(params, lr=1e-3)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    for p in params:
        measured = sum(v.numel() * v.element_size() for v in opt.state[p].values() if torch.is_tensor(v) and v.dim())
        assert adam8_bytes(p.numel()) == measured


# ---- activations: the per-layer formula against what autograd really keeps ---------------------

ACT_MODEL = dict(model_type="llama", hidden_size=64, intermediate_size=176, num_hidden_layers=3,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=128, max_position_embeddings=256)


def saved_activation_bytes(method, targets=None, dropout=0.0, dtype="float32", gc=False, attn="sdpa",
                           batch=2, seq=48) -> int:
    """Bytes of tensors autograd keeps for backward (parameters excluded), minus the log-softmax,
    which the estimator books under logits."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    d = dict(ACT_MODEL)
    cfg = AutoConfig.for_model(d.pop("model_type"), attn_implementation=attn, **d)
    model = AutoModelForCausalLM.from_config(cfg).to(getattr(torch, dtype))
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules=targets, lora_dropout=dropout))
    if gc:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if method == "lora":
            model.enable_input_require_grads()
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}
    vocab = ACT_MODEL["vocab_size"]

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in params and not (t.dim() == 2 and t.shape[-1] == vocab and t.dtype == torch.float32):
            seen[st.data_ptr()] = st.nbytes()
        return t

    ids = torch.randint(0, vocab, (batch, seq))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, labels=ids)
    return sum(seen.values())


@pytest.mark.parametrize(("label", "kwargs", "over"), [
    ("full", dict(method="full"), {"method": "full"}),
    ("full bf16", dict(method="full", dtype="bfloat16"), {"method": "full", "model.dtype": "bfloat16"}),
    ("full eager", dict(method="full", attn="eager"), {"method": "full"}),
    ("full ckpt", dict(method="full", gc=True), {"method": "full", "training.grad_checkpointing": True}),
    ("lora q,v", dict(method="lora", targets=["q_proj", "v_proj"]),
     {"lora.target_modules": ["q,v"], "lora.dropout": 0.0}),
    ("lora all", dict(method="lora", targets="all-linear"), {"lora.dropout": 0.0}),
    ("lora all dropout", dict(method="lora", targets="all-linear", dropout=0.1), {"lora.dropout": 0.1}),
    ("lora bf16 base", dict(method="lora", targets="all-linear", dtype="bfloat16"),
     {"lora.dropout": 0.0, "model.dtype": "bfloat16"}),
    ("lora ckpt", dict(method="lora", targets="all-linear", gc=True),
     {"lora.dropout": 0.0, "training.grad_checkpointing": True}),
])
def test_activation_bytes_match_autograd(tmp_path, label, kwargs, over):
    folder = write_config(tmp_path / "m", ACT_MODEL)
    info = inspect_model(folder)
    if kwargs.get("attn") == "eager":
        info = dataclasses.replace(info, attn_implementation="eager")
    cfg = cfg_for(folder, **{"lora.r": 4, "training.batch_size": 2, "training.max_seq_len": 48, **over})
    est = estimate(info, cfg, device_kind="cpu").phase_breakdown["forward_end"]["activations"]
    measured = saved_activation_bytes(**kwargs)
    assert est == pytest.approx(measured, rel=0.08), label


# ---- phases, budgets, suggestions ---------------------------------------------------------------

LLAMA_70B = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8192,
    "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64, "num_key_value_heads": 8,
    "vocab_size": 128256, "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}


@pytest.fixture(scope="module")
def llama70b(tmp_path_factory):
    folder = write_config(tmp_path_factory.mktemp("m70b"), LLAMA_70B)
    return folder, inspect_model(folder)


def test_70b_parameter_count(llama70b):
    _, info = llama70b
    assert info.total_params == 70_553_706_496  # Llama-3-70B
    assert info.num_layers == 80 and info.num_kv_heads == 8


def test_peak_is_a_max_over_phases_not_a_sum(llama70b):
    folder, info = llama70b
    est = estimate(info, cfg_for(folder, method="full", **{"training.batch_size": 2}), device_kind="cuda")
    assert est.total_bytes == max(est.phases.values())
    assert sum(est.bytes.values()) == est.total_bytes
    assert est.peak_phase in est.phases
    # gradients and activations never both reach their maximum: the peak is below the plain sum
    # of every part at its largest
    parts = est.phase_breakdown.values()
    plain_sum = sum(max(b[k] for b in parts) for k in est.bytes)
    assert est.phase_breakdown["optimizer"]["gradients"] > 0 and est.phase_breakdown["forward_end"]["activations"] > 0
    assert est.total_bytes < plain_sum
    # full bf16 AdamW: weights 2 + gradients 2 + states 4 bytes per parameter
    assert est.phase_breakdown["optimizer"]["optimizer"] == info.total_params * 4
    lora = estimate(info, cfg_for(folder, method="lora", **{"training.batch_size": 2}), device_kind="cuda")
    qlora = estimate(info, cfg_for(folder, method="qlora", **{"training.batch_size": 2}), device_kind="cuda")
    assert est.total_bytes > lora.total_bytes > qlora.total_bytes


def test_70b_on_24gb_does_not_fit_and_says_what_helps(llama70b):
    folder, info = llama70b
    budget = 24 * 10**9
    cfg = cfg_for(folder, method="lora", **{"training.batch_size": 1, "training.max_seq_len": 2048})
    est = estimate(info, cfg, device_kind="cuda")
    assert not est.fits(budget)
    assert est.phase_breakdown["optimizer"]["weights"] > 130 * GiB  # 70.6B x 2 bytes
    kinds = {s.kind: s for s in suggestions(info, cfg, budget, device_kind="cuda")}
    assert {"qlora", "grad_checkpointing", "qlora+grad_checkpointing"} <= set(kinds)
    q = kinds["qlora"].estimate
    assert q.phase_breakdown["optimizer"]["weights"] < est.phase_breakdown["optimizer"]["weights"] / 3
    assert kinds["qlora+grad_checkpointing"].estimate.total_bytes < q.total_bytes
    assert not any(s.fits for s in kinds.values())  # 35 GB of 4-bit weights alone exceed 24 GB
    assert kinds["qlora"].overrides == {"method": "qlora"}


def test_largest_batch_and_seq_fit_and_one_more_does_not(tiny_dirs):
    # "Fits" is the green zone: a suggestion lands at or under 90 % of the budget, never above.
    folder = tiny_dirs["llama"]
    info = inspect_model(folder)
    cfg = cfg_for(folder, **{"training.batch_size": 1, "training.max_seq_len": 64})
    budget = int((estimate(info, cfg, device_kind="cuda").total_bytes + 30 * 2**20) / GREEN_SHARE)
    green = green_limit(budget)
    found = {s.kind: s for s in suggestions(info, cfg, budget, device_kind="cuda")}

    def total(**over) -> int:
        return estimate(info, apply_overrides(cfg, over), device_kind="cuda").total_bytes

    b = found["batch_size"].overrides["training.batch_size"]
    assert found["batch_size"].fits and b > 1
    assert total(**{"training.batch_size": b}) <= green < total(**{"training.batch_size": b + 1})
    assert verdict(found["batch_size"].estimate.total_bytes, budget) == "green"
    s = found["max_seq_len"].overrides["training.max_seq_len"]
    assert s > 64 and found["max_seq_len"].fits
    if s < info.context_length:  # the search stops at the model's context length
        assert total(**{"training.max_seq_len": s + 1}) > green


def test_levers_move_memory_the_right_way(tiny_dirs):
    folder = tiny_dirs["qwen2"]
    info = inspect_model(folder)
    base = cfg_for(folder, **{"training.batch_size": 4, "training.max_seq_len": 256})

    def total(**over):
        return estimate(info, apply_overrides(base, over), device_kind="cuda").total_bytes

    ref = total()
    assert total(**{"training.grad_checkpointing": True}) < ref
    assert total(**{"training.batch_size": 8}) > ref
    assert total(**{"lora.r": 64}) > ref
    assert total(method="full", **{"training.optimizer": "adamw_8bit"}) < total(method="full")
    assert total(**{"lora.use_dora": True}) > ref


def test_unknown_target_is_a_studio_error(tiny_dirs):
    info = inspect_model(tiny_dirs["gpt2"])
    with pytest.raises(StudioError, match="q_proj"):
        estimate(info, cfg_for(tiny_dirs["gpt2"], **{"lora.target_modules": ["q_proj"]}), device_kind="cpu")


def test_estimate_is_fast_enough_for_a_slider(llama70b):
    folder, info = llama70b
    cfg = cfg_for(folder, method="qlora", **{"lora.use_dora": True})
    estimate(info, cfg)
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        estimate(info, cfg)
    assert (time.perf_counter() - t0) / n < 0.005


def test_estimate_serialises(tiny_dirs):
    est = estimate(inspect_model(tiny_dirs["llama"]), cfg_for(tiny_dirs["llama"]), device_kind="cpu")
    data = json.loads(json.dumps(est.to_dict()))
    assert set(data["bytes"]) == {"weights", "adapter", "gradients", "optimizer", "activations", "logits", "overhead"}
    assert data["total_bytes"] == est.total_bytes
    assert est.adapter_file_bytes >= est.trainable_params * 4


def test_probe_device_reports_this_machine():
    device = probe_device()
    assert device.kind in ("cuda", "cpu") and device.name and device.memory_bytes > 2**30
    assert device.ram_bytes > 2**30 and device.threads >= 1
    assert "(system RAM)" not in device.name  # the facts; each screen words them itself
    if device.kind == "cpu":
        assert device.memory_bytes == device.ram_bytes


# ---------------------------------------------------------------------------------------------
# The dataset's widest batch, verdicts, the LoRA-above-full explanation, calibration


def _mixed_rows(path: Path, lengths: list[int]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for i, n in enumerate(lengths):
            answer = " ".join(["word"] * n)
            fh.write(json.dumps({"messages": [{"role": "user", "content": f"question {i}?"},
                                              {"role": "assistant", "content": answer}]}) + "\n")
    return path


def _trainer_batches(cfg: RunConfig, tokenizer) -> list[tuple[int, int]]:
    """(rows, width) of every batch the real sampler and collator form for one epoch."""
    from studio.core.training.data import PadCollator, build_features
    from studio.core.training.hf_trainer import EpochSeededLengthSampler

    feats = build_features(cfg, tokenizer)
    sampler = EpochSeededLengthSampler(cfg.training.batch_size, seed=cfg.training.seed, dataset=feats.train)
    order = list(sampler)
    collate = PadCollator(tokenizer.pad_token_id or 0)
    out = []
    for start in range(0, len(order), cfg.training.batch_size):
        batch = collate([feats.train[i] for i in order[start:start + cfg.training.batch_size]])
        out.append(tuple(batch["input_ids"].shape))
    return out


@pytest.mark.parametrize("packing", [False, True])
def test_widest_batch_is_the_one_the_trainer_forms(tmp_path, smol_tokenizer_dir, packing):
    from studio.core.datasets.tokenizer import load_tokenizer
    from studio.core.memory import count_lengths

    data = _mixed_rows(tmp_path / "mixed.jsonl", [3, 5, 8, 13, 21, 34, 55, 89, 140, 230, 2, 4, 6, 9, 12, 300])
    cfg = cfg_for(smol_tokenizer_dir, **{"dataset.train": [str(data)], "dataset.eval_ratio": 0.2,
                                         "training.max_seq_len": 128, "training.batch_size": 3,
                                         "training.packing": packing})
    tok = load_tokenizer(smol_tokenizer_dir)
    lengths = count_lengths(cfg, tok)
    batches = _trainer_batches(cfg, tok)
    widest = max(batches, key=lambda b: b[0] * b[1])
    assert widest_batch(lengths, cfg) == widest
    assert batches[0] == widest  # the sampler puts it first: the peak comes at step 1
    if not packing:
        assert widest[1] == 128  # the 300-word answer is truncated to max_seq_len
        # a max length above every row: the widest row, not max_seq_len, sets the width
        roomy = apply_overrides(cfg, {"training.max_seq_len": 1024})
        assert widest_batch(lengths, roomy) == max(_trainer_batches(roomy, tok), key=lambda b: b[0] * b[1])


def test_dataset_estimate_is_below_the_worst_case_for_short_rows(tiny_dirs):
    folder = tiny_dirs["llama"]
    info = inspect_model(folder)
    cfg = cfg_for(folder, **{"training.max_seq_len": 512, "training.batch_size": 4})
    short = DatasetLengths((40, 55, 60, 61, 58), final=False)
    est = estimate(info, cfg, device_kind="cpu", lengths=short)
    worst = estimate(info, cfg, device_kind="cpu")
    assert (est.batch_rows, est.batch_tokens, est.basis) == (4, 61, "dataset")
    assert (worst.batch_rows, worst.batch_tokens, worst.basis) == (4, 512, "max_len")
    assert est.bytes["activations"] < worst.bytes["activations"]
    assert est.bytes["logits"] * 512 == pytest.approx(worst.bytes["logits"] * 61, rel=1e-6)
    # rows at max length: the dataset estimate is the worst case
    full_rows = DatasetLengths((900, 700, 30, 20), final=False)
    assert estimate(info, cfg, device_kind="cpu", lengths=full_rows).total_bytes == worst.total_bytes


def test_verdict_zones():
    budget = 1000 * 2**20
    assert verdict(int(budget * GREEN_SHARE), budget) == "green"
    assert verdict(int(budget * GREEN_SHARE) + 1, budget) == "amber"
    assert verdict(budget, budget) == "amber"
    assert verdict(budget + 1, budget) == "red"


def test_suggestions_never_land_beyond_green(tiny_dirs):
    folder = tiny_dirs["qwen2"]
    info = inspect_model(folder)
    cfg = cfg_for(folder, **{"training.batch_size": 2, "training.max_seq_len": 128})
    budget = estimate(info, cfg, device_kind="cpu").total_bytes * 3
    for s in suggestions(info, cfg, budget, device_kind="cpu"):
        assert s.fits == (verdict(s.estimate.total_bytes, budget) == "green"), s.text


def test_lora_above_full_names_the_term(tiny_dirs):
    folder = tiny_dirs["llama"]
    info = inspect_model(folder)
    cfg = cfg_for(folder, **{"training.batch_size": 8, "training.max_seq_len": 256, "lora.dropout": 0.1})
    lora = estimate(info, cfg, device_kind="cpu")
    full = estimate(info, apply_overrides(cfg, {"method": "full"}), device_kind="cpu")
    assert lora.total_bytes > full.total_bytes  # a tiny model: activations dominate, not weights
    text = versus_full(lora, full)
    assert text is not None and "activations" in text and "LoRA" in text
    assert versus_full(full, full) is None


def test_calibration_from_past_runs():
    assert calibrate([]).runs == 0 and calibrate([]).factor == 1.0
    one = calibrate([(100, 110)])
    assert one.runs == 1 and one.factor == 1.0 and one.mean_abs_error_pct == pytest.approx(10.0)
    c = calibrate([(100, 110), (200, 180), (100, 105), (0, 50), (100, 0), (100, 1000)])
    assert c.runs == 3  # zeros and an implausible ratio are left out
    assert c.factor == pytest.approx(1.05)  # the median of 1.10, 0.90, 1.05
    assert c.mean_abs_error_pct == pytest.approx((10 + 10 + 5) / 3)
    assert "±8 % over 3 runs" in c.describe() and "×1.05" in c.describe()


def test_machine_calibration_reads_the_runs_store(tmp_path):
    from studio.core.memory import machine_calibration
    from studio.core.training.events import RunFinished, RunStarted
    from studio.core.training.runs import Journal

    for i, (est, peak, device) in enumerate([(1000, 1100, "cpu"), (1000, 1000, "cpu"), (1000, 3000, "NVIDIA H200")]):
        run = tmp_path / f"run{i}"
        run.mkdir()
        journal = Journal(run)
        journal.append(RunStarted(run_id=run.name, run_dir=str(run), model="m", dataset=["d"], dataset_fingerprint="",
                                  method="lora", device=device, total_steps=2, train_rows=4, eval_rows=0,
                                  trainable_params=1, total_params=2, estimated_peak_bytes=est))
        journal.append(RunFinished(status="completed", reason="", step=2, peak_memory_bytes=peak))
        journal.close()
    cpu = machine_calibration("cpu", tmp_path)
    assert cpu.runs == 2 and cpu.factor == pytest.approx(1.05)
    assert machine_calibration("cuda", tmp_path).runs == 1



def test_full_finetune_states_reuse_the_heap_activations_left_but_big_tensors_do_not(tmp_path):
    """A full fine-tune's gradients and Adam states are allocated after the forward pass freed its
    activations; each tensor below glibc's mmap threshold takes a kept chunk, so the retention term
    shrinks by their bytes. A tensor above the threshold is mapped on its own and reuses nothing."""
    from studio.core.memory.constants import (
        ADAM_STATES,
        CPU_ALLOCATOR_RETENTION,
        CPU_HEAP_ALLOCATION_MAX,
        FP32,
    )
    from studio.core.memory.plan import make_plan
    from studio.core.memory.terms import _activations, _heap_reuse

    over = {"training.max_seq_len": 512, "training.batch_size": 8, "model.dtype": "float32"}
    small = inspect_model(write_config(tmp_path / "small", dict(TINY["llama"])))
    p = make_plan(small, cfg_for(tmp_path / "small", method="full", **over), "cpu")
    every = small.total_params * FP32 * (1 + ADAM_STATES)  # all of the tiny model's tensors are heap-sized
    assert _heap_reuse(small, p, []) == every
    produced, _, _ = _activations(small, dataclasses.replace(p, grad_ckpt=False), [])
    full = estimate(small, cfg_for(tmp_path / "small", method="full", **over), device_kind="cpu")
    lora = estimate(small, cfg_for(tmp_path / "small", method="lora", **over), device_kind="cpu")
    assert full.overhead_parts["allocator_retention"] == max(0, int(CPU_ALLOCATOR_RETENTION * produced - every))
    assert full.overhead_parts["allocator_retention"] < lora.overhead_parts["allocator_retention"]

    # 4096 x 1024 fp32 (16 MiB) is heap-sized; the 4096 x 4096 ones (64 MiB) are mapped and reuse nothing.
    assert 4096 * 1024 * FP32 < CPU_HEAP_ALLOCATION_MAX < 4096 * 4096 * FP32
    wide = {**TINY["llama"], "hidden_size": 4096, "intermediate_size": 1024, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 1000}
    big = inspect_model(write_config(tmp_path / "big", wide))
    pb = make_plan(big, cfg_for(tmp_path / "big", method="full", **over), "cpu")
    heap_sized = sum(m.count * m.d_in * m.d_out for m in big.linear_modules if m.d_in * m.d_out * FP32 < CPU_HEAP_ALLOCATION_MAX)
    assert heap_sized == big.num_layers * 3 * 4096 * 1024  # the MLP's gate, up and down projections only
    head = 0 if big.tie_word_embeddings else big.head.d_in * big.head.d_out  # 1000 x 4096: 16 MiB, heap-sized
    expected = heap_sized + big.vector_params + big.embedding_params + head
    assert _heap_reuse(big, pb, []) == expected * FP32 * (1 + ADAM_STATES)
