"""Library names: one entry per run (a stop then a resume does not add "-2"), and a name once given
to an entry is never handed to another one after a rename or a delete."""

# Fixtures are imported from _lib_fixtures and then named as arguments, which pyflakes reads as redefinitions.
# ruff: noqa: F811
from __future__ import annotations

import json

import pytest
from _lib_fixtures import lib_adapter, lib_base, one_thread  # noqa: F401

from studio.core.library import registry
from studio.core.library.registry import AdapterMeta
from studio.core.training.runs import run_name


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("STUDIO_HOME", str(tmp_path / "home"))


def _meta(run_dir: str, **metrics) -> AdapterMeta:
    return AdapterMeta(config={"method": "lora"}, metrics=metrics, run_dir=run_dir)


def test_same_run_refreshes_its_entry(lib_adapter, tmp_path):
    run = tmp_path / "runs" / "20260101-support"
    first = registry.register_adapter(lib_adapter, _meta(str(run), steps=10), name="support")
    again = registry.register_adapter(lib_adapter, _meta(str(run), steps=40), name="support")
    assert [e.id for e in registry.list_entries()] == [first.id]
    assert (again.id, again.name, again.created) == (first.id, "support", first.created)
    assert again.metrics == {"steps": 40}
    other = registry.register_adapter(lib_adapter, _meta(str(tmp_path / "runs" / "other")), name="support")
    assert other.name == "support-2" and len(registry.list_entries()) == 2


def test_same_run_keeps_a_name_the_user_gave(lib_adapter, tmp_path):
    run = str(tmp_path / "runs" / "r1")
    entry = registry.register_adapter(lib_adapter, _meta(run), name="support")
    registry.rename(entry.id, "my favourite")
    again = registry.register_adapter(lib_adapter, _meta(run), name="support")
    assert again.name == "my-favourite" and again.id == entry.id


def test_deleted_names_are_not_reused(lib_adapter, tmp_path):
    a = registry.register_adapter(lib_adapter, _meta(str(tmp_path / "a")), name="demo")
    registry.delete(a.id)
    b = registry.register_adapter(lib_adapter, _meta(str(tmp_path / "b")), name="demo")
    assert b.name == "demo-2"  # the trash still holds "demo"
    assert registry.restore(a.id).name == "demo"  # and gives it back to its owner
    registry.delete(a.id)
    registry.empty_trash()
    c = registry.register_adapter(lib_adapter, _meta(str(tmp_path / "c")), name="demo")
    assert c.name == "demo-3"  # gone for good, still never someone else's


def test_renamed_away_names_are_not_reused(lib_adapter, tmp_path):
    a = registry.register_adapter(lib_adapter, _meta(str(tmp_path / "a")), name="demo")
    registry.rename(a.id, "kept")
    b = registry.register_adapter(lib_adapter, _meta(str(tmp_path / "b")), name="demo")
    assert b.name == "demo-2"
    assert registry.rename(a.id, "demo").name == "demo"  # an entry may take back its own old name
    retired = json.loads((registry.paths.library_dir() / registry.RETIRED_NAMES).read_text())
    assert retired == {"demo": a.id, "kept": a.id}


@pytest.mark.parametrize(("name", "files", "want"), [
    ("", ["/data/support_train.jsonl"], "support"),
    ("", ["/data/faq-training.json"], "faq"),
    ("", ["/data/recipes.jsonl"], "recipes"),
    ("", ["/data/train.jsonl"], "train"),
    ("mine", ["/data/recipes.jsonl"], "mine"),
    ("", [], "SmolLM2"),
])
def test_run_name_follows_the_dataset(name, files, want):
    assert run_name(name, files, "/models/SmolLM2") == want
