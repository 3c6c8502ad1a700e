"""The type and range of every plain config key, as a table (``RULES``: key → kind, range,
what null means, why), and the keys the config may hold at all (``conf/config.yaml``'s own,
and the groups of its defaults list). Adding a key to ``conf/config.yaml`` means adding a row
here (``tests/test_rules.py`` fails otherwise). Each failure is one sentence naming the value
and what would fit."""
from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from vsdr.errors import ConfigError

#: vsdr's config tree
CONF = Path(__file__).resolve().parents[2] / "conf"
KINDS = ("whole", "number", "flag", "numbers", "text")


@dataclass(frozen=True)
class Rule:
    """What a key holds: ``kind`` (``whole``: a whole number, ``number``: an int or a float,
    ``flag``: true or false, ``numbers``: a list of numbers, ``text``: a string), the range
    ``low``..``high`` of its number(s) (``open_low`` / ``open_high``: the bound itself
    excluded), ``null``: what null means when it is allowed, and ``why``: what the key is."""

    kind: str
    why: str
    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False
    null: str | None = None

    def __post_init__(self) -> None:
        assert self.kind in KINDS, self.kind

    @property
    def allowed(self) -> str:
        """What fits, in words: ``a whole number >= 1``, ``a number in (0, 1)``, …"""
        noun = {"whole": "a whole number", "number": "a number", "numbers": "a list of numbers",
                "flag": "true or false", "text": "a text (a path)"}[self.kind]
        if self.kind in ("flag", "text"):
            return noun
        lo, hi = math.isfinite(self.low), math.isfinite(self.high)
        if lo and hi:
            return (f"{noun} in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.open_high else ']'}")
        if lo:
            return f"{noun} {'>' if self.open_low else '>='} {self.low:g}"
        if hi:
            return f"{noun} {'<' if self.open_high else '<='} {self.high:g}"
        return noun

    def _in_range(self, x) -> bool:
        kind = (int,) if self.kind == "whole" else (int, float)
        if isinstance(x, bool) or not isinstance(x, kind) or math.isnan(x):
            return False
        return (math.isfinite(x) and (x > self.low if self.open_low else x >= self.low)
                and (x < self.high if self.open_high else x <= self.high))

    def fits(self, value) -> bool:
        if value is None:
            return self.null is not None
        if self.kind == "flag":
            return isinstance(value, bool)
        if self.kind == "text":
            return isinstance(value, str)
        if self.kind == "numbers":
            return isinstance(value, (list, tuple, ListConfig)) and all(self._in_range(v) for v in value)
        return self._in_range(value)

    def problem(self, key: str, value) -> str | None:
        """The sentence saying why ``key=value`` does not fit, or ``None``."""
        if self.fits(value):
            return None
        either = f"null ({self.null}) or " if self.null is not None else ""
        return f"{key}={shown(value)} must be {either}{self.allowed}: {self.why}"


def shown(value) -> str:
    """``value`` as the command line would write it (``null``, ``'abc'``, ``[0, 1.5]``)."""
    if value is None:
        return "null"
    if isinstance(value, ListConfig):
        value = list(value)
    return repr(value) if isinstance(value, str) else str(value)


def whole(low: float, why: str, null: str | None = None) -> Rule:
    return Rule("whole", why, low=low, null=null)


def flag(why: str) -> Rule:
    return Rule("flag", why)


