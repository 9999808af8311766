import yaml

from studio.cli import main
from studio.core.config import RunConfig, load_config


def test_launch_bundle_for_fsdp(tmp_path, capsys):
    cfg_path = tmp_path / "c.yaml"
    RunConfig().save(cfg_path)
    assert main(["launch-config", str(cfg_path), "--gpus", "4", "--fsdp", "--out", str(tmp_path / "b")]) == 0
    acc = yaml.safe_load((tmp_path / "b" / "accelerate_config.yaml").read_text())
    assert acc["distributed_type"] == "FSDP" and acc["num_processes"] == 4
    assert acc["fsdp_config"]["fsdp_use_orig_params"] is True
    assert load_config(tmp_path / "b" / "config.yaml").training.device == "cuda"
    script = (tmp_path / "b" / "launch.sh").read_text()
    assert "accelerate launch --config_file accelerate_config.yaml -m studio train config.yaml" in script


def test_launch_bundle_ddp_default(tmp_path):
    cfg_path = tmp_path / "c.yaml"
    RunConfig().save(cfg_path)
    assert main(["launch-config", str(cfg_path), "--out", str(tmp_path / "b")]) == 0
    acc = yaml.safe_load((tmp_path / "b" / "accelerate_config.yaml").read_text())
    assert acc["distributed_type"] == "MULTI_GPU" and "fsdp_config" not in acc
