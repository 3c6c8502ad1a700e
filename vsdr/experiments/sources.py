"""Where the model a sampler consumes comes from, by ``_target_`` like every other group:
``score=network`` (``NetworkScore``: the ε-network of ``model=``, a family's module and YAML),
``score=exact_prior`` / ``exact_posterior`` (``ExactScore``: closed forms, analytic data only),
and, for a sampler that brings its own networks (``Sampler.own_networks``: PSCGAN's
``sampler.gan``), ``SamplerNetworks``. Each says which cache files it trains when they are
missing (``files``) and builds its model (``build``)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from vsdr.config import instantiate, target_of
from vsdr.errors import ConfigError
from vsdr.experiments.prior import cache_path, is_pretrained, load_or_train_prior
from vsdr.experiments.pscgan import gan_cache_path, is_official, load_or_train_pscgan


class ModelSource:
    """What a job's model is made from. ``uses_model``: it runs ``model=``'s network;
    ``label``: what the job title says about it (empty for the default)."""

    uses_model = False
    label = ""

    def files(self, cfg: DictConfig) -> list[Path]:
        """The cache files the job trains when they are missing (none by default)."""
        return []

    def build(self, cfg: DictConfig, parts, logger) -> tuple[object, dict]:
        raise NotImplementedError


class NetworkScore(ModelSource):
    """The ε-network of ``model=``: pretrained (its family's class sets ``pretrained``), loaded
    from ``model.ckpt``, or trained and cached by the hash of its training key."""

    uses_model = True

    def __init__(self, name: str = "network"):
        self.name = name

    def files(self, cfg: DictConfig) -> list[Path]:
        if is_pretrained(cfg) or cfg.model.get("ckpt"):
            return []
        return [cache_path(cfg)]

    def build(self, cfg: DictConfig, parts, logger) -> tuple[object, dict]:
        train = None
        if not is_pretrained(cfg):
            train = parts.task.training_data()
            if train is None and not cfg.model.get("ckpt"):
                raise ConfigError(f"dataset={cfg.dataset.name} has no train_root: give model.ckpt=PATH "
                                  "of a trained network or dataset.train_root=FOLDER to train one")
        return load_or_train_prior(cfg, parts.schedule, train, logger, parts.device)


#: ``score=exact_*``'s kinds: the closed-form score each builds from an ``AnalyticTask``
EXACT_KINDS = ("prior", "posterior")


class ExactScore(ModelSource):
    """A closed-form score of an analytic data set: ``kind=prior`` (the diffused prior's; the
    sampler adds its guidance) or ``kind=posterior`` (the diffused posterior's)."""

    def __init__(self, kind: str, name: str = ""):
        if kind not in EXACT_KINDS:
            raise ValueError(f"kind={kind!r} is not one of {list(EXACT_KINDS)} (the exact prior score "
                             "plus guidance, or the exact posterior score)")
        self.kind, self.name = kind, name or f"exact_{kind}"
        self.label = f"score={self.name}"

    def build(self, cfg: DictConfig, parts, logger) -> tuple[object, dict]:
        from vsdr.tasks import AnalyticTask

        task = parts.task
        if not isinstance(task, AnalyticTask):
            raise ConfigError(f"score={self.name} needs a data set with a closed-form prior "
                              f"(gaussian, mixture), not dataset={cfg.dataset.name}")
        exact = {"prior": task.exact_prior, "posterior": task.exact_posterior}[self.kind]
        return exact(parts.schedule), {"source": self.name}


class SamplerNetworks(ModelSource):
    """The networks a sampler brings (``sampler.gan``: PSCGAN's generator and critic), loaded
    from ``sampler.gan.ckpt``, the published file, or trained and cached."""

    def files(self, cfg: DictConfig) -> list[Path]:
        return [] if cfg.sampler.gan.get("ckpt") or is_official(cfg) else [gan_cache_path(cfg)]

    def build(self, cfg: DictConfig, parts, logger) -> tuple[object, dict]:
        return load_or_train_pscgan(cfg, parts.task.training_data(), parts.task.operator, logger,
                                    parts.device)


def model_source(cfg: DictConfig) -> ModelSource:
    """The job's ``ModelSource``: ``SamplerNetworks`` for a sampler with its own networks (then
    ``score=`` must stay ``network``: it would not be used), else the ``score=`` component."""
    source = instantiate(cfg.score, "score")
    if not isinstance(source, ModelSource):
        raise ConfigError(f"score._target_={cfg.score.get('_target_')} is not a vsdr ModelSource "
                          "(vsdr.experiments.sources)")
    if getattr(target_of(cfg.sampler, "sampler"), "own_networks", False):
        if not isinstance(source, NetworkScore):
            raise ConfigError(f"score={cfg.score.get('name')} does not fit sampler="
                              f"{cfg.sampler.get('_target_')}: that sampler brings its own networks "
                              "(sampler.gan) and takes no score; drop score=")
        return SamplerNetworks()
    return source
