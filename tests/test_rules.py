"""The rule table of plain keys (vsdr/experiments/rules.py), unknown keys, operators against
the data's shape and sampler steps against diffusion.T: in-process, on composed configs."""
from __future__ import annotations

import math
import re

import pytest
from conftest import CONF, compose_cfg
from omegaconf import DictConfig, OmegaConf

import vsdr.experiments.validate as validate
from vsdr.errors import ConfigError
from vsdr.experiments.rules import (
    CHECKED_ELSEWHERE,
    RULES,
    Rule,
    check_rules,
    group_keys,
    plain_leaves,
    root_schema,
)
from vsdr.experiments.validate import validate_config

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def root_plain_keys() -> list[str]:
    """Every scalar or list key of conf/config.yaml outside the groups (``data.batch_size``, …)."""
    return [k for k in plain_leaves(root_schema()) if k.split(".")[0] not in group_keys()]


def test_every_plain_key_of_the_root_config_has_a_rule():
    """A key added to conf/config.yaml without a row in RULES (or a named check) fails here."""
    keys = root_plain_keys()
    assert "data.batch_size" in keys and "seed" in keys and "diffusion.T" in keys
    missing = [k for k in keys if k not in RULES and k not in CHECKED_ELSEWHERE]
    assert not missing, f"plain keys without a rule in vsdr/experiments/rules.py: {missing}"


def test_no_rule_for_a_key_the_root_config_lacks():
    plain = set(root_plain_keys())
    components = {"sampler", "operator", "dataset", "model"}
    stale = [k for k in [*RULES, *CHECKED_ELSEWHERE] if k.split(".")[0] not in components and k not in plain]
    assert not stale


def bad_values(rule: Rule) -> list:
    """Values that ``rule`` must refuse: below its range, a fraction for a whole number, text
    for a number, a number for a flag or a text, null where null is not allowed."""
    bad: list = ["abc"] if rule.kind != "text" else [3]
    if rule.kind in ("whole", "number"):
        bad += [True, math.nan]
    if rule.kind == "whole":
        bad.append(max(rule.low, 0) + 1.5)
    if rule.kind in ("whole", "number", "numbers") and math.isfinite(rule.low):
        below = rule.low if rule.open_low else rule.low - 1
        bad.append([below] if rule.kind == "numbers" else below)
    if rule.kind == "flag":
        bad.append(1)
    if rule.null is None:
        bad.append(None)
    return bad


CASES = [(k, v) for k in RULES for v in bad_values(RULES[k])]


@pytest.fixture(scope="module")
def default_cfg() -> DictConfig:
    return compose_cfg(["sampler=diffpir"])  # a sampler with sampler.steps


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_each_rule_refuses_what_does_not_fit(key, value, default_cfg):
    cfg = default_cfg.copy()
    OmegaConf.update(cfg, key, value, force_add=True)
    with pytest.raises(ConfigError) as err:
        check_rules(cfg)
    message = str(err.value)
    assert message.startswith(f"{key}=") and RULES[key].allowed in message and RULES[key].why in message


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_shipped_experiment_validates(experiment, monkeypatch):
    """Every conf/experiment/*.yaml (FFHQ ones included) passes every check but those of files
    this machine may lack (test images, checkpoints, metric weights)."""
    for name in ("validate_files", "validate_metric_weights", "validate_gan_fits_data"):
        monkeypatch.setattr(validate, name, lambda *a, **k: None)
    cfg = compose_cfg([f"experiment={experiment}"])
    check_rules(cfg)
    validate_config(cfg)


def test_rule_wording():
    assert RULES["data.batch_size"].allowed == "a whole number >= 1"
    assert RULES["eval.interval"].allowed == "a number in (0, 1)"
    assert RULES["train.lr"].allowed == "a number > 0"
    assert RULES["data.batch_size"].problem("data.batch_size", 4) is None
    assert RULES["data.batch_size"].problem("data.batch_size", None) is None
    assert RULES["eval.interval"].problem("eval.interval", 1) == \
        "eval.interval=1 must be a number in (0, 1): the intervals' coverage"


