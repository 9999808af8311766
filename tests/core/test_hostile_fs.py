"""Hostile file-system input: destinations that are not the studio's to replace, links inside
adapter folders, temp folders of live and dead writers, and the modes of what the studio writes.

The adapters here are a config and a few bytes of "weights": adapter-only export and the library
copy files without loading them, so every case runs in milliseconds.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from studio.cli import main
from studio.core import paths
from studio.core.destinations import check_destination, owned_by_studio
from studio.core.errors import StudioError
from studio.core.fsutil import TMP_PREFIX, atomic_dir, atomic_write_text, sweep_partials, temp_owner
from studio.core.library import registry
from studio.core.library.merge import EXPORT_RECORD, export_model
from studio.core.models.gguf_import import SOURCE_RECORD, import_gguf
from studio.core.models.store import import_gguf_to_store, list_models

HOUR = 3600


def _fake_adapter(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "gone"}))
    (folder / "adapter_model.safetensors").write_bytes(b"\0" * 64)
    return folder


def _user_folder(folder: Path) -> Path:
    """A folder of someone's own work: nothing the studio wrote."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "thesis.tex").write_text("years of work")
    (folder / "data").mkdir()
    (folder / "data" / "results.csv").write_text("a,b\n1,2\n")
    return folder


def _assert_untouched(folder: Path) -> None:
    assert (folder / "thesis.tex").read_text() == "years of work"
    assert (folder / "data" / "results.csv").read_text() == "a,b\n1,2\n"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _temp(folder: Path, name: str, pid: int, *, age_s: float = 0.0, payload: bool = True) -> Path:
    tmp = folder / f"{TMP_PREFIX}{name}.{pid}.deadbeef"
    tmp.mkdir(parents=True)
    if payload:
        (tmp / "model.safetensors").write_bytes(b"\0" * 16)
    if age_s:
        then = time.time() - age_s
        for p in [*tmp.iterdir(), tmp]:
            os.utime(p, (then, then))
    return tmp


@pytest.fixture()
def adapter(tmp_path) -> Path:
    return _fake_adapter(tmp_path / "run" / "adapter")


# ------------------------------------------------------------------ export destinations


def test_overwrite_refuses_a_user_folder_and_leaves_it_whole(adapter, tmp_path):
    out = _user_folder(tmp_path / "my-project")
    with pytest.raises(StudioError, match="not an earlier export") as err:
        export_model(adapter, out, merge=False, overwrite=True)
    assert Path(err.value.path) == out
    _assert_untouched(out)
    assert sorted(p.name for p in out.iterdir()) == ["data", "thesis.tex"]
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_overwrite_replaces_an_earlier_export(adapter, tmp_path):
    out = tmp_path / "exports" / "first"
    export_model(adapter, out, merge=False)
    (out / "stale-extra.txt").write_text("from the old export")
    with pytest.raises(StudioError, match="already exists"):
        export_model(adapter, out, merge=False)
    report = export_model(adapter, out, merge=False, overwrite=True)
    assert report.status == "passed"
    assert (out / EXPORT_RECORD).is_file() and not (out / "stale-extra.txt").exists()
    assert not list(out.parent.glob(TMP_PREFIX + "*"))


def test_overwrite_of_zip_needs_an_earlier_export_zip(adapter, tmp_path):
    foreign = tmp_path / "holiday.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("photo.jpg", b"jpeg")
    with pytest.raises(StudioError, match="not an earlier export"):
        export_model(adapter, foreign, merge=False, overwrite=True)
    with zipfile.ZipFile(foreign) as zf:
        assert zf.namelist() == ["photo.jpg"]

    notes = tmp_path / "notes.zip"
    notes.write_text("not even a zip")
    with pytest.raises(StudioError, match="not an earlier export"):
        export_model(adapter, notes, merge=False, overwrite=True)
    assert notes.read_text() == "not even a zip"

    ours = tmp_path / "adapter.zip"
    export_model(adapter, ours, merge=False)
    assert owned_by_studio(ours, EXPORT_RECORD)
    assert export_model(adapter, ours, merge=False, overwrite=True).status == "passed"
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))


