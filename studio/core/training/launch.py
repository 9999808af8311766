"""Hand a run to a bigger box: the config plus an ``accelerate`` launch for N GPUs (DDP or FSDP).

The studio never runs its own multi-process launcher; the same ``studio train CONFIG`` runs under
``accelerate launch``, which starts one process per GPU. Only rank 0 journals and saves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml

from studio.core.config import RunConfig
from studio.core.fsutil import atomic_write_text

Strategy = Literal["ddp", "fsdp"]


def accelerate_config(num_gpus: int, strategy: Strategy = "ddp", mixed_precision: str = "bf16") -> dict:
    cfg: dict = {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "MULTI_GPU" if strategy == "ddp" else "FSDP",
        "num_machines": 1,
        "machine_rank": 0,
        "num_processes": num_gpus,
        "gpu_ids": "all",
        "mixed_precision": mixed_precision,
        "rdzv_backend": "static",
        "same_network": True,
        "main_training_function": "main",
        "use_cpu": False,
    }
    if strategy == "fsdp":
        cfg["fsdp_config"] = {
            "fsdp_version": 2,
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "fsdp_reshard_after_forward": True,
            "fsdp_state_dict_type": "SHARDED_STATE_DICT",
            "fsdp_cpu_ram_efficient_loading": True,
            # PEFT trains a few parameters inside frozen modules: FSDP must keep original params.
            "fsdp_use_orig_params": True,
            "fsdp_activation_checkpointing": False,
        }
    return cfg


def write_launch_bundle(cfg: RunConfig, out_dir: Path, num_gpus: int, strategy: Strategy = "ddp") -> dict[str, Path]:
    """Write config.yaml, accelerate_config.yaml and launch.sh into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    portable = cfg.model_copy(deep=True)
    portable.training.device = "cuda"
    files = {
        "config": out_dir / "config.yaml",
        "accelerate": out_dir / "accelerate_config.yaml",
        "launch": out_dir / "launch.sh",
    }
    atomic_write_text(files["config"], portable.to_yaml())
    atomic_write_text(files["accelerate"], yaml.safe_dump(accelerate_config(num_gpus, strategy), sort_keys=False))
    atomic_write_text(files["launch"], launch_script(num_gpus, strategy))
    files["launch"].chmod(0o755)
    return files


def launch_command(config_name: str = "config.yaml", accel_name: str = "accelerate_config.yaml") -> str:
    return f"accelerate launch --config_file {accel_name} -m studio train {config_name}"


def launch_script(num_gpus: int, strategy: Strategy) -> str:
    return (
        "#!/usr/bin/env bash\n"
        f"# {strategy.upper()} fine-tune on {num_gpus} GPUs. Paths in config.yaml (model, dataset) must exist on this box;\n"
        "# edit them if the files live elsewhere. The run folder is printed at the start; resume with\n"
        "#   accelerate launch --config_file accelerate_config.yaml -m studio train --resume RUN_DIR\n"
        "set -euo pipefail\n"
        'cd "$(dirname "$0")"\n'
        f"{launch_command()} \"$@\"\n"
    )