@pytest.mark.parametrize("overrides,message", [
    (["seed=-1"], "seed=-1 must be a whole number >= 0: the job seed"),
    (["seed=1.5"], "seed=1.5 must be a whole number >= 0"),
    (["data.batch_size=0"], "data.batch_size=0 must be null (all at once) or a whole number >= 1"),
    (["data.num_shards=0"], "data.num_shards=0 must be a whole number >= 1"),
    (["data.n_test=1"], "data.n_test=1 must be a whole number >= 2: the test points; W2 needs at least 2"),
    (["diffusion.T=1"], "diffusion.T=1 must be a whole number >= 2"),
    (["threads=0"], "threads=0 must be null (1 on CPU, torch's default on CUDA) or a whole number >= 1"),
    (["progress=maybe"], "progress='maybe' must be true or false"),
    (["train.lr=0"], "train.lr=0 must be a number > 0: the learning rate"),
    (["+foo=1"], "foo is not a key of vsdr's config (conf/config.yaml): its top-level keys are "
     "['channels_last',"),
    (["+data.foo=1"], "data.foo is not a key of data (conf/config.yaml): its keys are ['n_train', 'n_test',"),
    (["+noise.foo=1"], "noise.foo is not a key of noise: its keys are ['sigma', 'space']"),
    (["+diffusion.steps=10"], "diffusion.steps is not an argument of VPSchedule.linear (diffusion)"),
    (["+model.width=3"], "model.width is not an argument of ScoreMLP (model)"),
    (["operator=gaussian_blur"], "operator=gaussian_blur does not fit dataset=pinwheel (2-D points): it "
     "blurs images; choose operator=identity or operator=matrix for points, or image data "
     "(dataset=digits, ffhq)"),
    (["operator=super_resolution_x4"],
     "operator=super_resolution_x4 does not fit dataset=pinwheel (2-D points): it down-samples images"),
    (["experiment=images_small", "operator=super_resolution", "operator.scale=3"],
     "operator=super_resolution does not fit dataset=digits (16×16 images): operator.scale=3 does not "
     "divide the image side 16"),
    (["experiment=images_small", "operator=super_resolution", "operator.scale=0"],
     "operator.scale=0 must be a whole number >= 1: the super-resolution factor"),
    (["experiment=images_small", "operator=gaussian_blur", "operator.std=5"],
     "operator=gaussian_blur does not fit dataset=digits (16×16 images): its kernel reaches 20 pixels"),
    (["experiment=images_small", "operator=matrix"], "operator=matrix does not fit dataset=digits (16×16 "
     "images): A (1×2) multiplies points of dimension 2, not images; choose operator=identity,"),
    (["operator=matrix", "operator.dim=3"], "operator=matrix does not fit dataset=pinwheel (2-D points): "
     "A (1×3) multiplies points of dimension 3, not 2"),
    (["diffusion.T=50", "sampler=diffpir"], "sampler.steps=100 is more than diffusion.T=50: sampler=diffpir"),
    (["diffusion.T=50", "sampler.steps=60"], "sampler.steps=60 is more than diffusion.T=50: sampler=ours"),
    (["sampler=diffpir", "sampler.steps=null"], "sampler.steps=null does not fit sampler=diffpir"),
    (["sampler.steps=1"], "sampler.steps=1 must be null (all diffusion.T steps) or a whole number >= 2"),
    (["data.shard=-1", "data.num_shards=2"], "data.shard=-1 is outside 0..1 for data.num_shards=2"),
])
def test_bad_config_is_one_sentence(overrides, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        validate_config(compose_cfg(overrides))


def test_a_good_config_with_the_debug_experiment_validates():
    validate_config(compose_cfg(["experiment=debug", "sampler=diffpir", "sampler.steps=50"]))
    validate_config(compose_cfg(["experiment=images_small", "operator=super_resolution", "operator.scale=8"]))


LAUNCHERS = [p.stem for p in sorted((CONF / "hydra/launcher").glob("*.yaml"))]


@pytest.mark.parametrize("launcher", [None, *LAUNCHERS])
def test_every_launcher_keeps_the_validating_sweeper(launcher):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}"] if launcher else [],
                      return_hydra_config=True)
    assert cfg.hydra.sweeper._target_ == "hydra_plugins.vsdr_sweeper.ValidatingSweeper"
