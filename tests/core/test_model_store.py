"""What the status bar says about the chosen model folder, one case per way it can be unusable; and how
an earlier GGUF import whose tokenizer split text unlike the file is brought up to date."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from studio.core.models.store import is_model_folder, model_folder_problem


def test_missing_folder(tmp_path):
    assert "not found" in model_folder_problem(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    assert "No config.json" in model_folder_problem(tmp_path)


def test_config_only_folder_is_estimable_but_not_trainable(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    problem = model_folder_problem(tmp_path)
    assert "no weights" in problem and "estimates work" in problem
    assert not is_model_folder(tmp_path)


def test_pickle_only_weights_point_at_the_setting(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    assert "pickle" in model_folder_problem(tmp_path)


def test_safetensors_folder_is_ready(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert model_folder_problem(tmp_path) is None and is_model_folder(tmp_path)


# -- an import made before the GGUF's split rules were rebuilt -------------------------------------

@pytest.fixture(scope="module")
def old_import(tmp_path_factory, bundled_gguf):
    """A store folder's files as earlier imports wrote them: transformers' GPT-2 split, the mismatch recorded."""
    import json

    from transformers import AutoTokenizer

    from studio.core.models.gguf_fidelity import pre_tokenizer_check, read_header
    from studio.core.models.gguf_import import SOURCE_RECORD, model_card, source_record

    folder = tmp_path_factory.mktemp("old_import")
    header = read_header(bundled_gguf)
    tok = AutoTokenizer.from_pretrained(str(bundled_gguf.parent), gguf_file=bundled_gguf.name)
    tok.save_pretrained(folder)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    record = source_record(bundled_gguf, header, "bfloat16", [], pre_tokenizer_check(tok, header))
    assert record["pre_tokenizer"]["matches"] is False
    (folder / SOURCE_RECORD).write_text(json.dumps(record, indent=2))
    (folder / "README.md").write_text(model_card(record, tok.chat_template))
    return folder


def _old_import(folder: Path, old_import: Path) -> Path:
    return Path(shutil.copytree(old_import, folder))


def test_an_earlier_bundled_import_gets_the_files_split_rules(old_import):
    import json

    from transformers import AutoTokenizer

    from studio.core.models.gguf_import import SOURCE_RECORD
    from studio.core.models.store import default_model_path, ensure_default_model

    folder = _old_import(default_model_path(), old_import)
    weights = (folder / "model.safetensors").stat().st_mtime_ns
    assert AutoTokenizer.from_pretrained(folder)("a  3").input_ids == [81, 216, 216, 35]   # "a", " ", " ", "3"
    lines = []
    assert ensure_default_model(lambda f, text: lines.append(text)) == folder
    assert len(lines) == 1 and "'smollm'" in lines[0] and "adapters trained before" in lines[0]
    assert AutoTokenizer.from_pretrained(folder)("a  3").input_ids == [81, 256, 35]   # "a", "  ", "3"
    record = json.loads((folder / SOURCE_RECORD).read_text())
    assert record["pre_tokenizer"] == {"gguf": "smollm", "imported": "smollm", "matches": True,
                                       "updated_in_place": True}
    assert any("tokenizer.json updated" in f for f in record["config_fixes"])
    card = (folder / "README.md").read_text()
    assert "splits text like" not in card and "'smollm' rules" in card and "Chat template: included" in card
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights   # only the tokenizer is rewritten
    lines.clear()
    ensure_default_model(lambda f, text: lines.append(text))
    assert lines == []   # once done, a start costs one small read


def test_an_import_older_than_the_split_record_is_checked_against_its_gguf(old_import):
    """Imports made before the split was recorded at all have no "pre_tokenizer" entry: the start-up check
    reads the source GGUF once, records the mismatch and repairs it; a store listing leaves that to it."""
    import json

    from transformers import AutoTokenizer

    from studio.core.models.gguf_import import SOURCE_RECORD
    from studio.core.models.store import default_model_path, ensure_default_model, list_models
    from studio.core.models.tokenizer_repair import needs_repair

    folder = _old_import(default_model_path(), old_import)
    record = json.loads((folder / SOURCE_RECORD).read_text())
    del record["pre_tokenizer"]
    (folder / SOURCE_RECORD).write_text(json.dumps(record))
    assert needs_repair(folder) and not needs_repair(folder, unrecorded=False)
    list_models()
    assert "pre_tokenizer" not in json.loads((folder / SOURCE_RECORD).read_text())   # the listing did not read the GGUF
    lines = []
    ensure_default_model(lambda f, text: lines.append(text))
    assert len(lines) == 1 and "'smollm'" in lines[0]
    assert AutoTokenizer.from_pretrained(folder)("a  3").input_ids == [81, 256, 35]
    assert json.loads((folder / SOURCE_RECORD).read_text())["pre_tokenizer"]["matches"] is True
    assert not needs_repair(folder)


def test_an_unrecorded_import_whose_gguf_is_gone_is_left_alone(old_import, tmp_path):
    import json

    from studio.core.models.gguf_import import SOURCE_RECORD
    from studio.core.models.tokenizer_repair import needs_repair, repair_pre_tokenizer

    folder = _old_import(tmp_path / "m", old_import)
    record = json.loads((folder / SOURCE_RECORD).read_text())
    del record["pre_tokenizer"]
    record["imported_from"] = str(tmp_path / "moved-away.gguf")
    (folder / SOURCE_RECORD).write_text(json.dumps(record))
    before = (folder / "tokenizer.json").read_bytes()
    assert not needs_repair(folder) and repair_pre_tokenizer(folder) is None
    assert (folder / "tokenizer.json").read_bytes() == before


def test_a_repair_cut_short_after_the_tokenizer_is_finished_later(old_import, smol_tokenizer_dir, tmp_path):
    """A crash between rewriting tokenizer.json and the record leaves "mismatch" recorded: the next look
    finds the tokenizer already right and only updates the record."""
    import json

    from studio.core.models.gguf_import import SOURCE_RECORD
    from studio.core.models.tokenizer_repair import repair_pre_tokenizer

    folder = _old_import(tmp_path / "m", old_import)
    shutil.copy(smol_tokenizer_dir / "tokenizer.json", folder / "tokenizer.json")   # new tokenizer, old record
    before = (folder / "tokenizer.json").read_bytes()
    assert "'smollm'" in repair_pre_tokenizer(folder)
    assert (folder / "tokenizer.json").read_bytes() == before
    assert json.loads((folder / SOURCE_RECORD).read_text())["pre_tokenizer"]["matches"] is True
    assert repair_pre_tokenizer(folder) is None


def test_a_store_listing_updates_an_earlier_gguf_import(old_import):
    import json

    from studio.core import paths
    from studio.core.models.gguf_import import SOURCE_RECORD
    from studio.core.models.store import list_models

    folder = _old_import(paths.models_dir() / "my-smol", old_import)
    assert [m.name for m in list_models()] == ["my-smol"]
    assert json.loads((folder / SOURCE_RECORD).read_text())["pre_tokenizer"]["matches"] is True
    spec = json.loads((folder / "tokenizer.json").read_text())
    assert spec["pre_tokenizer"]["pretokenizers"][0] == {"type": "Digits", "individual_digits": True}


def test_a_model_without_a_recorded_mismatch_is_left_alone(tmp_path):
    from studio.core.models.tokenizer_repair import repair_pre_tokenizer

    (tmp_path / "tokenizer.json").write_text("not even json")
    assert repair_pre_tokenizer(tmp_path) is None   # no studio_source.json: not an import
    (tmp_path / "studio_source.json").write_text('{"pre_tokenizer": {"gguf": "deepseek-coder", "matches": false}}')
    assert repair_pre_tokenizer(tmp_path) is None   # rules the studio does not rebuild: as recorded
    assert (tmp_path / "tokenizer.json").read_text() == "not even json"
