"""How long the model picker takes to list a large Hugging Face cache (it runs on the GUI thread).

    .venv/bin/python tests/benchmarks/bench_hf_cache.py [--models 500] [--runs 7]

Builds a cache of N model repos in a temp dir, laid out as huggingface_hub writes it (blobs plus
snapshot links, refs/main, sharded safetensors with an index, a realistic config.json), then times
``list_cached_models`` cold (first call) and warm (median of the rest). Weights are sparse files of
their real size, so a reader that touched their bytes would show here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from _hf_cache_layout import add_cached_repo  # noqa: E402

from studio.core.models.hf_cache import list_cached_models  # noqa: E402

SHARD_BYTES = 2 * 1024**3


def build(hub: Path, n: int, scratch: Path) -> None:
    for i in range(n):
        src = scratch / f"m{i}"
        src.mkdir()
        shards = [f"model-0000{k}-of-00004.safetensors" for k in range(1, 5)]
        config = {"model_type": ["llama", "qwen2", "gemma3", "mistral", "phi3"][i % 5], "hidden_size": 2048,
                  "num_hidden_layers": 24, "vocab_size": 151936, "id": i}
        (src / "config.json").write_text(json.dumps(config, indent=2))
        (src / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": 4 * SHARD_BYTES},
             "weight_map": {f"model.layers.{j}.w": shards[j % 4] for j in range(400)}}))
        (src / "tokenizer_config.json").write_text(json.dumps({"id": i}))
        for k, shard in enumerate(shards):
            with open(src / shard, "wb") as fh:
                fh.write(f"{i}-{k}".encode())  # distinct bytes, so each repo gets its own blobs
        snapshot = add_cached_repo(hub, f"org{i % 20}/model-{i}", src)
        for shard in shards:  # grow the blobs to a real size without writing it (sparse)
            os.truncate((snapshot / shard).resolve(), SHARD_BYTES)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=500)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub, scratch = Path(tmp) / "hub", Path(tmp) / "src"
        scratch.mkdir()
        build(hub, args.models, scratch)
        os.sync()
        t0 = time.perf_counter()
        listed = list_cached_models(hub)
        cold = time.perf_counter() - t0
        assert len(listed) == args.models and all(m.trainable for m in listed), "the cache was not listed"
        assert listed[0].size_bytes == 4 * SHARD_BYTES
        warm = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            list_cached_models(hub)
            warm.append(time.perf_counter() - t0)
    print(f"{args.models} cached models (4 shards each): first listing {cold * 1000:.0f} ms, "
          f"then median {statistics.median(warm) * 1000:.0f} ms over {args.runs} runs")


if __name__ == "__main__":
    main()
