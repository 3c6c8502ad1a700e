"""A researcher's habits: quiet logs through a pipe, --help, the debug experiment, the paths
node, an optional untracked local config, several loggers at once, SLURM refused with one
sentence where there is none."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from conftest import CONF, FAST, compose_cfg, run_cli
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from wandb_reader import run_contents, run_summary

from vsdr.experiments.preflight import launcher_problem


def test_debug_experiment_runs_end_to_end_with_a_quiet_log(tmp_path):
    """``experiment=debug`` runs through run.py; with the progress bars on and the output a pipe
    (not a terminal) the log stays small: the bars refresh sparsely instead of once per step
    (before: ~300 updates for its 100 training and 50 sampling steps), and Lightning's tips and
    accelerator lines are gone."""
    res = run_cli(["experiment=debug", "progress=true", "hydra.run.dir=job"], cwd=tmp_path,
                  env_extra={"VSDR_CACHE_DIR": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "job" / "metrics.csv").is_file() and (tmp_path / "job" / "metrics.json").is_file()
    log = res.stdout + res.stderr
    updates = log.replace("\r", "\n").splitlines()
    assert "Epoch 0" in log and "sampling" in log  # the bars are on, only sparse
    assert len(updates) < 80, len(updates)
    assert len(log.encode()) < 8000, len(log.encode())
    for noise in ("Tip", "litlogger", "GPU available", "TPU available", "LeafSpec",
                  "`srun` command is available"):  # Lightning's hint where SLURM is installed
        assert noise not in log, noise


def test_debug_experiment_is_small():
    cfg = compose_cfg(["experiment=debug"])
    assert cfg.progress is False and "_target_" not in cfg.logger
    assert cfg.data.n_test <= 64 and cfg.diffusion.T <= 50 and cfg.trainer.max_steps <= 100


def test_help_says_what_vsdr_is_and_lists_the_groups(tmp_path):
    res = run_cli(["--help"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert out.startswith("vsdr: variance-scaled diffusion restoration")
    for text in ("make run", "make test", "make figures", "experiment=debug", "hydra/launcher"):
        assert text in out, text
    for group in ("dataset", "operator", "sampler", "model", "trainer", "logger", "experiment"):
        assert f"\n{group}: " in out, group
    assert "many" in out.split("\nlogger: ")[1].splitlines()[0]


def test_image_metrics_keys_override_without_plus():
    cfg = compose_cfg(["image_metrics.fid=false", "image_metrics.lpips_net=vgg"])
    assert cfg.image_metrics.fid is False and cfg.image_metrics.lpips_net == "vgg"


def test_paths_node_and_cache_dir_env(monkeypatch):
    monkeypatch.delenv("VSDR_CACHE_DIR", raising=False)
    cfg = compose_cfg(["paths.root_dir=/data/me"])
    assert cfg.paths.output_dir == "/data/me/outputs" and cfg.paths.data_dir == "/data/me/outputs/data"
    assert cfg.paths.cache_dir == "/data/me/outputs/checkpoints"
    monkeypatch.setenv("VSDR_CACHE_DIR", "/scratch/ckpt")
    assert compose_cfg([]).paths.cache_dir == "/scratch/ckpt"


def _compose_from(conf: Path, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def test_local_config_is_picked_up_when_present(tmp_path):
    """conf/local/default.yaml (untracked) is merged last, as root keys; without it the config
    composes as before."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf, ignore=shutil.ignore_patterns("local"))
    plain = _compose_from(conf, ["experiment=pinwheel_dp"])
    assert plain.device == "cpu" and plain.paths.root_dir == "."
    (conf / "local").mkdir()
    (conf / "local" / "default.yaml").write_text("device: auto\npaths:\n  root_dir: /scratch/me\n")
    mine = _compose_from(conf, ["experiment=pinwheel_dp"])  # after the experiment too
    assert mine.device == "auto" and mine.paths.output_dir == "/scratch/me/outputs"
    assert _compose_from(conf, ["device=cpu"]).device == "cpu"  # the command line still wins
    GlobalHydra.instance().clear()


