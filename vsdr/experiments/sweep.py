"""A multirun's configs, checked before its first job starts (``hydra_plugins.vsdr_sweeper``)."""
from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from omegaconf import DictConfig, open_dict

from vsdr.errors import ConfigError
from vsdr.experiments.validate import validate_config

log = logging.getLogger(__name__)


def job_config(config_loader, master: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The config one job of the sweep runs with (Hydra's composition, its ``hydra`` node removed
    as Hydra does before it calls the job)."""
    cfg = config_loader.load_sweep_config(master_config=master, sweep_overrides=list(overrides))
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def first_problem(config_loader, master: DictConfig, jobs: Sequence[Sequence[str]]) -> str | None:
    """The sentence that stops the sweep: the first job (in launch order) whose config
    ``validate_config`` refuses, named by its number and overrides; ``None`` when every job's
    config is valid."""
    t0 = time.perf_counter()
    for i, overrides in enumerate(jobs):
        try:
            validate_config(job_config(config_loader, master, overrides))
        except ConfigError as e:
            return (f"{e} (in job #{i} of the sweep's {len(jobs)}: {' '.join(overrides)}; "
                    "no job was started)")
    log.debug("vsdr: checked the configs of %d jobs in %.1f s", len(jobs), time.perf_counter() - t0)
    return None
