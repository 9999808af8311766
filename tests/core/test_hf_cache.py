"""Models already in the Hugging Face cache: listed with family, size and trainability, never
downloaded; and a snapshot (all symbolic links into blobs/) trains and exports like any folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

from _hf_cache_layout import REVISION, add_cached_repo

from studio.core.models.hf_cache import hub_cache_dir, list_cached_models


def _folder(tmp_path: Path, name: str, files: dict[str, bytes]) -> Path:
    out = tmp_path / "src" / name
    out.mkdir(parents=True)
    for rel, data in files.items():
        (out / rel).write_bytes(data)
    return out


def _cfg(model_type: str) -> bytes:
    return json.dumps({"model_type": model_type}).encode()


def test_hub_cache_dir_follows_huggingface_hub_precedence(monkeypatch, tmp_path):
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    assert hub_cache_dir() == tmp_path / "hfhome" / "hub"
    monkeypatch.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    assert hub_cache_dir() == tmp_path / "legacy"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "explicit"))
    assert hub_cache_dir() == tmp_path / "explicit"


def test_listing_uses_hf_home_when_no_hub_cache_is_set(monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hfhome"))
    src = _folder(tmp_path, "a", {"config.json": _cfg("llama"), "model.safetensors": b"x" * 10})
    add_cached_repo(tmp_path / "hfhome" / "hub", "org/a", src)
    assert [m.repo_id for m in list_cached_models()] == ["org/a"]


def test_lists_models_with_family_size_and_trainability(tmp_path):
    hub = tmp_path / "hub"
    add_cached_repo(hub, "Qwen/Qwen2.5-0.5B", _folder(tmp_path, "q", {
        "config.json": _cfg("qwen2"), "model-00001-of-00002.safetensors": b"a" * 1000,
        "model-00002-of-00002.safetensors": b"b" * 234, "tokenizer.json": b"{}" * 5000,
        "model.safetensors.index.json": json.dumps({"weight_map": {
            "x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}).encode()}))
    add_cached_repo(hub, "meta-llama/Llama-3.2-1B", _folder(tmp_path, "l", {
        "config.json": _cfg("llama"), "pytorch_model.bin": b"p" * 77}))
    add_cached_repo(hub, "google/gemma-3-1b-it", _folder(tmp_path, "g", {"config.json": _cfg("gemma3_text")}))
    add_cached_repo(hub, "org/tokenizer-only", _folder(tmp_path, "t", {"tokenizer.json": b"{}"}))
    (hub / "datasets--org--data" / "snapshots").mkdir(parents=True)  # not a model repo
    (hub / ".locks").mkdir()

    found = {m.repo_id: m for m in list_cached_models(hub)}
    assert list(found) == ["google/gemma-3-1b-it", "meta-llama/Llama-3.2-1B", "Qwen/Qwen2.5-0.5B"]
    qwen = found["Qwen/Qwen2.5-0.5B"]
    assert qwen.model_type == "qwen2" and qwen.size_bytes == 1234 and qwen.trainable
    assert qwen.path == hub / "models--Qwen--Qwen2.5-0.5B" / "snapshots" / REVISION
    assert qwen.revision == REVISION and all(p.is_symlink() for p in qwen.path.iterdir())
    llama = found["meta-llama/Llama-3.2-1B"]
    assert llama.size_bytes == 77 and not llama.trainable and "pickle" in llama.problem
    gemma = found["google/gemma-3-1b-it"]
    assert gemma.model_type == "gemma3_text" and gemma.size_bytes == 0 and "no weights" in gemma.problem
    assert gemma.has_config  # still estimable


def test_broken_downloads_are_listed_with_the_reason(tmp_path):
    hub = tmp_path / "hub"
    snap = add_cached_repo(hub, "org/cut-blob", _folder(tmp_path, "c", {
        "config.json": _cfg("llama"), "model.safetensors": b"w" * 50}))
    os.unlink(snap.resolve().parent.parent / "blobs" / os.readlink(snap / "model.safetensors").split("/")[-1])
    add_cached_repo(hub, "org/missing-shard", _folder(tmp_path, "m", {
        "config.json": _cfg("mistral"), "model-00001-of-00002.safetensors": b"a",
        "model.safetensors.index.json": json.dumps({"weight_map": {
            "x": "model-00001-of-00002.safetensors", "y": "model-00002-of-00002.safetensors"}}).encode()}))
    add_cached_repo(hub, "org/bad-config", _folder(tmp_path, "b", {
        "config.json": b"{not json", "model.safetensors": b"w"}))
    add_cached_repo(hub, "org/gguf-only", _folder(tmp_path, "gg", {"model-Q4_K_M.gguf": b"G" * 9}))
    (hub / "models--org--no-snapshots" / "refs").mkdir(parents=True)

    found = {m.repo_id: m for m in list_cached_models(hub)}
    assert set(found) == {"org/cut-blob", "org/missing-shard", "org/bad-config", "org/gguf-only"}
    assert not any(m.trainable for m in found.values())
    assert "model.safetensors is missing" in found["org/cut-blob"].problem
    assert "model-00002-of-00002.safetensors" in found["org/missing-shard"].problem
    assert "JSON" in found["org/bad-config"].problem and found["org/bad-config"].model_type == "?"
    gguf = found["org/gguf-only"]
    assert "Import GGUF" in gguf.problem and gguf.size_bytes == 9 and not gguf.has_config


def test_without_refs_main_the_newest_snapshot_is_used(tmp_path):
    hub = tmp_path / "hub"
    old = add_cached_repo(hub, "org/pinned", _folder(tmp_path, "o", {
        "config.json": _cfg("llama"), "model.safetensors": b"1"}), revision="a" * 40, write_ref=False)
    new = add_cached_repo(hub, "org/pinned", _folder(tmp_path, "n", {
        "config.json": _cfg("llama"), "model.safetensors": b"22"}), revision="b" * 40, write_ref=False)
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    (model,) = list_cached_models(hub)
    assert model.path == new and model.size_bytes == 2
    # refs/main wins over recency once it exists, as in from_pretrained
    (hub / "models--org--pinned" / "refs").mkdir()
    (hub / "models--org--pinned" / "refs" / "main").write_text("a" * 40)
    (model,) = list_cached_models(hub)
    assert model.path == old and model.revision == "a" * 40
    # a ref naming a snapshot that is gone falls back to what is there
    (hub / "models--org--pinned" / "refs" / "main").write_text("c" * 40)
    assert list_cached_models(hub)[0].path == new


def test_missing_or_empty_cache_lists_nothing(tmp_path):
    assert list_cached_models(tmp_path / "nowhere") == []
    assert list_cached_models(tmp_path) == []


def test_listing_reads_no_weight_bytes(tmp_path, monkeypatch):
    """Weights may be tens of GB: listing must only stat them."""
    import io

    hub = tmp_path / "hub"
    add_cached_repo(hub, "org/big", _folder(tmp_path, "b", {
        "config.json": _cfg("llama"), "model.safetensors": b"w" * 100}))
    real_open = io.open
    opened: list[str] = []

    def spy(file, *a, **k):
        opened.append(str(file))
        return real_open(file, *a, **k)

    monkeypatch.setattr(io, "open", spy)  # what pathlib's read_text calls
    (model,) = list_cached_models(hub)
    assert model.trainable
    assert opened and not any(name.endswith(".safetensors") for name in opened)
    assert not any("/blobs/" in name for name in opened)  # links are followed by stat, not read


def test_a_cached_snapshot_trains_and_exports(tiny_model_dir, demo_train, tmp_path, hf_cache_home):
    """A snapshot is all links into blobs/: training, the base's identity and a merged export must
    follow them (the adapter-folder link refusal is for adapters, not bases)."""
    from transformers import AutoModelForCausalLM

    from studio.core.config import RunConfig, apply_overrides
    from studio.core.library.merge import export_model
    from studio.core.models.identity import identity_of
    from studio.core.training.engine import train

    snapshot = add_cached_repo(hf_cache_home, "org/tiny-llama", tiny_model_dir)
    (listed,) = list_cached_models()
    assert listed.path == snapshot and listed.trainable and listed.model_type == "llama"
    assert identity_of(snapshot) == identity_of(tiny_model_dir)  # same bytes, same base

    cfg = apply_overrides(RunConfig(), {
        "model.path": str(listed.path), "dataset.train": [str(demo_train)], "dataset.eval": [],
        "training.max_steps": 2, "training.batch_size": 2, "training.max_seq_len": 128,
        "training.eval_steps": 0, "training.save_steps": 2, "training.lr": 1e-3})
    result = train(cfg, run_dir=tmp_path / "run")
    assert result.status == "completed" and result.step == 2
    adapter_cfg = json.loads((Path(result.adapter_dir) / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(snapshot)  # the snapshot, not a blob

    out = tmp_path / "merged"
    report = export_model(Path(result.adapter_dir), out, dtype="fp32")
    assert report.status == "passed", report.summary()
    assert not any(p.is_symlink() for p in out.iterdir())  # a self-contained folder, no links into the cache
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert merged.config.model_type == "llama"
