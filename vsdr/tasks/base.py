"""What a kind of data brings to a job: its test set and measurements, its evaluation rows,
its figures and its stdout table. ``vsdr.experiments.job.run_job`` runs one pipeline
(validate → build → sample in resumable chunks → evaluate → write) for every kind.

A task holds objects and plain values (built once by ``vsdr.experiments.build``), never
the config.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

#: a function the job hands to ``Task.figures`` when its sampler can keep its chain:
#: ``(y, knob values, seeds) -> trajectories (steps+1, B, ...)``
TrajectoryFn = Callable[[Tensor, Sequence[float], Sequence[int]], Tensor]


@dataclass
class TestSet:
    """``x0``: the clean test items ``(n, ...)`` (analytic data: exact posterior draws, the
    reference panel); ``y``: their measurements ``(n, ...)`` in the units of ``y``."""

    x0: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.x0)

    def select(self, indices) -> TestSet:
        import torch

        idx = torch.as_tensor(indices, dtype=torch.long)
        return TestSet(self.x0[idx], self.y[idx])

    def repeat_each(self, times: int) -> TestSet:
        """Each item ``times`` times in a row (``data.samples_per_image``: the same clean
        image and the same measurement for every sample of it)."""
        return TestSet(self.x0.repeat_interleave(times, 0), self.y.repeat_interleave(times, 0))


def expand_items(indices, times: int):
    """Global ids ``j · times + s`` (``s < times``) of the samples of test items ``indices``,
    item-major: contiguous whenever ``indices`` is (a shard, a chunk)."""
    import numpy as np

    idx = np.asarray(indices, dtype=np.int64)
    return (idx[:, None] * int(times) + np.arange(int(times))).reshape(-1)


class Task:
    """One kind of data. Subclasses set ``kind`` and ``columns`` and implement
    ``test_set``, ``evaluate`` and, where they add any, ``figures``."""

    kind: ClassVar[str] = ""
    #: the first columns of metrics.csv (the rows' other keys follow, in row order)
    columns: ClassVar[list[str]] = ["dataset", "operator", "sigma", "sigma_space", "sampler", "knob",
                                    "value", "mse"]
    #: whether the job writes items.csv (one row per test item and knob value)
    per_item: ClassVar[bool] = True
    #: units written into metrics.json
    units: ClassVar[dict[str, str]] = {}
    #: what sets the number of test items (for messages)
    size_name: ClassVar[str] = "data.n_test"
    #: the factor that turns ``sigma_y`` into the units of ``[0, 1]`` images (DiffPIR's ρ_t is
    #: written in them); 1 for data with no ``[0, 1]`` convention (2D, analytic): data units
    sigma_to_01: ClassVar[float] = 1.0

    def __init__(self, dataset, operator, sigma: float, sigma_space: str):
        self.dataset, self.operator = dataset, operator
        self.sigma, self.sigma_space = float(sigma), str(sigma_space)
        self.notes: list[str] = []

    @property
    def sigma_y(self) -> float:
        """σ_y in the units of ``y`` (what the samplers use)."""
        return self.sigma

    def training_data(self):
        """What the score network (or PSCGAN) trains on: an object with ``sample(n, seed)``,
        or ``None`` when there is none (a checkpoint must then be given)."""
        return self.dataset

    def test_set(self, seed: int) -> TestSet:
        """Every test item of the job (shards select from it) and its measurement."""
        raise NotImplementedError

    def evaluate(self, test: TestSet, recon: Tensor, values: Sequence[float], seed: int,
                 workdir=None) -> list[dict]:
        """One dict of metric columns per knob value (``recon``: ``(len(values), n, ...)``)."""
        raise NotImplementedError

    def item_names(self, n: int) -> list[str]:
        """The names of the ``n`` test items in restored/: the index, zero-padded (``00007``)."""
        return [f"{i:05d}" for i in range(n)]

    def perception(self, rows: list[dict]) -> str:
        """The measure on the DP plot's x axis."""
        return "w2"

    def figures(self, rows: list[dict], test: TestSet, recon: Tensor, values: Sequence[float],
                knob: str, title: str, trajectories: TrajectoryFn | None = None, seed: int = 0) -> dict:
        """Extra figures of this kind, ``{file name: matplotlib figure}``."""
        return {}

    def print_table(self, rows: list[dict]) -> None:
        """knob, MSE, W2 on stdout, with MSE(λ=1)/MSE(λ=0) when both are there."""
        knob = rows[0]["knob"]
        print(f"\n{knob:>8} {'MSE':>10} {'W2':>10}")
        for r in rows:
            print(f"{float(r['value']):>8.3g} {float(r['mse']):>10.4f} {float(r['w2']):>10.4f}")
        by_value = {float(r["value"]): float(r["mse"]) for r in rows}
        if knob == "lam" and 0.0 in by_value and 1.0 in by_value and by_value[0.0] > 0:
            print(f"MSE(λ=1)/MSE(λ=0) = {by_value[1.0] / by_value[0.0]:.3f}")
