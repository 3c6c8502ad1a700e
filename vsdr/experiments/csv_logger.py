"""``logger=csv``: Lightning's ``CSVLogger`` that makes its folder (``train/version_N`` in the
job dir) only once training writes to it, so a job whose network comes from the cache (nothing
trained) leaves no training log behind, empty or holding only copies of ``metrics.csv`` and
``.hydra/config.yaml``. Imported only when ``logger`` names it (it loads Lightning)."""
from __future__ import annotations

from argparse import Namespace
from typing import Any

from lightning.fabric.utilities.logger import _convert_params
from lightning.pytorch.loggers import CSVLogger


class TrainingCSVLogger(CSVLogger):
    """A ``CSVLogger`` that creates its folder lazily: hyper-parameters logged before then
    are held and written with the first training metric; ``started`` says whether the
    folder exists (``tracking.log_results`` writes results only to a started one)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: dict[str, Any] = {}

    @property
    def started(self) -> bool:
        """Whether training has written to this logger (its folder exists)."""
        return self._experiment is not None

    def log_hyperparams(self, params: dict[str, Any] | Namespace | None = None) -> None:
        if self.started:
            super().log_hyperparams(params)
        else:
            self._held.update(_convert_params(params) or {})

    @property
    def experiment(self):
        """Lightning's writer, created (with its folder) on first use, the held
        hyper-parameters handed to it then."""
        first = self._experiment is None
        writer = super().experiment
        if first and self._held:
            writer.log_hparams(self._held)
            self._held = {}
        return writer