#: every plain key of conf/config.yaml (and the component keys whose range vsdr relies on)
RULES: dict[str, Rule] = {
    "seed": whole(0, "the job seed draws the test points, the measurement noise and one sampler "
                     "seed per point"),
    "channels_last": flag("the network and its input in channels-last memory format"),
    "threads": whole(1, "torch's intra-op threads", null="1 on CPU, torch's default on CUDA"),
    "progress": flag("progress bars for training and sampling"),
    "data.n_train": whole(1, "the training points (images: training images) of the score network"),
    "data.n_test": whole(2, "the test points; W2 needs at least 2"),
    "data.limit": whole(1, "images: the first `limit` test images", null="all of them"),
    "data.batch_size": whole(1, "the test items sampled together", null="all at once"),
    "data.net_batch": whole(1, "the rows of one network call", null="off"),
    "data.shard": whole(0, "the block of the test items this job evaluates (0-based)"),
    "data.num_shards": whole(1, "the blocks the test items are split into (1: no sharding)"),
    "data.samples_per_image": whole(1, "samples per test image and knob value"),
    "diffusion.T": whole(2, "the diffusion's steps; the chain needs at least 2"),
    "diffusion.beta_start": Rule("number", "the first β of the linear schedule", 0, 1, True, True),
    "diffusion.beta_end": Rule("number", "the last β of the linear schedule", 0, 1, True, True),
    "train.batch_size": whole(1, "training points per step"),
    "train.lr": Rule("number", "the learning rate", 0, open_low=True),
    "train.ema_decay": Rule("number", "the weight of the moving average of the weights", 0, 1),
    "train.seed": whole(0, "the training seed"),
    "eval.w2_max_exact": whole(2, "exact OT up to this many points"),
    "eval.kl_max_points": whole(1, "KL from at most this many reconstructions"),
    "eval.bootstrap": whole(0, "resamples for the MSE interval (0: no intervals)"),
    "eval.bootstrap_w2": whole(0, "resamples for the W2 interval (0: none)"),
    "eval.bootstrap_w2_max_items": whole(1, "no W2 interval beyond this many test items"),
    "eval.interval": Rule("number", "the intervals' coverage", 0, 1, True, True),
    "image_metrics.inception": Rule("text", "the path of clean-fid's Inception file",
                                    null="clean-fid's own cache"),
    "image_metrics.fid": flag("whether FID is computed"),
    "image_metrics.standin": flag("random-weight stand-ins for LPIPS and FID"),
    "image_metrics.batch_size": whole(1, "images per metric network call"),
    "image_eval.fd_pca_k": whole(1, "PCA coefficients of the fd_pca column"),
    "image_eval.fd_patch": whole(1, "the patch side of the fd_patch column", null="off"),
    "image_eval.fd_patch_grey": flag("fd_patch on the channel mean"),
    "image_eval.chroma": flag("the colour speckle column"),
    "image_eval.min_size": whole(1, "smaller images are up-sampled to this side for LPIPS/FID"),
    "outputs.images": flag("restored/: every reconstruction, measurement and clean image as a PNG"),
    "plots.trajectory_lams": Rule("numbers", "Fig. 2's λ values", 0, 1),
    "plots.trajectories": whole(0, "reverse chains drawn per λ in Fig. 2"),
    "plots.image_rows": whole(1, "test images in image_grid.png"),
    "paths.root_dir": Rule("text", "the folder relative paths are taken from"),
    "paths.output_dir": Rule("text", "where runs/ and multirun/ go"),
    "paths.data_dir": Rule("text", "where generated data sets go"),
    "paths.cache_dir": Rule("text", "where trained networks are cached"),
    # component keys (checked where the chosen component has them)
    "sampler.steps": whole(2, "the sampler's reverse steps", null="all diffusion.T steps"),
    "sampler.average": whole(1, "the chains averaged into one sample"),
    "operator.kernel_size": whole(1, "the blur kernel's side"),
    "operator.std": Rule("number", "the blur's standard deviation in pixels", 0, open_low=True),
    "operator.scale": whole(1, "the super-resolution factor"),
    "operator.rows": whole(1, "the rows of A (measurements per point)"),
    "operator.dim": whole(1, "the columns of A (the dimension of a point)"),
    "operator.missing": Rule("number", "the fraction of pixels a random inpainting mask removes", 0, 1,
                             open_high=True),
    "operator.box": whole(1, "the side of a box inpainting mask in pixels"),
    "operator.seed": whole(0, "the seed of a deepinv operator's mask or kernel"),
    "operator.tol": Rule("number", "the relative tolerance of a deepinv operator's conjugate gradients", 0,
                         open_low=True),
    "operator.max_iter": whole(1, "the iterations of a deepinv operator's conjugate gradients at most"),
    "model.path": Rule("text", "the diffusers folder (pipeline or UNet) or hub id of model=diffusers",
                       null="not set yet: model=diffusers stops and asks for it"),
    "model.local_files_only": flag("model=diffusers reads model.path from this machine only (no hub)"),
    "dataset.image_size": whole(1, "the images' side in pixels"),
    "dataset.channels": Rule("whole", "the images' channels (3: RGB, 1: grey)", 1, 3),
    "dataset.limit": whole(1, "the first `limit` test images", null="all of them"),
}

