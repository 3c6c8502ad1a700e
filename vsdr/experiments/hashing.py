"""Short, stable hashes of configs: the cache keys of trained networks (score net, PSCGAN) and
the results hash that lets a finished job be skipped (``resume``)."""
from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf


def config_hash(obj: object, n: int = 12) -> str:
    """Short sha256 of a config (or any JSON-able object), keys sorted."""
    if isinstance(obj, DictConfig):
        obj = OmegaConf.to_container(obj, resolve=True)
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]
