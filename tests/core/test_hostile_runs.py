"""Hostile states of run folders: two runs into one folder, stale and recycled owner pids, a torn
journal line, damaged checkpoints, a resume of a finished run, relative paths read from elsewhere.

Each must end in a plain message or a correct resume, and never in a mixed journal, a raw torch error,
steps past the end, or a second library entry.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studio.core.config import RunConfig, apply_overrides, load_config
from studio.core.control import Control
from studio.core.errors import StudioError
from studio.core.library.registry import list_entries
from studio.core.training import runs
from studio.core.training.engine import train
from studio.core.training.events import Log, Step

REPO = Path(__file__).resolve().parents[2]

# A child that claims a folder, says so, and holds it until its stdin closes (or it is killed).
HOLDER = (
    "import sys\n"
    "from studio.core.training import runs\n"
    "runs.claim(sys.argv[1])\n"
    "print('held', flush=True)\n"
    "sys.stdin.read()\n"
)


def _holder(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _cfg(model_dir, train_file, **over) -> RunConfig:
    base = {
        "model.path": str(model_dir), "dataset.train": [str(train_file)], "dataset.eval_ratio": 0.0,
        "training.max_steps": 4, "training.batch_size": 2, "training.max_seq_len": 96,
        "training.eval_steps": 0, "training.save_steps": 1, "training.lr": 1e-3,
    }
    base.update(over)
    return apply_overrides(RunConfig(), base)


def _stop_at(step: int, control: Control):
    def emit(ev):
        if ev.kind == "step" and ev.step == step:
            control.request_stop()
    return emit


# ------------------------------------------------------------------ who holds a run folder


def test_second_claim_on_a_live_folder_refuses_and_names_the_pid(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = _holder(run_dir)
    try:
        with pytest.raises(StudioError) as err:
            runs.claim(run_dir)
        assert str(proc.pid) in err.value.message and Path(err.value.path) == run_dir
        runs.release(run_dir)  # a refused caller must not free the holder's folder
        assert runs.read_owner(run_dir).pid == proc.pid
        assert runs.summarize(run_dir).status == "running"
    finally:
        proc.stdin.close()
        proc.wait()


def test_claim_in_the_same_process_twice_refuses(tmp_path):
    runs.claim(tmp_path)
    try:
        with pytest.raises(StudioError, match="in use"):
            runs.claim(tmp_path)
    finally:
        runs.release(tmp_path)
    assert not (tmp_path / runs.LOCK_FILE).exists()


def test_killed_owner_leaves_a_stale_lock_that_is_taken_over(tmp_path):
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert runs.read_owner(tmp_path).pid == proc.pid
    runs.claim(tmp_path)
    assert runs.read_owner(tmp_path).pid == os.getpid()
    runs.release(tmp_path)
    assert not (tmp_path / runs.LOCK_FILE).exists()


@pytest.mark.parametrize("content", ["{pid}\n", "{pid} 12.5\n", "", "garbage\n", "-3 1.0\n"],
                         ids=["old-format-dead", "dead-with-start", "empty", "garbage", "negative"])
def test_unusable_or_dead_locks_are_taken_over(tmp_path, content):
    (tmp_path / runs.LOCK_FILE).write_text(content.format(pid=_dead_pid()))
    assert runs.summarize(tmp_path).status == "interrupted"
    runs.claim(tmp_path)
    assert runs.read_owner(tmp_path).pid == os.getpid()
    runs.release(tmp_path)


def test_recycled_pid_is_not_mistaken_for_the_owner(tmp_path):
    """The pid is alive, but it is another program that started long after the run's owner died."""
    import psutil

    (tmp_path / "elsewhere").mkdir()
    other = _holder(tmp_path / "elsewhere")
    try:
        started = psutil.Process(other.pid).create_time()
        (tmp_path / runs.LOCK_FILE).write_text(f"{other.pid} {started - 3600.0!r}\n")
        assert runs.summarize(tmp_path).status == "interrupted"
        runs.claim(tmp_path)
        assert runs.read_owner(tmp_path).pid == os.getpid()
        runs.release(tmp_path)
    finally:
        other.stdin.close()
        other.wait()


