"""What a reader sees is what ran: the operator preset in the rows and titles, the DP plots'
axes in words, one training-bar line per 30 s in a redirected log, no training log of a job
that trained nothing, and `run.py --help` listing what a user may type."""
from __future__ import annotations

import json
import re

import pytest
from conftest import CONF, FAST, compose_cfg, run_cli

from vsdr.experiments.build import build_job
from vsdr.experiments.job import run_job
from vsdr.plotting.dp import plot_dp_curve
from vsdr.plotting.words import axis_label, describe

NO_IMAGES = ["dataset.generate=null", "dataset.root=/nonexistent"]  # build_job reads no image


@pytest.mark.parametrize("operator", ["gaussian_blur_small", "super_resolution_x4", "gaussian_blur"])
def test_the_operator_preset_names_the_rows_and_the_title(operator):
    parts = build_job(compose_cfg(["experiment=images_small", f"operator={operator}", *NO_IMAGES]))
    assert parts.base_row["operator"] == operator
    assert parts.title.startswith(f"digits, {operator}, ")


IMAGE_ROWS = [{"sampler": "ours", "knob": "lam", "value": v, "mse": 0.01 + v, "psnr": 20.0,
               "fd_patch": 1.0 - v, "lpips_alex_standin": 0.5 - v / 4} for v in (0.0, 0.5, 1.0)]


def _labels(fig) -> tuple[str, str]:
    ax = fig.axes[0]
    return ax.get_xlabel().replace("\n", " "), ax.get_ylabel().replace("\n", " ")


def test_the_image_dp_plot_says_what_its_axes_measure():
    x, y = _labels(plot_dp_curve(IMAGE_ROWS, perception="fd_patch"))
    assert x == "perception: patch Fréchet distance to the clean images (lower is more natural)"
    assert y == "distortion: per-pixel MSE of [0, 1] images (lower is closer to the clean image)"
    x, _ = _labels(plot_dp_curve(IMAGE_ROWS, perception="lpips_alex_standin"))
    assert x.startswith("perception: LPIPS-alex stand-in (random weights: not the real LPIPS), ")


def test_every_metric_in_words_and_stand_ins_never_pass_as_the_real_metric():
    assert describe("lpips_vgg", images=True).startswith("LPIPS-vgg, a learned perceptual distance")
    assert describe("fid", images=True).startswith("FID, the Fréchet Inception distance")
    assert describe("fd_pca", images=True).startswith("PCA Fréchet distance to the clean images")
    assert describe("psnr", images=True) == "PSNR in dB (higher is closer to the clean image)"
    for column in ("fid_standin", "lpips_alex_standin", "lpips_squeeze_standin"):
        words = describe(column, images=True)
        assert "stand-in (random weights: not the real " in words and "lower" in words, column
    points = [{"mse": 1.0, "w2": 1.0}]
    assert axis_label("w2", "perception", points) == (
        "perception: W2, the Wasserstein-2 distance to the clean test points in data units "
        "(lower is more natural)")
    assert "to the posterior" in axis_label("w2", "perception", [{**points[0], "mmse": 0.5}])
    assert axis_label("mse", "distortion", points).startswith("distortion: MSE = E‖x0 − x̂‖² in data units²")


def bar_lines(log: str) -> list[str]:
    """The training bar's states in a log (tqdm separates them with carriage returns)."""
    return [s for s in re.split(r"[\r\n]", log) if re.match(r"(Epoch \d+|Training):", s)]


def test_training_bar_and_training_log_only_when_training(tmp_path, cache_dir):
    """Output not a terminal (captured, like ``> log 2>&1``): the training bar writes its first
    and last state (a training shorter than 30 s: two lines, not one per 5 % of the steps).
    logger=csv keeps the training log (train/version_0) of the job that trained; the same job
    again reuses the network and makes no train/ folder."""
    args = [*[a for a in FAST if a not in ("logger=none", "progress=false", "trainer.max_steps=60")],
            "trainer.max_steps=200", "trainer.log_every_n_steps=50", "data.n_test=16",
            "logger=csv", "progress=true"]
    first = run_cli([*args, "hydra.run.dir=a"], cwd=tmp_path)  # a fresh cache: it trains
    assert first.returncode == 0, first.stderr[-2000:]
    lines = bar_lines(first.stdout + first.stderr)
    assert 1 <= len(lines) <= 3 and "200/200" in lines[-1], lines
    log = tmp_path / "a" / "train" / "version_0"
    assert "train/loss" in (log / "metrics.csv").read_text() and (log / "hparams.yaml").is_file()
    run_job(compose_cfg(args), tmp_path / "b")  # in process: the same cache (cache_dir's env)
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["model"]["source"] == "cache"
    assert not (tmp_path / "b" / "train").exists()


def help_groups(text: str) -> dict[str, list[str]]:
    """``group: a, b, c`` lines (continued on indented lines) of the help's group section,
    without notes in parentheses."""
    section = text.split("== Config groups (group=option) ==\n")[1].split("\n\n")[0]
    groups: dict[str, str] = {}
    last = ""
    for line in section.splitlines():
        if line.startswith(" "):
            groups[last] += " " + line.strip()
        else:
            last, _, rest = line.partition(": ")
            groups[last] = rest
    return {g: [o.strip() for o in re.sub(r"\(.*?\)", "", v).split(",") if o.strip()]
            for g, v in groups.items()}


def test_help_lists_every_option_a_user_types_and_no_base(tmp_path):
    res = run_cli(["--help"], cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    groups = help_groups(res.stdout)
    on_disk = {d.name: sorted(p.stem for p in d.glob("*.yaml")) for d in CONF.iterdir()
               if d.is_dir() and d.name not in ("hydra", "local")}
    on_disk["experiment"] = [e for e in on_disk["experiment"] if not e.endswith("_base")]
    on_disk["gan@sampler.gan"] = on_disk.pop("gan")  # the GAN group as it is typed
    on_disk["hydra/launcher"] = ["local", "slurm", "slurm_cpu"]
    assert {g: sorted(v) for g, v in groups.items()} == on_disk
    compose_cfg(["sampler=pscgan", "gan@sampler.gan=conv_digits"])  # typed as listed, it composes
    plain = res.stdout.split("Plain keys: ")[1].split("`python run.py")[0]
    root = compose_cfg([])
    for key in root:
        if key not in on_disk and key != "hydra":  # every root key: itself, or its node.*
            assert re.search(rf"\b{key}(\.\*)?[,.\s]", plain), key
