"""ζ(λ) calibration on images (vsdr/experiments/tuning.py, scripts/tune_zeta.py): the picking
rule on hand-computed rows, the held-out images, and the written table read back by a composed
config."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import CONF, ROOT
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from vsdr.experiments.tuning import (
    CALIBRATED,
    held_out_set,
    monotone_fit,
    pav_nonincreasing,
    pick_zeta,
    raw_pick,
    tuned_key,
    write_table,
)


def rows_of(lam: float, table: list[tuple[float, float, float]]) -> list[dict]:
    return [{"lam": lam, "zeta": z, "mse": m, "perception": p} for z, m, p in table]


def test_pav_nonincreasing_hand_cases():
    assert pav_nonincreasing([3.0, 1.0, 2.0]) == [3.0, 1.5, 1.5]
    assert pav_nonincreasing([1.0, 2.0, 3.0]) == [2.0, 2.0, 2.0]
    assert pav_nonincreasing([5.0, 4.0, 4.0, 1.0]) == [5.0, 4.0, 4.0, 1.0]
    # 4, 8 pool to 6; then 6, 6, 7 pool to 19/3
    assert pav_nonincreasing([4.0, 8.0, 7.0, 1.0]) == pytest.approx([19 / 3] * 3 + [1.0])
    assert pav_nonincreasing([1.0, 3.0], weights=[3.0, 1.0]) == [1.5, 1.5]


def test_monotone_fit_takes_the_closer_direction():
    """[4, 8, 1]: non-increasing [6, 6, 1] (squared error 8) beats non-decreasing [4, 4.5, 4.5]
    (24.5). [1, 2, 1.5, 4]: non-decreasing [1, 1.75, 1.75, 4] (0.125) beats non-increasing
    (all 2.125: 7.1875). A tie, [1, 1], is non-increasing either way."""
    assert monotone_fit([4.0, 8.0, 1.0]) == [6.0, 6.0, 1.0]
    assert monotone_fit([1.0, 2.0, 1.5, 4.0]) == [1.0, 1.75, 1.75, 4.0]
    assert monotone_fit([4.0, 6.0, 6.0]) == [4.0, 6.0, 6.0]
    assert monotone_fit([3.0, 3.0]) == [3.0, 3.0]


def test_raw_pick_weighs_mse_by_one_minus_lambda():
    """Two rows: a (mse 1, p 4), b (mse 2, p 1). Cost a = λ log 4, b = (1 − λ) log 2:
    λ = 0.25 gives 0.347 < 0.520 (a); λ = 0.75 gives 1.040 > 0.173 (b)."""
    table = [(1.0, 1.0, 4.0), (2.0, 2.0, 1.0)]
    assert raw_pick(rows_of(0.25, table), 0.25)["zeta"] == 1.0
    assert raw_pick(rows_of(0.75, table), 0.75)["zeta"] == 2.0
    assert raw_pick(rows_of(0.0, table), 0.0)["zeta"] == 1.0    # the MSE minimum
    assert raw_pick(rows_of(1.0, table), 1.0)["zeta"] == 2.0    # the perception minimum
    # the measures' scale does not matter: perception × 1000 picks the same
    big = [(z, m, 1000 * p) for z, m, p in table]
    assert raw_pick(rows_of(0.25, big), 0.25)["zeta"] == 1.0


def test_pick_zeta_minima_and_a_monotone_fix():
    """ζ ∈ {1, 2, 4, 8}. λ = 0: MSE minimum at ζ = 4. λ = 1: perception minimum at ζ = 1.
    λ = 0.5 minimises mse·p: 4, 2, 4, 1.5 (×1e-5) → ζ = 8. Raw 4, 8, 1 is not
    non-increasing; pooling 4 and 8 gives 6, 6, 1."""
    rows = rows_of(0.0, [(1, 3e-3, 1e-2), (2, 2e-3, 1e-2), (4, 1e-3, 2e-2), (8, 5e-3, 9e-2)])
    rows += rows_of(0.5, [(1, 4e-3, 1e-2), (2, 2e-3, 1e-2), (4, 2e-3, 2e-2), (8, 1e-3, 1.5e-2)])
    rows += rows_of(1.0, [(1, 9e-3, 1e-3), (2, 2e-3, 3e-3), (4, 1e-3, 5e-3), (8, 1e-3, 9e-3)])
    table = pick_zeta(rows)
    assert table["lam"] == [0.0, 0.5, 1.0]
    assert table["raw"] == [4.0, 8.0, 1.0]
    assert table["value"] == [6.0, 6.0, 1.0]
    # named perception column
    renamed = [{**{k: v for k, v in r.items() if k != "perception"}, "fd_patch": r["perception"]}
               for r in rows]
    assert pick_zeta(renamed, "fd_patch")["value"] == [6.0, 6.0, 1.0]


def test_held_out_set_is_disjoint_and_measured_as_in_a_job():
    """Images start.. of the test folder, with the noise they get as test images of a job with
    data.limit ≥ start + count (noise per image index)."""
    from vsdr.tasks.images import measure

    images = torch.arange(10.0).reshape(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous()
    dataset = SimpleNamespace(test_images=lambda n: images[:n])
    operator = SimpleNamespace(forward=lambda x: x)
    task = SimpleNamespace(dataset=dataset, operator=operator, sigma_y=0.2)
    test, items = held_out_set(task, 6, 3, seed=0)
    assert items.tolist() == [6, 7, 8]
    assert test.x0[:, 0, 0, 0].tolist() == [6.0, 7.0, 8.0]
    assert torch.equal(test.y, measure(images[:9], operator, 0.2, 0)[6:])
    assert not torch.equal(test.y[0] - test.x0[0], measure(images[:6], operator, 0.2, 0)[0] - images[0])
    with pytest.raises(ValueError, match="no room"):
        held_out_set(task, 8, 3, seed=0)


def test_written_table_is_read_by_a_composed_config(tmp_path):
    """write_table's entry is what ${vsdr.tuned_zeta:...} gives the severe digits experiment;
    another operator, another σ and the 2D tables are untouched."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF, conf)
    (conf / CALIBRATED).write_text("zeta: {}\n")  # no entry: the shipped ones are not under test

    def cfg_of(overrides):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
            return compose(config_name="config", overrides=overrides)

    severe = ["experiment=images_small_severe"]
    key = tuned_key(cfg_of(severe))
    assert key == ["digits", "gaussian_blur_small", "dps", "0.2"]
    write_table(conf / CALIBRATED, key, {"lam": [0.0, 0.5, 1.0], "value": [6.0, 6.0, 1.0]}, "test")
    write_table(conf / CALIBRATED, ["digits", "gaussian_blur_small", "dps", "0.5"],
                {"lam": [0.0, 1.0], "value": [2.0, 0.5]}, "test")
    cfg = cfg_of(severe)
    assert list(cfg.sampler.zeta.lam) == [0.0, 0.5, 1.0]
    assert list(cfg.sampler.zeta.value) == [6.0, 6.0, 1.0]
    assert list(cfg_of([*severe, "noise.sigma=0.5"]).sampler.zeta.value) == [2.0, 0.5]
    assert list(cfg_of([*severe, "noise.sigma=0.1"]).sampler.zeta.value) == [0.2, 0.2]
    assert list(cfg_of([*severe, "operator=super_resolution_x4"]).sampler.zeta.value) == [0.2, 0.2]
    assert list(cfg_of(["dataset=scurve", "noise.sigma=0.75"]).sampler.zeta.value) == [0.25, 0.25]