CONTENDER = (
    "import sys, time, pathlib\n"
    "from studio.core.errors import StudioError\n"
    "from studio.core.training import runs\n"
    "go = pathlib.Path(sys.argv[2])\n"
    "while not go.exists():\n"
    "    time.sleep(0.001)\n"
    "try:\n"
    "    runs.claim(sys.argv[1])\n"
    "    print('won', flush=True)\n"
    "except StudioError:\n"
    "    print('refused', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.mark.parametrize("stale", [False, True], ids=["free-folder", "stale-lock"])
def test_racing_claimers_get_exactly_one_owner(tmp_path, stale):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if stale:
        (run_dir / runs.LOCK_FILE).write_text(f"{_dead_pid()} 1.0\n")
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, str(run_dir), str(go)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for _ in range(6)]
    try:
        time.sleep(1.0)  # let every contender reach its wait loop; the result does not depend on it
        go.touch()
        answers = [p.stdout.readline().strip() for p in procs]
        assert sorted(answers) == ["refused"] * 5 + ["won"]
        winner = procs[answers.index("won")]
        assert runs.read_owner(run_dir).pid == winner.pid
    finally:
        for p in procs:
            p.stdin.close()
            p.wait()


def test_training_into_a_folder_in_use_refuses_before_writing(tiny_model_dir, demo_train, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = _holder(run_dir)
    try:
        with pytest.raises(StudioError, match=str(proc.pid)):
            train(_cfg(tiny_model_dir, demo_train), run_dir=run_dir)
        assert sorted(p.name for p in run_dir.iterdir()) == [runs.LOCK_FILE]
        assert runs.read_owner(run_dir).pid == proc.pid
    finally:
        proc.stdin.close()
        proc.wait()


def test_new_run_into_a_folder_that_holds_a_run_refuses(tiny_model_dir, demo_train, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    journal = b'{"type": "log", "t": 1.0, "level": "info", "message": "an earlier run"}\n'
    (run_dir / runs.EVENTS_FILE).write_bytes(journal)
    with pytest.raises(StudioError, match="already holds a training run") as err:
        train(_cfg(tiny_model_dir, demo_train), run_dir=run_dir)
    assert Path(err.value.path) == run_dir.absolute()
    assert (run_dir / runs.EVENTS_FILE).read_bytes() == journal
    assert sorted(p.name for p in run_dir.iterdir()) == [runs.EVENTS_FILE]  # no config, no lock left


def test_resume_of_a_folder_without_a_run_says_so(tiny_model_dir, demo_train, tmp_path):
    with pytest.raises(StudioError, match="no run to resume"):
        train(_cfg(tiny_model_dir, demo_train), run_dir=tmp_path / "nothing-here", resume=True)


# ------------------------------------------------------------------ the journal


def test_torn_last_line_is_cut_before_the_next_append(tmp_path):
    whole = json.dumps(Log(level="info", message="kept").to_dict())
    (tmp_path / runs.EVENTS_FILE).write_text(whole + "\n" + '{"type": "step", "t": 2.0, "st')
    journal = runs.Journal(tmp_path)
    journal.append(Log(level="info", message="after the crash"))
    journal.close()
    lines = (tmp_path / runs.EVENTS_FILE).read_text().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["kept", "after the crash"]


def test_whole_last_event_without_newline_is_kept(tmp_path):
    events = [json.dumps(Log(level="info", message=m).to_dict()) for m in ("one", "two")]
    (tmp_path / runs.EVENTS_FILE).write_text(events[0] + "\n" + events[1])
    journal = runs.Journal(tmp_path)
    journal.append(Log(level="info", message="three"))
    journal.close()
    assert [e.message for e in runs.read_events(tmp_path)] == ["one", "two", "three"]


def test_torn_only_line_leaves_an_empty_journal(tmp_path):
    (tmp_path / runs.EVENTS_FILE).write_text('{"type": "run_sta' + "x" * 200_000)  # longer than one read block
    runs.Journal(tmp_path).close()
    assert (tmp_path / runs.EVENTS_FILE).read_bytes() == b""


# ------------------------------------------------------------------ checkpoints and resume


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, tiny_model_dir):
    """A 4-step run stopped at step 3, with checkpoints 2 and 3; every test resumes its own copy."""
    home = tmp_path_factory.mktemp("stopped_home")
    run_dir = tmp_path_factory.mktemp("stopped") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STUDIO_HOME", str(home))
        control = Control()
        cfg = _cfg(tiny_model_dir, REPO / "resources" / "datasets" / "demo_train.jsonl")
        result = train(cfg, run_dir=run_dir, emit=_stop_at(3, control), control=control)
    assert result.status == "stopped" and result.step == 3
    assert sorted(p.name for p in (run_dir / runs.CHECKPOINTS_DIR).iterdir()) == ["checkpoint-2", "checkpoint-3"]
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(run_dir, out)
    return out


def _truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


DAMAGE = {
    "weights-deleted": lambda c: (c / "adapter_model.safetensors").unlink(),
    "weights-truncated": lambda c: _truncate(c / "adapter_model.safetensors", 0.9),
    "weights-header-cut": lambda c: _truncate(c / "adapter_model.safetensors", 0.001),
    "trainer-state-bad": lambda c: (c / "trainer_state.json").write_text('{"global_step": 3, "log_hist'),
    "trainer-state-deleted": lambda c: (c / "trainer_state.json").unlink(),
    "optimizer-truncated": lambda c: _truncate(c / "optimizer.pt"),
    "optimizer-deleted": lambda c: (c / "optimizer.pt").unlink(),
    "scheduler-empty": lambda c: (c / "scheduler.pt").write_bytes(b""),
    "rng-state-truncated": lambda c: _truncate(c / "rng_state.pth"),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_last_checkpoint_is_recognised(stopped_run, tmp_path, damage):
    run_dir = _copy(stopped_run, tmp_path)
    DAMAGE[damage](run_dir / runs.CHECKPOINTS_DIR / "checkpoint-3")
    assert runs.last_checkpoint(run_dir).name == "checkpoint-2"
    assert runs.summarize(run_dir).resumable


@pytest.mark.parametrize("damage", ["weights-truncated", "trainer-state-bad", "optimizer-truncated"])
def test_resume_falls_back_to_the_newest_intact_checkpoint_and_says_so(stopped_run, tmp_path, damage):
    run_dir = _copy(stopped_run, tmp_path)
    DAMAGE[damage](run_dir / runs.CHECKPOINTS_DIR / "checkpoint-3")
    seen = []
    result = train(load_config(run_dir / runs.CONFIG_FILE), run_dir=run_dir, emit=seen.append, resume=True)
    assert result.status == "completed" and result.step == 4
    assert [e.step for e in seen if isinstance(e, Step)] == [3, 4]
    started = next(e for e in seen if e.kind == "run_started")
    assert started.resumed_from_step == 2
    warning = next(e.message for e in seen if e.kind == "log" and e.level == "warning" and "checkpoint-3" in e.message)
    assert "checkpoint-2" in warning
    kept = run_dir / runs.CHECKPOINTS_DIR / "damaged-checkpoint-3"
    assert kept.is_dir()  # kept for a look, not deleted
    curve = [e.step for e in runs.effective_events(runs.read_events(run_dir)) if e.kind == "step"]
    assert curve == [1, 2, 3, 4]


def test_every_checkpoint_damaged_gives_one_clear_message(stopped_run, tmp_path, tiny_model_dir):
    run_dir = _copy(stopped_run, tmp_path)
    DAMAGE["optimizer-truncated"](run_dir / runs.CHECKPOINTS_DIR / "checkpoint-3")
    DAMAGE["weights-deleted"](run_dir / runs.CHECKPOINTS_DIR / "checkpoint-2")
    journal = (run_dir / runs.EVENTS_FILE).read_bytes()
    assert runs.last_checkpoint(run_dir) is None and not runs.summarize(run_dir).resumable
    with pytest.raises(StudioError) as err:
        train(load_config(run_dir / runs.CONFIG_FILE), run_dir=run_dir, resume=True)
    msg = err.value.message
    assert "checkpoint-3: optimizer.pt is truncated" in msg and "checkpoint-2: its weights are missing" in msg
    assert "Start the run again" in msg
    assert (run_dir / runs.EVENTS_FILE).read_bytes() == journal  # a refused resume records nothing
    assert not (run_dir / runs.LOCK_FILE).exists()
    assert (run_dir / runs.CHECKPOINTS_DIR / "checkpoint-3").is_dir()


def test_torn_journal_line_then_resume_keeps_every_line_whole(stopped_run, tmp_path):
    run_dir = _copy(stopped_run, tmp_path)
    with open(run_dir / runs.EVENTS_FILE, "a", encoding="utf-8") as fh:
        fh.write('{"type": "step", "t": 1.0, "step": 4, "total_st')  # killed mid-write
    result = train(load_config(run_dir / runs.CONFIG_FILE), run_dir=run_dir, resume=True)
    assert result.status == "completed"
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines()
    assert all(json.loads(line)["type"] for line in lines)
    assert runs.summarize(run_dir).status == "completed"


def test_resume_of_a_completed_run_trains_nothing_and_registers_nothing(stopped_run, tmp_path, capsys):
    run_dir = _copy(stopped_run, tmp_path)
    cfg = load_config(run_dir / runs.CONFIG_FILE)
    first = train(cfg, run_dir=run_dir, resume=True)
    assert first.status == "completed" and first.step == 4 and first.library_id
    entries = len(list_entries())
    journal = (run_dir / runs.EVENTS_FILE).read_bytes()

    seen = []
    again = train(cfg, run_dir=run_dir, emit=seen.append, resume=True)
    assert again.status == "completed" and again.step == 4 and again.library_id == first.library_id
    assert "already completed at step 4" in again.reason
    assert not [e for e in seen if e.kind == "step"]
    assert len(list_entries()) == entries
    assert (run_dir / runs.EVENTS_FILE).read_bytes() == journal
    assert not (run_dir / runs.LOCK_FILE).exists()

    from studio.cli import main

    old = signal.getsignal(signal.SIGINT)
    try:
        rc = main(["train", "--resume", str(run_dir)])
    finally:
        signal.signal(signal.SIGINT, old)
    out = capsys.readouterr()
    assert rc == 0 and "already completed at step 4" in out.err
    assert len(list_entries()) == entries
    assert (run_dir / runs.EVENTS_FILE).read_bytes() == journal


def test_resume_from_a_checkpoint_at_the_last_step_trains_no_further(stopped_run, tmp_path):
    """Killed after the final checkpoint but before the run was journaled finished."""
    run_dir = _copy(stopped_run, tmp_path)
    cfg = load_config(run_dir / runs.CONFIG_FILE)
    train(cfg, run_dir=run_dir, resume=True)
    lines = (run_dir / runs.EVENTS_FILE).read_text().splitlines(keepends=True)
    (run_dir / runs.EVENTS_FILE).write_text("".join(x for x in lines if '"run_finished"' not in x))
    (run_dir / "adapter").rename(tmp_path / "old-adapter")
    assert runs.summarize(run_dir).status == "interrupted"

    seen = []
    result = train(cfg, run_dir=run_dir, emit=seen.append, resume=True)
    assert result.status == "completed" and result.step == 4
    assert not [e for e in seen if e.kind == "step"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert max(e.step for e in runs.read_events(run_dir) if e.kind == "step") == 4


# ------------------------------------------------------------------ relative paths


def test_relative_paths_are_stored_absolute_and_resume_from_another_folder(tiny_model_dir, demo_train, tmp_path,
                                                                          monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    shutil.copytree(tiny_model_dir, here / "model")
    shutil.copy(demo_train, here / "data.jsonl")
    (elsewhere / "model").mkdir(parents=True)  # a same-named folder that must not be picked up
    (elsewhere / "data.jsonl").write_text("not the data\n")

    monkeypatch.chdir(here)
    control = Control()
    cfg = _cfg("model", "data.jsonl", **{"training.max_steps": 3})
    result = train(cfg, run_dir=Path("runs") / "r", emit=_stop_at(1, control), control=control)
    assert result.status == "stopped" and result.run_dir.is_absolute()
    stored = load_config(here / "runs" / "r" / runs.CONFIG_FILE)
    assert stored.model.path == str(here / "model") and stored.dataset.train == [str(here / "data.jsonl")]
    ckpt_events = [e for e in runs.read_events(here / "runs" / "r") if e.kind == "checkpoint"]
    assert ckpt_events and all(Path(e.path).is_absolute() for e in ckpt_events)

    monkeypatch.chdir(elsewhere)
    run_dir = here / "runs" / "r"
    resumed = train(load_config(run_dir / runs.CONFIG_FILE), run_dir=run_dir, resume=True)
    assert resumed.status == "completed" and resumed.step == 3
