"""One load-or-train cache for every network a job trains (the score network, PSCGAN's pair):
a file named by a hash of the network's training key, read as data (``read_checkpoint`` through
``load_state_strict``), written as a plain state dict with a JSON sidecar (``write_checkpoint``:
both atomic), trained when missing."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import hydra
from torch import nn

from vsdr.experiments.hashing import config_hash
from vsdr.experiments.writer import write_checkpoint
from vsdr.models.score import load_state_strict

log = logging.getLogger(__name__)

#: trains the network in place or returns a new one (an EMA copy), and the seconds it took
Trainer = Callable[[], tuple[nn.Module, float]]


@dataclass(frozen=True)
class NetworkCache:
    """The cache entry ``<cache_dir>/<stem>-<hash of key>.pt`` (and its ``.json`` sidecar:
    the training key and the training seconds). ``label`` names the network in the log."""

    cache_dir: str
    stem: str
    key: dict
    label: str = "network"

    @property
    def path(self) -> Path:
        """The rule: ``<stem>-<config_hash(key)>.pt`` in ``cache_dir`` (absolute from the
        folder the job was started in)."""
        return Path(hydra.utils.to_absolute_path(self.cache_dir)) / f"{self.stem}-{config_hash(self.key)}.pt"

    def exists(self) -> bool:
        return self.path.is_file()

    def load_or_train(self, net: nn.Module, train: Trainer, what: str = "cached checkpoint"
                      ) -> tuple[nn.Module, dict]:
        """``net`` with the cached weights loaded strictly (``source: cache``), or the network
        ``train()`` returns, written to the cache (``source: trained``, ``train_seconds``).
        The dict also holds ``path``."""
        path = self.path
        if path.is_file():
            load_state_strict(net, path, what=what)
            log.info("%s: reusing %s", self.label, path)
            return net, {"path": str(path), "source": "cache"}
        log.info("%s: no checkpoint for this config, training (%s)", self.label, path.name)
        net, seconds = train()
        write_checkpoint(path, net.state_dict(), {"training_key": self.key, "train_seconds": seconds})
        return net, {"path": str(path), "source": "trained", "train_seconds": seconds}
