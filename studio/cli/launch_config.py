"""``studio launch-config``: write what a multi-GPU box needs to run this config under accelerate."""

from __future__ import annotations

import argparse

from studio.cli._args import number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("launch-config", help="write config + accelerate config + launch.sh for N GPUs (DDP or FSDP)")
    p.add_argument("config", help="run config YAML")
    p.add_argument("--gpus", type=number(int, min=1, max=1024), default=2, help="number of GPUs (processes)")
    p.add_argument("--fsdp", action="store_true", help="shard the model with FSDP instead of replicating it (DDP)")
    p.add_argument("--out", required=True, help="folder to write into")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studio.cli import print_json
    from studio.core.config import load_config
    from studio.core.training.launch import launch_command, write_launch_bundle

    files = write_launch_bundle(load_config(Path(args.config)), Path(args.out), args.gpus,
                                "fsdp" if args.fsdp else "ddp")
    if args.json:
        print_json({k: str(v) for k, v in files.items()} | {"command": launch_command()})
    else:
        for v in files.values():
            print(v)
        print(f"\nOn the GPU box: cd {args.out} && {launch_command()}")
    return 0