#: plain keys of conf/config.yaml checked by their own functions (``vsdr.experiments.validate``)
CHECKED_ELSEWHERE = {
    "lam": "lam_values and validate_config: λ in [0, 1], a number or a list",
    "device": "validate_choices: cpu | cuda | auto",
    "precision": "validate_choices: fp32 | bf16 | fp16",
    "diffusion._target_": "build_schedule (its constructor)",
    "image_metrics._target_": "build_task (its constructor)",
    "image_metrics.lpips_net": "validate_choices: alex | vgg | squeeze",
    "image_eval.perception": "validate_choices: the perception columns",
}


def check_rules(cfg: DictConfig) -> None:
    """Every key of ``RULES`` that ``cfg`` holds against its rule (``ConfigError``, one
    sentence, on the first that does not fit)."""
    for key, rule in RULES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is _ABSENT:
            continue
        problem = rule.problem(key, value)
        if problem:
            raise ConfigError(problem)


_ABSENT = object()


@functools.cache
def root_schema() -> DictConfig:
    """``conf/config.yaml`` as written (its keys; interpolations left unresolved)."""
    return OmegaConf.load(CONF / "config.yaml")


@functools.cache
def group_keys() -> dict[str, set[str] | None]:
    """The groups of the root defaults list that land at a key of their name (``dataset``,
    ``sampler``, …) and, for a group of plain settings (no option has a ``_target_`` or a
    defaults list: ``noise``, ``tuned``), the keys its options set; ``None`` for the
    others (their keys are checked against their constructors, or by Lightning)."""
    groups: dict[str, set[str] | None] = {}
    for entry in root_schema().defaults:
        if not isinstance(entry, DictConfig):
            continue
        for name in entry:
            name = str(name).removeprefix("optional ").strip()
            if "@" in name or "/" in name or name == "experiment":
                continue  # lands in _global_ (its keys are root keys), or Hydra's own
            options = [OmegaConf.load(p) or {} for p in (CONF / name).glob("*.yaml")]
            plain = not any("_target_" in o or "defaults" in o for o in options)
            groups[name] = {k for o in options for k in o} if plain else None
    return groups


def plain_leaves(node: DictConfig, prefix: str = "") -> Iterator[str]:
    """Dotted keys of the scalars and lists under ``node`` (sections descended into)."""
    for key in node:
        if key in ("defaults", "hydra") and not prefix:
            continue
        value = node._get_node(key)
        if isinstance(value, DictConfig):
            yield from plain_leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"


def check_unknown_keys(cfg: DictConfig) -> None:
    """``ConfigError`` naming the first key of ``cfg`` that vsdr's config does not have: a
    top-level key that is neither in ``conf/config.yaml`` nor a group (``+foo=1``), a key of
    one of its sections that the section does not have (``+data.foo=1``), a key of a group
    without a ``_target_`` (``noise``, ``tuned``) that none of its options sets. Keys of
    components with a ``_target_`` are their constructor's arguments (``validate_components``)."""
    schema, groups = root_schema(), group_keys()
    for key in cfg:
        if key == "hydra" or key in groups:
            continue
        if key not in schema:
            known = sorted([k for k in schema if k not in ("defaults", "hydra")] + list(groups))
            raise ConfigError(f"{key} is not a key of vsdr's config (conf/config.yaml): its top-level "
                              f"keys are {known}; remove it or fix its spelling")
        section = schema._get_node(key)
        if not (isinstance(section, DictConfig) and "_target_" in section):  # a component's keys:
            _check_section(cfg._get_node(key), section, key)                 # validate_components
    for group, keys in groups.items():
        node = cfg.get(group)
        if isinstance(node, DictConfig) and keys is not None:
            for key in node:
                if key not in keys:
                    raise ConfigError(f"{group}.{key} is not a key of {group}: its keys are "
                                      f"{sorted(keys)}; remove it or fix its spelling")


def _check_section(node, schema, where: str) -> None:
    if not (isinstance(node, DictConfig) and isinstance(schema, DictConfig)):
        return
    for key in node:
        if key not in schema:
            raise ConfigError(f"{where}.{key} is not a key of {where} (conf/config.yaml): its keys are "
                              f"{list(schema)}; remove it or fix its spelling")
        _check_section(node._get_node(key), schema._get_node(key), f"{where}.{key}")