def test_a_plain_file_is_never_replaced_by_a_folder_export(adapter, tmp_path):
    target = tmp_path / "report.txt"
    target.write_text("mine")
    with pytest.raises(StudioError, match="This file is not an earlier export"):
        export_model(adapter, target, merge=False, overwrite=True)
    assert target.read_text() == "mine"


def test_a_link_as_destination_is_refused_even_to_an_export(adapter, tmp_path):
    real = tmp_path / "real-export"
    export_model(adapter, real, merge=False)
    user = _user_folder(tmp_path / "user")
    for target in (real, user, tmp_path / "missing"):
        link = tmp_path / f"link-to-{target.name}"
        link.symlink_to(target, target_is_directory=True)
        with pytest.raises(StudioError, match="is a link"):
            export_model(adapter, link, merge=False, overwrite=True)
        assert link.is_symlink()
    _assert_untouched(user)
    assert (real / EXPORT_RECORD).is_file()
    assert not (tmp_path / "missing").exists()


def test_current_folder_is_a_clear_refusal(adapter, tmp_path, monkeypatch, capsys):
    work = _user_folder(tmp_path / "work")
    monkeypatch.chdir(work)
    for extra in ([], ["--overwrite"]):
        assert main(["export", str(adapter), "--out", ".", *extra]) == 2
        err = capsys.readouterr().err
        assert "folder you are working in" in err and str(work) in err
        assert "Traceback" not in err
    # Even a marked folder (an earlier export you are standing in) is not replaced from inside.
    (work / EXPORT_RECORD).write_text("{}")
    with pytest.raises(StudioError, match="working in"):
        export_model(adapter, Path("."), merge=False, overwrite=True)
    with pytest.raises(StudioError, match="holds the one you are working in"):
        export_model(adapter, Path(".."), merge=False, overwrite=True)
    _assert_untouched(work)


def test_home_data_home_and_their_parents_are_refused(adapter, tmp_path, monkeypatch):
    home = _user_folder(tmp_path / "users" / "me")
    monkeypatch.setenv("HOME", str(home))
    data = tmp_path / "users" / "me" / "studio-data"
    monkeypatch.setenv("STUDIO_HOME", str(data))
    data.mkdir()
    for dest, why in [(home, "your home folder"), (home.parent, "holds your home folder"),
                      (data, "studio's own data"), (paths.library_dir(), "studio's own data")]:
        dest.mkdir(parents=True, exist_ok=True)
        (dest / EXPORT_RECORD).write_text("{}")  # marked or not, these are never replaced
        with pytest.raises(StudioError, match=why):
            check_destination(dest, marker=EXPORT_RECORD, overwrite=True, what="export")
    _assert_untouched(home)
    # Below them is fine: that is where new exports go.
    assert check_destination(home / "exports" / "new", marker=EXPORT_RECORD, overwrite=False, what="export")


def test_destination_may_not_be_or_hold_the_adapter(adapter, tmp_path):
    (adapter / EXPORT_RECORD).write_text("{}")  # an exported adapter being exported again
    with pytest.raises(StudioError, match=r"destination is .*which this export is made from"):
        export_model(adapter, adapter, merge=False, overwrite=True)
    (adapter.parent / EXPORT_RECORD).write_text("{}")
    with pytest.raises(StudioError, match=r"destination holds .*which this export is made from"):
        export_model(adapter, adapter.parent, merge=False, overwrite=True)
    assert (adapter / "adapter_model.safetensors").read_bytes() == b"\0" * 64


# ------------------------------------------------------------------ GGUF import destinations


