"""Build a Hugging Face hub cache the way huggingface_hub lays one out, from a local model folder.

``models--ORG--NAME/blobs/<sha256>`` holds the bytes, ``snapshots/<revision>/<file>`` are relative
symbolic links into ``blobs/``, and ``refs/main`` names the revision a plain ``from_pretrained`` loads.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

REVISION = "0123456789abcdef0123456789abcdef01234567"


def add_cached_repo(hub: Path, repo_id: str, source: Path, *, revision: str = REVISION,
                    write_ref: bool = True) -> Path:
    """Put every file of ``source`` into the cache as ``repo_id`` at ``revision``; return the snapshot."""
    repo = hub / ("models--" + repo_id.replace("/", "--"))
    blobs = repo / "blobs"
    snapshot = repo / "snapshots" / revision
    blobs.mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in sorted(p for p in Path(source).iterdir() if p.is_file()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        blob = blobs / digest
        if not blob.exists():
            shutil.copyfile(f, blob)
        os.symlink(os.path.relpath(blob, snapshot), snapshot / f.name)
    if write_ref:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
    return snapshot