def test_logger_many_writes_csv_and_wandb_and_finishes_both(tmp_path, cache_dir):
    """Through run.py, so that wandb has flushed its run file when the process ends (read in
    process, the exit record could still be on its way). The wandb run, read back from its
    file: the resolved config as the run's config, the DP rows as a table equal to
    dp_curve.csv, one history step per λ and per-λ summary keys, the job's figures as images,
    and no console record although progress bars ran."""
    import hashlib


    args = [*[a for a in FAST if a not in ("logger=none", "progress=false")], "logger=many",
            "progress=true", "hydra.run.dir=job"]
    res = run_cli(args, cwd=tmp_path, env_extra={"VSDR_CACHE_DIR": str(cache_dir), "WANDB_MODE": "offline",
                                                  "WANDB_SILENT": "true"})
    assert res.returncode == 0, res.stderr[-2000:]
    assert "it/s" in res.stderr  # the bars ran
    job = tmp_path / "job"
    csv_metrics = list(job.glob("train/version_*/metrics.csv"))
    assert len(csv_metrics) == 1 and "train/loss" in csv_metrics[0].read_text()
    assert "eval/lam=1/mse" in csv_metrics[0].read_text()
    runs = list(job.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(runs) == 1
    assert run_summary(runs[0])["exit_code"] == 0  # finished
    run, files = run_contents(runs[0]), runs[0].parent / "files"
    meta = json.loads((job / "metrics.json").read_text())
    assert {k: v for k, v in run["config"].items() if k != "_wandb"} == meta["config"]
    assert run["config"]["dataset"]["name"] == "pinwheel" and run["config"]["lam"] == [0, 1]
    assert run["output"] == []  # console capture off: no progress-bar lines, no log lines
    with open(job / "dp_curve.csv", newline="") as f:
        table_rows = list(csv.DictReader(f))
    table_file = next(p for p in run["files"] if p.startswith("media/table/dp_table"))
    table = json.loads((files / table_file).read_text())
    assert table["columns"] == list(table_rows[0])
    assert [[str(v) for v in row] for row in table["data"]] == [list(r.values()) for r in table_rows]
    steps = [h for h in run["history"] if "dp/lam" in h]
    assert [h["dp/lam"] for h in steps] == [0, 1]
    assert [h["dp/mse"] for h in steps] == [r["mse"] for r in meta["rows"]]
    assert {"dp/w2", "dp/mse_lo", "dp/w2_hi"} <= set(steps[0])
    assert run["summary"]["eval/lam=1/w2"] == meta["rows"][1]["w2"]
    for name in ("dp_curve", "reconstructions"):
        logged = next(h for h in run["history"] if f"figures/{name}/sha256" in h)
        png = (job / f"{name}.png").read_bytes()
        assert logged[f"figures/{name}/sha256"] == hashlib.sha256(png).hexdigest()
        assert (files / logged[f"figures/{name}/path"]).is_file()


def _path_without(*commands: str) -> str:
    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep)
                           if not any((Path(d) / c).exists() for c in commands))


def test_slurm_launcher_without_slurm_is_one_sentence_and_no_sweep_dir(tmp_path):
    res = run_cli(["-m", "hydra/launcher=slurm", "lam=0,1"], cwd=tmp_path,
                  env_extra={"PATH": _path_without("sbatch", "srun")})
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.strip() == (
        "vsdr: hydra/launcher=slurm needs SLURM, but sbatch and srun are not on PATH on this machine: "
        "submit from a SLURM login node, or run the sweep here with hydra/launcher=local (or without "
        "hydra/launcher=)")
    assert not (tmp_path / "outputs").exists()


def test_slurm_check_passes_where_slurm_is(tmp_path, monkeypatch):
    for c in ("sbatch", "srun"):
        (tmp_path / c).write_text("#!/bin/sh\n")
        (tmp_path / c).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert launcher_problem(["-m", "hydra/launcher=slurm", "lam=0,1"]) is None
    monkeypatch.setenv("PATH", "")
    assert "sbatch and srun are not on PATH" in launcher_problem(["-m", "hydra/launcher=slurm"])
    assert launcher_problem(["hydra/launcher=slurm"]) is None  # a single run ignores the launcher
    assert launcher_problem(["-m", "hydra/launcher=local"]) is None


