"""vsdr's side of the Hydra config: building a component from its node (``instantiate``, with
unknown keys refused by name) and the ``vsdr.tuned_zeta`` resolver that reads the ζ(λ) tables
tuned per data set, operator, form and σ (``conf/tuned/``), and ``vsdr.image_data`` (whether the
data are images)."""
from __future__ import annotations

import inspect

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from vsdr.errors import ConfigError

#: Hydra's own keys of an instantiable node
HYDRA_KEYS = {"_target_", "_recursive_", "_convert_", "_partial_", "_args_"}
#: keys of a component's config that describe it to vsdr and are not constructor arguments
#: (``name``: the column in result tables, passed on when the constructor takes it;
#: ``values``: the sweep of a sampler's knob; ``gan``: PSCGAN's networks and training;
#: ``file`` and ``published``: the name of a file the job reads and cannot make, and where it is
#: published, for the message that stops the job when it is missing)
META = {"name", "values", "gan", "file", "published"}


def target_of(node: DictConfig | dict, group: str):
    """The class or function that ``node._target_`` names (``ConfigError`` when it cannot be
    imported)."""
    target = node.get("_target_") if node is not None else None
    if not target:
        raise ConfigError(f"{group} has no _target_: it names no class to build")
    try:
        return hydra.utils.get_method(str(target))
    except Exception as e:  # noqa: BLE001 - a bad _target_ is the user's config
        raise ConfigError(f"{group}._target_={target!r} cannot be imported ({e})") from None


def check_arguments(target, keys, group: str) -> None:
    """``ConfigError`` naming the first of ``keys`` that ``target`` does not take."""
    params = inspect.signature(target).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if n != "self"
                and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    for key in keys:
        if key not in accepted:
            name = getattr(target, "__qualname__", str(target))
            raise ConfigError(f"{group}.{key} is not an argument of {name} ({group}): its arguments "
                              f"are {accepted}; remove the key or fix its spelling")


def instantiate(node: DictConfig | dict, group: str, **kwargs):
    """Build the component of config ``node`` (``group``: its place in the config, for
    messages) with ``kwargs`` added where the constructor takes them. Meta keys (``META``)
    are dropped unless the constructor takes them; every other key must be a constructor
    argument. A ``ValueError`` raised by the constructor (a value it refuses) becomes a
    ``ConfigError`` naming the group."""
    cfg = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    target = target_of(cfg, group)
    accepted = set(inspect.signature(target).parameters)
    for key in META & set(cfg):
        if key not in accepted:
            cfg.pop(key)
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    check_arguments(target, [k for k in cfg if k not in HYDRA_KEYS], group)
    try:
        return hydra.utils.instantiate(cfg, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        if isinstance(cause, ValueError):
            raise ConfigError(f"{group}: {cause}") from None
        raise


def tuned_table(tables: DictConfig, dataset: str, operator: str | None, form: str | None,
                sigma: float) -> DictConfig:
    """The ζ(λ) table of ``tables`` (``tuned.zeta``) for this setting:
    ``<dataset>[.<operator>][.<form>].<σ>``, the operator and form levels taken only where the
    data set's entry has them (2D entries are keyed by σ alone; image entries, written by
    scripts/tune_zeta.py, by all four); ``default`` when there is none."""
    node = tables.get(dataset)
    for level in (operator, form):
        if node is not None and level is not None and level in node:
            node = node[level]
    key = f"{float(sigma):g}"
    return node[key] if node is not None and key in node else tables.default


def tuned_zeta(field: str, *, _root_: DictConfig):
    """``${vsdr.tuned_zeta:lam}`` / ``${vsdr.tuned_zeta:value}``: that list of the ζ(λ) table of
    ``tuned.zeta`` for this data set, operator, guidance form and σ (``tuned_table``), else of
    ``tuned.zeta.default``."""
    table = tuned_table(_root_.tuned.zeta, str(_root_.dataset.get("name")),
                        _root_.operator.get("name"), _root_.sampler.get("form"), _root_.noise.sigma)
    return list(OmegaConf.to_container(table, resolve=True)[field])


def image_data(*, _root_: DictConfig) -> bool:
    """``${vsdr.image_data:}``: whether ``dataset=`` builds an ``ImageDataset`` (read from its
    ``_target_``; false when it names none or one that cannot be imported)."""
    from vsdr.data.images import ImageDataset

    try:
        cls = target_of(_root_.dataset, "dataset")
    except ConfigError:
        return False
    return isinstance(cls, type) and issubclass(cls, ImageDataset)


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("vsdr.tuned_zeta"):
        OmegaConf.register_new_resolver("vsdr.tuned_zeta", tuned_zeta)
    if not OmegaConf.has_resolver("vsdr.image_data"):
        OmegaConf.register_new_resolver("vsdr.image_data", image_data)
