"""A base model's identity covers its weights' bytes, is read once per file, and every place where
an adapter meets its base (export, playground, compare, resume) refuses a base that changed."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from _lib_fixtures import lib_adapter, lib_base, make_base, one_thread  # noqa: F401

from studio.cli import main
from studio.core import paths
from studio.core.errors import StudioError
from studio.core.library import registry
from studio.core.library.merge import export_model
from studio.core.library.playground import Playground
from studio.core.models import identity
from studio.core.models.identity import base_identity, identity_change, legacy_header_hash


@pytest.fixture(autouse=True)
def _threads(one_thread) -> None:
    return None


@pytest.fixture(scope="module")
def other_weights(tmp_path_factory, smol_tokenizer_dir) -> Path:
    """Weights of exactly the same shapes as lib_base, from another seed: a swap no header can see."""
    return make_base(tmp_path_factory.mktemp("other") / "tiny-llama", smol_tokenizer_dir, seed=7)


@pytest.fixture()
def base(tmp_path, lib_base) -> Path:
    """A private copy of the base, for tests that change it."""
    dest = tmp_path / "base"
    shutil.copytree(lib_base, dest)
    return dest


@pytest.fixture()
def entry(base, lib_adapter, tmp_path) -> registry.LibraryEntry:
    """A library entry trained (as far as the library knows) on ``base``."""
    adapter = tmp_path / "adapter"
    shutil.copytree(lib_adapter, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(base.resolve())
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    return registry.register_adapter(adapter, {"base_model": str(base.resolve())}, name="on-copy")


def _swap_weights(base: Path, other: Path) -> None:
    shutil.copyfile(other / "model.safetensors", base / "model.safetensors")


def _change(base: Path, other: Path, what: str) -> None:
    if what == "weights":
        _swap_weights(base, other)
    else:
        _edit_config(base)


def _edit_config(base: Path) -> None:
    cfg = json.loads((base / "config.json").read_text())
    cfg["rms_norm_eps"] = 1e-3
    (base / "config.json").write_text(json.dumps(cfg))


def test_identity_sees_swapped_weights_that_headers_do_not(base, other_weights):
    before, legacy_before = base_identity(base), legacy_header_hash(base)
    _swap_weights(base, other_weights)
    assert legacy_header_hash(base) == legacy_before  # the old header hash was blind to this swap
    assert base_identity(base) != before
    assert identity_change(before, base) == "its weights changed"


def test_identity_tracks_config_meaning_not_formatting(base):
    before = base_identity(base)
    cfg = json.loads((base / "config.json").read_text())
    cfg["transformers_version"] = "0.0.1"  # rewritten by every save; says nothing about the model
    (base / "config.json").write_text(json.dumps(cfg, indent=7))
    assert base_identity(base) == before
    _edit_config(base)
    assert identity_change(before, base) == "its config.json changed"


def test_second_identity_reads_no_weight_bytes(base, other_weights, monkeypatch):
    reads: list[str] = []
    real = identity._file_digest

    def counting(path: Path) -> str:
        reads.append(Path(path).name)
        return real(path)

    monkeypatch.setattr(identity, "_file_digest", counting)
    first = base_identity(base)
    assert reads == ["model.safetensors"]
    assert base_identity(base) == first and reads == ["model.safetensors"]  # served from the cache
    # A swap that restores the old size and mtime (cp -p, touch -r) is still read again.
    st = (base / "model.safetensors").stat()
    _swap_weights(base, other_weights)
    os.utime(base / "model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (base / "model.safetensors").stat().st_size == st.st_size
    assert base_identity(base) != first and reads == ["model.safetensors"] * 2


def test_cached_identity_reads_no_weights_and_answers_only_from_the_cache(base, other_weights, monkeypatch):
    """What the GUI thread asks: it must never hash a 16 GB model, so it gets None until a worker has."""
    def no_reading(path: Path) -> str:
        raise AssertionError(f"read {path}")

    real = identity._file_digest
    monkeypatch.setattr(identity, "_file_digest", no_reading)
    assert identity.cached_identity(base) is None
    monkeypatch.setattr(identity, "_file_digest", real)
    want = base_identity(base)
    monkeypatch.setattr(identity, "_file_digest", no_reading)
    assert identity.cached_identity(base) == want
    _swap_weights(base, other_weights)
    assert identity.cached_identity(base) is None  # stale entries are not answers


def test_corrupt_cache_is_ignored_and_rebuilt(base):
    want = base_identity(base)
    cache = paths.data_home() / "cache" / identity.CACHE_FILE
    assert cache.is_file()
    cache.write_text("{not json")
    assert base_identity(base) == want
    assert json.loads(cache.read_text())  # rewritten whole
    cache.write_text(json.dumps({str((base / "model.safetensors").resolve()): {"stamp": "x", "sha256": 5}}))
    assert base_identity(base) == want


def test_registration_records_the_identity(entry, base):
    assert entry.base_model_hash == base_identity(base)
    assert registry.recorded_base_identity(entry.adapter_dir) == entry.base_model_hash


@pytest.mark.parametrize(("change", "words"), [("weights", "its weights changed"), ("config", "its config.json changed")])
def test_export_refuses_a_changed_base(entry, base, other_weights, tmp_path, change, words):
    _change(base, other_weights, change)
    out = tmp_path / "out"
    with pytest.raises(StudioError) as err:
        export_model(entry.adapter_dir, out, dtype="fp32", check=False)
    assert f"The base model in {base.resolve()} changed since this adapter was trained ({words})" in err.value.message
    assert "restore" in err.value.message
    assert not out.exists()


@pytest.mark.parametrize("change", ["weights", "config"])
def test_playground_refuses_a_changed_base(entry, base, other_weights, change):
    _change(base, other_weights, change)
    pg = Playground(base, device="cpu", dtype="fp32")
    assert not pg.fits(entry)
    with pytest.raises(StudioError, match=f"{base.resolve()} changed since 'on-copy' was trained"):
        pg.ensure_adapter(entry)
    assert pg.loaded_adapters == []


def test_playground_compares_with_the_base_it_loaded(entry, base, other_weights):
    pg = Playground(base, device="cpu", dtype="fp32")
    _swap_weights(base, other_weights)  # on disk only: what generates is what was loaded
    assert pg.fits(entry)
    pg.ensure_adapter(entry)


@pytest.mark.parametrize("change", ["weights", "config"])
def test_compare_refuses_a_changed_base(entry, base, other_weights, tmp_path, capsys, change):
    _change(base, other_weights, change)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "Hi", "expected": "Hello"}) + "\n")
    rc = main(["compare", "on-copy", "--prompts", str(prompts), "--max-new-tokens", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "Traceback" not in err
    assert f"{base.resolve()} changed since 'on-copy' was trained" in err
    assert ("weights" if change == "weights" else "config.json") in err


def test_old_header_hash_entries_are_still_checked(entry, base, tmp_path):
    meta_file = entry.path / registry.META_FILE
    meta = json.loads(meta_file.read_text())
    meta["base_model_hash"] = legacy_header_hash(base)  # what an older studio recorded
    meta_file.write_text(json.dumps(meta))
    assert identity_change(meta["base_model_hash"], base) is None
    export_model(entry.adapter_dir, tmp_path / "ok", dtype="fp32", check=False)  # unchanged: exports
    _edit_config(base)
    with pytest.raises(StudioError, match=r"its config\.json or the layout of its weight files changed"):
        export_model(entry.adapter_dir, tmp_path / "refused", dtype="fp32", check=False)


def test_unreadable_record_falls_back_to_the_shape_checks(entry, base, tmp_path):
    meta_file = entry.path / registry.META_FILE
    meta = json.loads(meta_file.read_text())
    meta["base_model_hash"] = "not a hash"
    meta_file.write_text(json.dumps(meta))
    assert identity_change("not a hash", base) is None
    report = export_model(entry.adapter_dir, tmp_path / "out", dtype="fp32", check=False)
    assert (report.out_dir / "model.safetensors").is_file()


def _cfg(model_dir: Path, train_file: Path):
    from studio.core.config import RunConfig, apply_overrides

    return apply_overrides(RunConfig(), {
        "model.path": str(model_dir), "dataset.train": [str(train_file)], "training.max_steps": 3,
        "training.batch_size": 2, "training.max_seq_len": 128, "training.eval_steps": 0, "training.save_steps": 1,
        "dataset.eval_ratio": 0.0,
    })


def test_resume_refuses_a_changed_base_and_works_once_restored(tiny_model_dir, demo_train, tmp_path):
    from safetensors.torch import load_file, save_file

    from studio.core.control import Control
    from studio.core.training import runs
    from studio.core.training.engine import train

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    original = (model / "model.safetensors").read_bytes()
    control = Control()
    cfg = _cfg(model, demo_train)
    run_dir = tmp_path / "run"
    train(cfg, run_dir=run_dir, control=control,
          emit=lambda ev: control.request_stop() if ev.kind == "step" and ev.step == 1 else None)
    started = [e for e in runs.read_events(run_dir) if e.kind == "run_started"]
    assert started[0].base_identity == base_identity(model)

    swapped = {k: v + 0.01 for k, v in load_file(model / "model.safetensors").items()}  # same shapes, other weights
    save_file(swapped, model / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(StudioError) as err:
        train(cfg, run_dir=run_dir, resume=True)
    assert err.value.message == (f"The base model in {model} changed since this run started (its weights changed); "
                                 "restore it or start a new run.")
    assert runs.summarize(run_dir).resumable  # nothing lost: the checkpoint is still there

    (model / "model.safetensors").write_bytes(original)
    result = train(cfg, run_dir=run_dir, resume=True)
    assert result.status == "completed" and result.step == 3