def test_gpu_preset_on_a_cluster_without_gpus_is_one_sentence(tmp_path, monkeypatch):
    """``hydra/launcher=slurm`` asks for a GPU; where ``sinfo`` lists no GPU the sweep stops
    before Hydra (sbatch would refuse each job: "Invalid generic resource (gres)")."""
    from vsdr.experiments import preflight

    for c in ("sbatch", "srun"):
        (tmp_path / c).write_text("#!/bin/sh\n")
        (tmp_path / c).chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("VSDR_SLURM_PARTITION", raising=False)
    gres = {"value": ["(null)"]}
    monkeypatch.setattr(preflight, "cluster_gres", lambda partition=None: gres["value"])
    assert launcher_problem(["-m", "hydra/launcher=slurm", "lam=0,1"]) == (
        "hydra/launcher=slurm asks for 1 GPU(s) per node but this cluster offers none (sinfo lists its "
        "generic resources as (null)): use hydra/launcher=slurm_cpu, or hydra.launcher.gpus_per_node=0")
    assert launcher_problem(["-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=0"]) is None
    assert launcher_problem(["-m", "hydra/launcher=slurm_cpu"]) is None  # asks for no GPU
    gres["value"] = ["(null)", "gpu:a100:4"]
    assert launcher_problem(["-m", "hydra/launcher=slurm"]) is None
    gres["value"] = None  # sinfo could not tell: nothing checked
    assert launcher_problem(["-m", "hydra/launcher=slurm"]) is None


@pytest.mark.parametrize("argv", [["-m", "hydra/launcher=submitit_slurm"],
                                  ["--multirun", "hydra/launcher=slurm"],
                                  ["-m", "hydra/launcher=slurm_cpu"]])
def test_slurm_check_spellings(argv, monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert launcher_problem(argv) is not None


def test_deprecation_warnings_from_vsdr_fail_the_tests_and_libraries_stay_quiet():
    """pyproject's filterwarnings: a DeprecationWarning raised from vsdr's own code is an error
    in every test (so the suite has none), one from a library is ignored."""
    import warnings

    with pytest.raises(DeprecationWarning, match="old API"):
        warnings.warn_explicit("old API", DeprecationWarning, "vsdr/metrics/x.py", 1, module="vsdr.metrics.x")
    warnings.warn_explicit("old API", DeprecationWarning, "scipy/linalg/x.py", 1, module="scipy.linalg.x")


def test_a_job_loads_lightning_and_pot_only_when_it_needs_them():
    """Imports cost seconds per job (Lightning ~3 s, POT with scikit-learn ~2 s on this CPU,
    34 jobs in ``make figures``): the job module imports neither; training and W2 import
    them where they run."""
    import subprocess
    import sys

    code = ("import sys, vsdr.experiments.job, vsdr.training, vsdr.metrics; "
            "print(sorted(m for m in ('lightning', 'ot', 'sklearn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_gpus_asked_reads_the_slurm_preset():
    from omegaconf import OmegaConf

    from vsdr.experiments.preflight import gpus_asked, preset_gpus

    preset = OmegaConf.load(CONF / "hydra" / "launcher" / "slurm.yaml").gpus_per_node
    assert preset_gpus() == preset == gpus_asked(["-m", "hydra/launcher=slurm"])
    assert gpus_asked(["hydra.launcher.gpus_per_node=0"]) == 0
    assert gpus_asked(["hydra.launcher.gpus_per_node=4"]) == 4


def test_scripts_and_tests_use_the_installed_package():
    """vsdr is installed (editable, ``make setup``): no script or test puts the repository on
    ``sys.path``, and no test imports ``scripts.…``: what a test needs of a script lives in vsdr."""
    import re

    from conftest import ROOT

    files = [*(ROOT / "scripts").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    found = [f"{p.relative_to(ROOT)}:{n}" for p in files
             for n, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"sys\.path\.(insert|append)\(|^\s*(from|import) scripts\b", line)]
    assert found == []
