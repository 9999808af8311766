"""One dataset fingerprint: what the dataset check reports is what the run journal and the Library
record, so an adapter's lineage can be matched to the check of the data that trained it."""

from __future__ import annotations

import hashlib
import json

from studio.cli import main
from studio.core.config import RunConfig, apply_overrides
from studio.core.datasets.fingerprint import dataset_fingerprint
from studio.core.library import registry
from studio.core.training.engine import train


def test_validate_journal_and_library_carry_the_same_fingerprint(tiny_model_dir, demo_train, demo_eval,
                                                                   tmp_path, capsys):
    assert main(["validate", str(demo_train), "--eval", str(demo_eval), "--json"]) == 0
    checked = json.loads(capsys.readouterr().out)["fingerprint"]
    cfg = apply_overrides(RunConfig(), {
        "model.path": str(tiny_model_dir), "dataset.train": [str(demo_train)], "dataset.eval": [str(demo_eval)],
        "training.max_steps": 2, "training.batch_size": 2, "training.max_seq_len": 64,
        "training.eval_steps": 2, "training.save_steps": 2,
    })
    result = train(cfg, run_dir=tmp_path / "run", emit=lambda _e: None)
    assert result.status == "completed" and result.library_id
    journal = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    started = next(e for e in journal if e["type"] == "run_started")
    entry = registry.get_entry(result.library_id)
    assert started["dataset_fingerprint"] == entry.dataset_fingerprint == checked
    # Train and eval files both count, in order: the eval file's bytes change the fingerprint.
    train_only = hashlib.sha256(demo_train.read_bytes()).hexdigest()
    assert checked != train_only == dataset_fingerprint([demo_train])
    digests = b"".join(hashlib.sha256(p.read_bytes()).digest() for p in (demo_train, demo_eval))
    assert checked == hashlib.sha256(digests).hexdigest()


def test_several_training_files_and_an_eval_file_fingerprint_flat_and_in_order(tmp_path, capsys):
    files = []
    for name, rows in (("a", 3), ("b", 2), ("e", 2)):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"instruction": f"{name} question {i}?", "output": f"Answer {i}."}) + "\n"
                                for i in range(rows)), encoding="utf-8")
        files.append(path)
    a, b, e = files
    main(["validate", str(a), str(b), "--eval", str(e), "--json"])
    checked = json.loads(capsys.readouterr().out)["fingerprint"]
    assert checked == dataset_fingerprint([a, b], [e])
    assert checked != dataset_fingerprint([b, a], [e])
