"""Two sets of finished jobs compared seed for seed (vsdr/experiments/compare.py,
scripts/compare_runs.py), on job folders written by hand with numbers worked out by hand."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from conftest import load_script

from vsdr.experiments.compare import (
    compare_jobs,
    match_by_seed,
    paired_change,
    read_finished_job,
)

compare_runs = load_script("compare_runs")


def write_job(path: Path, seed: int, errors: dict[float, list[float]], metrics: dict[float, dict]) -> Path:
    """A job folder: items.csv with ``errors[value][index]`` and metrics.csv rows."""
    path.mkdir(parents=True)
    with open(path / "items.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "knob", "value", "sq_err"])
        for v, errs in errors.items():
            for i, e in enumerate(errs):
                w.writerow([i, "lam", v, e])
    with open(path / "metrics.csv", "w", newline="") as f:
        cols = ["knob", "value", *next(iter(metrics.values())), "seed"]
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for v, m in metrics.items():
            w.writerow({"knob": "lam", "value": v, **m, "seed": seed})
    return path


def test_paired_change_by_hand():
    """d = new − ref = (1, 0, 2): mean 1, sd 1, SE 1/√3, z = √3, 1/2 of ref's mean 2."""
    c = paired_change([1.0, 2.0, 3.0], [2.0, 2.0, 5.0])
    assert c["n"] == 3 and c["ref"] == 2.0 and c["new"] == 3.0 and c["diff"] == 1.0
    assert c["se"] == pytest.approx(1 / math.sqrt(3))
    assert c["z"] == pytest.approx(math.sqrt(3))
    assert c["rel"] == pytest.approx(0.5)
    assert paired_change([1.0, 2.0], [1.0, 2.0])["z"] == 0.0
    with pytest.raises(ValueError, match="at least 2"):
        paired_change([1.0], [1.0])


@pytest.fixture
def two_sets(tmp_path):
    """Seeds 0 and 1 in both sets (and seed 2 only in the new one), λ = 0 and 1."""
    ref = [write_job(tmp_path / "ref0", 0, {0.0: [1.0, 2.0], 1.0: [2.0, 4.0]},
                     {0.0: {"mse": 0.10, "fd": 5.0}, 1.0: {"mse": 0.20, "fd": 1.0}}),
           write_job(tmp_path / "ref1", 1, {0.0: [1.0, 2.0], 1.0: [3.0, 3.0]},
                     {0.0: {"mse": 0.12, "fd": 6.0}, 1.0: {"mse": 0.30, "fd": 2.0}})]
    new = [write_job(tmp_path / "new1", 1, {0.0: [1.0, 2.0], 1.0: [4.0, 4.0]},
                     {0.0: {"mse": 0.11, "fd": 5.5}, 1.0: {"mse": 0.40, "fd": 1.5}}),
           write_job(tmp_path / "new0", 0, {0.0: [1.0, 2.0], 1.0: [3.0, 5.0]},
                     {0.0: {"mse": 0.10, "fd": 5.0}, 1.0: {"mse": 0.40, "fd": 3.0}}),
           write_job(tmp_path / "new2", 2, {1.0: [9.0, 9.0]}, {1.0: {"mse": 9.0, "fd": 9.0}})]
    return ref, new


def test_compare_jobs_pairs_seed_for_seed(two_sets):
    """λ = 1: ref errors (2, 4, 3, 3), new (3, 5, 4, 4) seed for seed: every pair +1, so Δ = 1,
    SE 0, 1/3 of ref's mean 3; seed 2 has no reference and is left out. MSE: new mean 0.4 is above
    ref's range 0.2–0.3 (out), fd's 2.25 above 1–2 (out). λ = 0: equal items (Δ = 0), MSE 0.105
    inside 0.10–0.12, fd 5.25 inside 5–6."""
    ref, new = two_sets
    rows = compare_jobs([read_finished_job(p) for p in ref], [read_finished_job(p) for p in new],
                        ("mse", "fd"))
    assert [r["value"] for r in rows] == [0.0, 1.0]
    lam0, lam1 = rows
    assert lam1["seeds"] == 2 and lam1["items"]["n"] == 4
    assert lam1["items"]["diff"] == 1.0 and lam1["items"]["se"] == 0.0 and lam1["items"]["z"] == math.inf
    assert lam1["items"]["rel"] == pytest.approx(1 / 3)
    assert lam1["mse"]["ref"] == pytest.approx({"mean": 0.25, "lo": 0.2, "hi": 0.3})
    assert lam1["mse"]["new"]["mean"] == pytest.approx(0.4) and not lam1["mse"]["inside"]
    assert lam1["fd"]["new"]["mean"] == pytest.approx(2.25) and not lam1["fd"]["inside"]
    assert lam0["items"]["diff"] == 0.0 and lam0["items"]["z"] == 0.0
    assert lam0["mse"]["inside"] and lam0["fd"]["inside"]
    assert lam0["mse"]["new"]["mean"] == pytest.approx(0.105)


def test_unmatched_or_repeated_seeds_and_missing_files_are_refused(two_sets, tmp_path):
    ref, new = two_sets
    jobs = [read_finished_job(p) for p in ref]
    with pytest.raises(ValueError, match="no seed in common"):
        match_by_seed(jobs[:1], [read_finished_job(new[0])])
    with pytest.raises(ValueError, match="repeat a seed"):
        match_by_seed([jobs[0], jobs[0]], jobs)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no metrics.csv"):
        read_finished_job(tmp_path / "empty")
    with pytest.raises(ValueError, match="no column 'lpips'"):
        compare_jobs(jobs, [read_finished_job(p) for p in new], ("lpips",))


def test_the_script_prints_one_row_per_value(two_sets, capsys):
    ref, new = two_sets
    assert compare_runs.main(["--ref", *map(str, ref), "--new", *map(str, new), "--columns", "mse,fd"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| value | seeds | paired change of sq_err | z | mse ref | mse new | fd ref")
    assert lines[2].startswith("| 0 | 2 | +0.0 % ± 0.0 % (4 pairs) | +0.0 | 0.11 (0.1–0.12) | "
                               "0.105 (0.1–0.11) in")
    assert lines[3].startswith("| 1 | 2 | +33.3 % ± 0.0 % (4 pairs) | +inf | 0.25 (0.2–0.3) | "
                               "0.4 (0.4–0.4) out")
    assert compare_runs.main(["--ref", str(ref[0]), "--new", str(new[2])]) == 2
    assert "no seed in common" in capsys.readouterr().err