def test_cli_picks_from_a_scan_csv(tmp_path):
    """scripts/tune_zeta.py --rows: the hand case above as a scan CSV gives the table 6, 6, 1
    at this setting's key in --table."""
    from omegaconf import OmegaConf

    from vsdr.experiments.writer import write_csv

    table = {0.0: [(1, 3e-3, 1e-2), (2, 2e-3, 1e-2), (4, 1e-3, 2e-2), (8, 5e-3, 9e-2)],
             0.5: [(1, 4e-3, 1e-2), (2, 2e-3, 1e-2), (4, 2e-3, 2e-2), (8, 1e-3, 1.5e-2)],
             1.0: [(1, 9e-3, 1e-3), (2, 2e-3, 3e-3), (4, 1e-3, 5e-3), (8, 1e-3, 9e-3)]}
    rows = [{"lam": lam, "zeta": z, "mse": m, "fd_patch": p} for lam, t in table.items() for z, m, p in t]
    write_csv(tmp_path / "scan.csv", rows)
    out = tmp_path / "tuned.yaml"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "tune_zeta.py"),
                           "experiment=images_small_severe", "--rows", str(tmp_path / "scan.csv"),
                           "--write", "--table", str(out)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    entry = OmegaConf.load(out).zeta.digits.gaussian_blur_small.dps["0.2"]
    assert list(entry.lam) == [0.0, 0.5, 1.0]
    assert list(entry.value) == [6.0, 6.0, 1.0]

def test_scan_builds_the_network_as_a_job_does(monkeypatch):
    """The scan samples with the job's network wrapping (build_sampling_model: precision=,
    channels-last, net_batch), so a ζ tuned under precision=bf16 is tuned on the bf16 network."""
    import vsdr.experiments.build as build
    from vsdr.experiments.tuning import scan

    class Built(Exception):
        pass

    seen = []

    def spy(cfg, parts, logger):
        seen.append(str(cfg.precision))
        raise Built

    monkeypatch.setattr(build, "build_sampling_model", spy)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=images_small", "precision=bf16"])
    with pytest.raises(Built):
        scan(cfg, [(0.0, 1.0)], start=0, count=1)
    assert seen == ["bf16"]