def test_import_gguf_never_replaces_a_user_folder(bundled_gguf, tmp_path, capsys):
    out = _user_folder(tmp_path / "models-i-care-about")
    with pytest.raises(StudioError, match="already exists"):
        import_gguf(bundled_gguf, out)
    with pytest.raises(StudioError, match="not an earlier imported model"):
        import_gguf(bundled_gguf, out, overwrite=True)
    assert main(["import-gguf", str(bundled_gguf), "--out", str(out)]) == 2
    assert main(["import-gguf", str(bundled_gguf), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "Traceback" not in err
    _assert_untouched(out)


def test_import_gguf_into_current_folder_is_refused(bundled_gguf, tmp_path, monkeypatch, capsys):
    work = _user_folder(tmp_path / "work")
    monkeypatch.chdir(work)
    assert main(["import-gguf", str(bundled_gguf), "--out", ".", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "folder you are working in" in err and "Traceback" not in err
    _assert_untouched(work)


def test_earlier_import_is_the_only_replaceable_folder(tmp_path):
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / SOURCE_RECORD).write_text("{}")
    assert check_destination(earlier, marker=SOURCE_RECORD, overwrite=True, what="imported model") == earlier
    # An export is not an import: its marker does not make it replaceable by an import.
    (earlier / SOURCE_RECORD).unlink()
    (earlier / EXPORT_RECORD).write_text("{}")
    with pytest.raises(StudioError, match="not an earlier imported model"):
        check_destination(earlier, marker=SOURCE_RECORD, overwrite=True, what="imported model")
    # A marker that is a link (to anything) does not count.
    (earlier / EXPORT_RECORD).unlink()
    (earlier / SOURCE_RECORD).symlink_to(tmp_path / "elsewhere.json")
    assert not owned_by_studio(earlier, SOURCE_RECORD)


def test_store_import_refuses_a_taken_name_even_if_not_a_model(bundled_gguf):
    taken = _user_folder(paths.models_dir() / "mine")
    with pytest.raises(StudioError, match="already in the store"):
        import_gguf_to_store(bundled_gguf, "mine")
    _assert_untouched(taken)


# ------------------------------------------------------------------ links inside adapter folders


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_links_in_an_adapter_are_refused_not_followed(adapter, tmp_path, kind):
    secret = tmp_path / "secrets"
    secret.mkdir()
    (secret / "id_rsa").write_text("PRIVATE KEY")
    link = adapter / ("README.md" if kind == "file" else "extras")
    link.symlink_to(secret / "id_rsa" if kind == "file" else secret)

    with pytest.raises(StudioError, match="contains links") as err:
        registry.register_adapter(adapter, {}, name="linked")
    assert link.name in err.value.message and Path(err.value.path) == adapter
    assert registry.list_entries() == []
    assert not list(paths.library_dir().iterdir())

    for out in (tmp_path / "exp", tmp_path / "exp.zip"):
        with pytest.raises(StudioError, match="contains links"):
            export_model(adapter, out, merge=False)
        assert not out.exists()
    with pytest.raises(StudioError, match="contains links"):
        export_model(adapter, tmp_path / "merged", merge=True)
    assert not list(tmp_path.glob(TMP_PREFIX + "*"))
    assert link.is_symlink()  # the user's folder is left as it was


def test_an_adapter_of_regular_files_is_copied_whole(adapter, tmp_path):
    (adapter / "README.md").write_text("notes")
    entry = registry.register_adapter(adapter, {}, name="plain")
    assert sorted(p.name for p in entry.adapter_dir.iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors"]
    assert not any(p.is_symlink() for p in entry.adapter_dir.iterdir())


# ------------------------------------------------------------------ temp folders: one cleanup rule


def test_listing_the_store_spares_a_live_import():
    dest = paths.models_dir() / "importing"
    with atomic_dir(dest) as tmp:
        (tmp / "config.json").write_text("{}")
        assert temp_owner(tmp.name) == os.getpid()
        list_models()
        assert tmp.is_dir() and (tmp / "config.json").is_file()
    assert (dest / "config.json").is_file()


def test_live_writer_is_spared_however_old_its_temp(tmp_path):
    live = _temp(tmp_path, "x", os.getpid(), age_s=10 * HOUR)
    assert sweep_partials(tmp_path) == []
    assert live.is_dir()


def test_dead_writer_is_swept_once_old_enough(tmp_path):
    dead = _dead_pid()
    young = _temp(tmp_path, "young", dead)
    old = _temp(tmp_path, "old", dead, age_s=2 * HOUR)
    legacy = _temp(tmp_path, "legacy", 0, age_s=2 * HOUR)
    legacy = legacy.rename(tmp_path / f"{TMP_PREFIX}legacy.abc_1234")  # a name without a pid
    assert sorted(sweep_partials(tmp_path)) == sorted([old, legacy])
    assert young.is_dir() and not old.exists() and not legacy.exists()


def test_a_big_file_still_being_written_keeps_its_temp_young(tmp_path):
    tmp = _temp(tmp_path, "x", _dead_pid(), age_s=2 * HOUR)
    os.utime(tmp / "model.safetensors")  # the shard moved just now, the folder did not
    assert sweep_partials(tmp_path) == []


def test_store_library_and_exports_all_sweep_by_the_same_rule(adapter, tmp_path):
    dead = _dead_pid()
    roots = [paths.models_dir(), paths.library_dir(), paths.exports_dir()]
    stale = [_temp(root, "killed", dead, age_s=2 * HOUR) for root in roots]
    live = [_temp(root, "running", os.getpid()) for root in roots]
    list_models()
    registry.list_entries()
    export_model(adapter, tmp_path / "elsewhere", merge=False)
    assert [p.exists() for p in stale] == [False, False, False]
    assert [p.is_dir() for p in live] == [True, True, True]


def test_writing_into_a_user_folder_sweeps_only_its_own_leftovers(tmp_path):
    folder = _user_folder(tmp_path / "user")
    dead = _dead_pid()
    mine = _temp(folder, "result", dead, age_s=2 * HOUR)
    other = _temp(folder, "result.v2", dead, age_s=2 * HOUR)  # a leftover of another destination
    theirs = folder / f"{TMP_PREFIX}editor-swap"
    theirs.write_text("someone else's")
    os.utime(theirs, (time.time() - 9 * HOUR,) * 2)
    atomic_write_text(folder / "result", "done")
    assert not mine.exists() and other.is_dir() and theirs.read_text() == "someone else's"
    _assert_untouched(folder)


def test_a_killed_writer_leaves_only_a_sweepable_temp(tmp_path):
    code = ("import os, sys\nfrom pathlib import Path\nfrom studio.core.fsutil import atomic_dir\n"
            "with atomic_dir(Path(sys.argv[1])) as tmp:\n    (tmp / 'part').write_text('x')\n    os._exit(9)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "export")])
    assert proc.wait() == 9
    (left,) = tmp_path.glob(TMP_PREFIX + "export.*")
    assert temp_owner(left.name) == proc.pid
    assert sweep_partials(tmp_path) == []  # too young to judge yet
    assert sweep_partials(tmp_path, min_age_s=0) == [left]
    assert not (tmp_path / "export").exists()


# ------------------------------------------------------------------ modes under the user's umask


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_written_files_and_folders_follow_the_umask(umask, adapter, tmp_path):
    file_mode, dir_mode = 0o666 & ~umask, 0o777 & ~umask
    atomic_write_text(tmp_path / "a.yaml", "x: 1")
    assert _mode(tmp_path / "a.yaml") == file_mode
    with atomic_dir(tmp_path / "folder") as tmp:
        (tmp / "f").write_text("x")
    assert _mode(tmp_path / "folder") == dir_mode

    out = export_model(adapter, tmp_path / "export", merge=False).out_dir
    assert _mode(out) == dir_mode and _mode(out / EXPORT_RECORD) == file_mode
    zipped = export_model(adapter, tmp_path / "export.zip", merge=False).out_dir
    assert _mode(zipped) == file_mode

    entry = registry.register_adapter(adapter, {}, name="modes")
    assert _mode(entry.path) == dir_mode and _mode(entry.path / registry.META_FILE) == file_mode


def test_rewriting_a_private_file_keeps_it_private(umask, tmp_path):
    secret = tmp_path / "tracker.yaml"
    secret.write_text("token: x")
    secret.chmod(0o600)
    atomic_write_text(secret, "token: y")
    assert _mode(secret) == 0o600 and secret.read_text() == "token: y"
