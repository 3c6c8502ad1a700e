"""Checks that run before any compute: each failure is one sentence naming the value and
what would fit. Plain keys are checked by the rule table of ``vsdr.experiments.rules``;
sampler knobs against what the sampler class declares (``vsdr.samplers.base.Sampler.knobs``)."""
from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

from omegaconf import DictConfig, ListConfig, OmegaConf

from vsdr.config import HYDRA_KEYS, META, check_arguments, instantiate, target_of
from vsdr.data.images import ImageDataset, _absolute, list_images
from vsdr.diffusion.guidance import FORMS
from vsdr.diffusion.schedule import SPACINGS
from vsdr.diffusion.variance import VARIANCES, renamed_variance
from vsdr.errors import ConfigError
from vsdr.experiments.prior import MODEL_META, is_pretrained
from vsdr.experiments.rules import check_rules, check_unknown_keys
from vsdr.experiments.sources import model_source
from vsdr.metrics.image import BACKBONE_FILES, find_backbone, find_inception
from vsdr.operators._fft import BOUNDARIES
from vsdr.samplers.base import Knob, Sampler
from vsdr.samplers.diffpir import LAST_STEPS
from vsdr.tasks.images import PERCEPTION_COLUMNS, SIGMA_SPACES

#: keys of ``model=`` that are not the network's constructor arguments (the preconditioning wrapper's too)
MODEL_KEYS = (*MODEL_META, "preconditioning")

KNOWN_DEVICES = ("cpu", "cuda", "auto")
#: ``precision=``: the dtype of the network call (autocast around the network only)
PRECISIONS = ("fp32", "bf16", "fp16")
#: the ``guidance=`` options (conf/guidance/), each named after the ``sampler.form`` it sets
GUIDANCE_FORMS = ("pigdm", "pigdm_iso")
#: what each enum-like key chooses between, said after the allowed values
CHOICES_WHAT = {
    "sampler.form": "paper puts ζ(λ)·ĉ inside the reverse-step mean, dps adds ζ·∇‖y − A x̂0‖ after the step, "
                    "pigdm is paper with ΠGDM's covariance r_t² A Aᵀ + σ_y² I, "
                    "pigdm_iso is pigdm with an isotropic Gaussian prior's Jacobian (no network gradient)",
    "sampler.variance": "the reverse-step variance σ_t²: β_t, β̃_t or the network's learned range",
    "sampler.spacing": "the K times sampler.steps=K keeps: evenly spaced, or quadratic (dense near t = 0)",
    "noise.space": "the units σ is given in",
    "image_metrics.lpips_net": "the LPIPS trunk",
    "image_eval.perception": "the DP plot's perception axis (null: the first finite one)",
    "device": "auto takes cuda when a GPU is visible",
    "precision": "the dtype the network runs in under autocast; the sampler stays float32",
    "operator.boundary": "how blur / SR treat the image border: reflect (DPS's operator) or circular "
                         "(DiffPIR's); the DiffPIR data step is exact for either",
    "sampler.last_step": "what DiffPIR returns at t = 0: paper (Algorithm 1: the data step's output), "
                         "official (its code: the chain state x), x0hat (the network's x̂0)",
}


def sampler_class(node: DictConfig) -> type[Sampler]:
    """The ``Sampler`` subclass that ``sampler._target_`` names."""
    cls = target_of(node, "sampler")
    if not (isinstance(cls, type) and issubclass(cls, Sampler)):
        raise ConfigError(f"sampler._target_={node.get('_target_')} is not a vsdr Sampler class "
                          "(vsdr.samplers.base.Sampler)")
    return cls


def lam_values(lam) -> list[float]:
    """``lam`` as a list of floats (a number or a list in config)."""
    values = list(lam) if isinstance(lam, (list, tuple, ListConfig)) else [lam]
    out = []
    for v in values:
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise ConfigError(f"lam={v!r} is not a number: give λ in [0, 1] or a list of them") from None
    if not out:
        raise ConfigError("lam=[] is empty: give at least one λ in [0, 1]")
    return out


def _number(key: str, v, hint: str = "") -> float:
    """``v`` as a float, or a ``ConfigError`` naming ``key`` (and ``hint``: what would fit)."""
    x = math.nan
    if not isinstance(v, bool):
        try:
            x = float(v)
        except (TypeError, ValueError):
            pass
    if math.isnan(x):
        where = f"{key} has {v!r}, which" if key.endswith((".values", ".lam", ".value")) else f"{key}={v!r}"
        raise ConfigError(f"{where} is not a number{hint}")
    return x


def _check_knob_value(key: str, knob: Knob, v) -> None:
    """``v`` (from ``sampler.values`` or the fixed ``sampler.<knob>``) against ``knob``'s range."""
    x = _number(key, v, f": {knob.name} must {knob.allowed}")
    if not knob.fits(x):
        where = f"{key} has {knob.name}={x:g}" if key == "sampler.values" else f"{key}={x:g}"
        raise ConfigError(f"{where}, but {knob.name} must {knob.allowed}: it is {knob.what}")


def _check_zeta_table(node) -> None:
    """``sampler.zeta`` of ours / interp: lists ``lam`` (increasing) and ``value`` (ζ >= 0)."""
    lam, value = node.get("lam"), node.get("value")
    if not isinstance(lam, (list, ListConfig)) or not isinstance(value, (list, ListConfig)) \
            or len(lam) == 0 or len(lam) != len(value):
        raise ConfigError(f"sampler.zeta={node} needs lists lam and value of the same length, "
                          "e.g. {lam:[0,1],value:[0.2,0.2]}")
    lams = [_number("sampler.zeta.lam", v, ": give λ values in increasing order") for v in lam]
    if any(b <= a for a, b in zip(lams, lams[1:])):
        raise ConfigError(f"sampler.zeta.lam={lams} must increase: ζ(λ) is interpolated between them")
    for v in value:
        z = _number("sampler.zeta.value", v, ": ζ(λ) must be finite and >= 0")
        if not 0.0 <= z < math.inf:
            raise ConfigError(f"sampler.zeta.value has ζ={z:g}, but ζ(λ) must be finite and >= 0: "
                              "it weighs the likelihood term (0 is unconditional)")


def validate_sampler(sampler: DictConfig) -> type[Sampler]:
    """The swept knob (``sampler.knob``) is one the sampler declares; its values
    (``sampler.values``, or the top-level ``lam``) and the fixed values of its other knobs
    (``sampler.<knob>``) lie in the declared ranges; a ζ(λ) table is well formed. Returns the
    sampler class."""
    cls = sampler_class(sampler)
    names = [k.name for k in cls.knobs]
    knob = sampler.get("knob") or names[0]
    if knob not in names:
        raise ConfigError(f"sampler.knob={knob} is not one of sampler={cls.name}'s knobs {names}")
    if isinstance(sampler.get("zeta"), (dict, DictConfig)):
        _check_zeta_table(sampler.zeta)
    if not cls.uses_lam:
        spec = cls.knob_named(knob)
        values = sampler.get("values")
        if not isinstance(values, (list, ListConfig)) or len(values) == 0:
            raise ConfigError(f"sampler.values={values} must be a non-empty list of {knob} values "
                              f"(each must {spec.allowed})")
        for v in values:
            _check_knob_value("sampler.values", spec, v)
    for fixed in cls.knobs:  # the knobs not swept keep their value in sampler.<knob>
        if fixed.name != knob and sampler.get(fixed.name) is not None:
            _check_knob_value(f"sampler.{fixed.name}", fixed, sampler.get(fixed.name))
    return cls


def check_choice(key: str, value, allowed: Sequence) -> None:
    """``ConfigError`` (one sentence naming ``key``, the allowed values and what they choose)
    when ``value`` is not one of ``allowed``."""
    if value in allowed:
        return
    shown = [a for a in allowed if a is not None]
    what = CHOICES_WHAT.get(key)
    raise ConfigError(f"{key}={value!r} is not one of {shown}" + (f" ({what})" if what else ""))


def is_image_data(cfg: DictConfig) -> bool:
    """Whether ``dataset=`` builds an ``ImageDataset`` (read from its ``_target_``)."""
    cls = target_of(cfg.dataset, "dataset")
    return isinstance(cls, type) and issubclass(cls, ImageDataset)


def validate_choices(cfg: DictConfig, images: bool) -> None:
    """Every enum-like key against its allowed values: ``sampler.form``, ``sampler.variance``
    (an old name gets its new one), ``noise.space`` (images: ``SIGMA_SPACES``; points and
    closed-form data: ``data``), ``image_metrics.lpips_net``, ``image_eval.perception``, ``device``."""
    sampler = cfg.sampler
    if sampler.get("form") is not None:
        check_choice("sampler.form", sampler.form, FORMS)
    variance = sampler.get("variance")
    if variance is not None and renamed_variance(variance):
        raise ConfigError(renamed_variance(variance))
    if variance is not None:
        check_choice("sampler.variance", variance, VARIANCES)
    if sampler.get("spacing") is not None:
        check_choice("sampler.spacing", sampler.spacing, SPACINGS)
    space = str(cfg.noise.get("space", "data"))
    if images:
        check_choice("noise.space", space.replace(" ", ""), list(SIGMA_SPACES))
    elif space != "data":
        raise ConfigError(f"noise.space={space!r} does not fit dataset={cfg.dataset.get('name')}: point "
                          "and closed-form data take σ in their own units (noise.space=data); "
                          f"{[k for k in SIGMA_SPACES if k != 'data']} are for images")
    if cfg.get("image_metrics") is not None:
        check_choice("image_metrics.lpips_net", cfg.image_metrics.get("lpips_net"), list(BACKBONE_FILES))
    if cfg.get("image_eval") is not None:
        check_choice("image_eval.perception", cfg.image_eval.get("perception"), [None, *PERCEPTION_COLUMNS])
    check_choice("device", cfg.device, KNOWN_DEVICES)
    check_choice("precision", cfg.get("precision", "fp32"), PRECISIONS)
    if cfg.operator.get("boundary") is not None:
        check_choice("operator.boundary", cfg.operator.boundary, BOUNDARIES)
    if sampler.get("last_step") is not None:
        check_choice("sampler.last_step", sampler.last_step, LAST_STEPS)


def uses_score_network(cfg: DictConfig) -> bool:
    """Whether the job runs ``model=``'s network: its ``ModelSource`` (``score=``, or the
    networks a sampler brings) says so."""
    return model_source(cfg).uses_model


def own_networks(cfg: DictConfig) -> bool:
    """The sampler brings its own networks (``Sampler.own_networks``: PSCGAN's ``sampler.gan``)."""
    return bool(getattr(sampler_class(cfg.sampler), "own_networks", False))


def validate_model_fits_data(cfg: DictConfig, images: bool) -> None:
    """The score network of ``model=`` takes the data of ``dataset=``: an image network
    for images, a point network for points (checked when the job uses the network:
    ``score=network`` and a sampler without its own networks); then the family's own check,
    when its class has one (``fit_problem(node, item shape, sampler.variance)``: a pretrained
    model's size, channels and prediction type, read from its files)."""
    if not uses_score_network(cfg):
        return
    model_cls = target_of(cfg.model, "model")
    name, data = cfg.model.get("name"), cfg.dataset.get("name")
    check_network_kind(model_cls, f"model={name}", data, images,
                       "an image network (model=adm_digits for 16×16 images, adm_small, adm_ffhq, "
                       "diffusers)", "a point network (model=mlp2d)")
    fit = getattr(model_cls, "fit_problem", None)
    if fit is None:
        return
    problem = fit(OmegaConf.to_container(cfg.model, resolve=True), data_shape(cfg, images),
                  cfg.sampler.get("variance"))
    if problem:
        path = cfg.model.get("path")
        raise ConfigError(f"model={name}{f' ({path})' if path else ''} does not fit dataset={data} and "
                          f"sampler={sampler_class(cfg.sampler).name}: {problem}")


def check_network_kind(cls, key: str, data: str, images: bool, image_choice: str, point_choice: str) -> None:
    """``ConfigError`` when the network class ``cls`` (given by ``key``) does not take the data
    of ``dataset=data``: image networks are those whose constructor takes ``image_size``."""
    image_net = getattr(cls, "images", None)  # a family's class may say so; else its constructor
    if image_net is None:
        image_net = "image_size" in inspect.signature(cls).parameters
    net = f"{key} ({getattr(cls, '__name__', cls)})"
    if images and not image_net:
        raise ConfigError(f"dataset={data} holds images but {net} is a network for points: choose "
                          f"{image_choice}")
    if not images and image_net:
        raise ConfigError(f"dataset={data} holds points but {net} is a network for images: choose "
                          f"{point_choice}")


def validate_gan_fits_data(cfg: DictConfig, images: bool) -> None:
    """PSCGAN's networks (``sampler.gan``) take the data of ``dataset=``: an image generator (its
    constructor takes ``image_size``) for images, a point generator for points; and they can be
    had: ``sampler.gan.ckpt`` is a file, or there are training images to train them on."""
    if not own_networks(cfg):
        return
    gan = cfg.sampler.gan
    check_network_kind(target_of(gan.get("generator"), "sampler.gan.generator"), "sampler.gan.generator",
                       cfg.dataset.get("name"), images,
                       "image networks (gan@sampler.gan=conv_digits for 16×16 images, conv_ffhq)",
                       "gan@sampler.gan=mlp2d")
    ckpt = gan.get("ckpt")
    if gan.get("format") == "official" and not ckpt:
        sigma = gan.get("sigma_255")
        raise ConfigError("sampler.gan.ckpt is not set: gan@sampler.gan=official_ffhq is the published "
                          f"PSCGAN denoiser (σ = {sigma}/255), loaded and never trained, so it needs "
                          f"sampler.gan.ckpt=PATH/pscgan-{sigma}.ckpt (published "
                          f"{gan.get('published')}) and no training images, or gan@sampler.gan=conv_ffhq to "
                          "train vsdr's own")
    if ckpt and not _absolute(ckpt).is_file():
        raise ConfigError(f"sampler.gan.ckpt={_absolute(ckpt)} does not exist: PSCGAN's saved "
                          "{generator, critic} weights are expected there")
    if images and not ckpt and not cfg.dataset.get("train_root") and not cfg.dataset.get("generate"):
        raise ConfigError(f"sampler.gan.ckpt is not set and dataset={cfg.dataset.get('name')} has no "
                          "dataset.train_root: "
                          "PSCGAN needs training images (dataset.train_root=FOLDER) or its trained "
                          "weights (sampler.gan.ckpt=PATH)")


def _published(node: DictConfig) -> str:
    where = node.get("published")
    return f"; it is published {where}" if where else ""


def validate_metric_weights(cfg: DictConfig, images: bool) -> None:
    """The pretrained weights of an image job's LPIPS trunk (``image_metrics.lpips_net``) and,
    with ``image_metrics.fid``, clean-fid's Inception file are on this machine (not needed
    with ``image_metrics.standin``): ``MissingWeightsError`` (a ``ConfigError``) names the file,
    where it is expected and where it is published."""
    metrics = cfg.get("image_metrics")
    if not images or metrics is None or metrics.get("standin"):
        return
    find_backbone(metrics.get("lpips_net", "alex"))
    if metrics.get("fid", True):
        find_inception(metrics.get("inception"))


def validate_files(cfg: DictConfig, images: bool) -> None:
    """Every file the job must read and cannot make is there, before anything is built: the
    test images of an image data set that is not generated (``dataset.root``), the network's
    checkpoint (``model.ckpt``) when one is given or nothing could be trained (no
    ``dataset.train_root``); then the image metrics' pretrained weights
    (``validate_metric_weights``, from ``validate_config``). Each failure is one sentence naming
    the file, where it is expected and where it is published (``file`` and ``published`` in the
    component's config)."""
    data = cfg.dataset
    if images and not data.get("generate"):
        what = f"the test images of dataset={data.get('name')} (a folder of PNG/JPEG images)"
        root = data.get("root")
        if not root:
            raise ConfigError(f"dataset.root is not set: {what} are expected at dataset.root=FOLDER"
                              + _published(data))
        folder = _absolute(root)
        if not folder.is_dir():
            raise ConfigError(f"dataset.root={folder} does not exist: {what} are expected there"
                              + _published(data))
        if not list_images(folder):
            raise ConfigError(f"dataset.root={folder} holds no PNG or JPEG image: {what} are expected "
                              "there" + _published(data))
    if not uses_score_network(cfg) or is_pretrained(cfg):
        return
    model = cfg.model
    name = model.get("file") or "the checkpoint"
    what = f"{name} (the weights of model={model.get('name')})"
    ckpt = model.get("ckpt")
    if ckpt:
        path = _absolute(ckpt)
        if not path.is_file():
            raise ConfigError(f"model.ckpt={path} does not exist: {what} is expected there"
                              + _published(model))
    elif images and not data.get("train_root") and not data.get("generate"):
        raise ConfigError(f"model.ckpt is not set and dataset={data.get('name')} has no "
                          f"dataset.train_root to train on: {what} is expected at model.ckpt=PATH"
                          + _published(model))


def validate_samples_per_image(value, images: bool) -> None:
    """``data.samples_per_image``: a whole number >= 1; above 1 only on images (Fig. 12: several
    posterior samples of one observation)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"data.samples_per_image={value!r} must be a whole number >= 1 (samples per "
                          "test image and knob value)")
    if value > 1 and not images:
        raise ConfigError(f"data.samples_per_image={value} is for image data sets: on points every test "
                          "point is already its own observation (raise data.n_test instead)")


def validate_outputs(cfg: DictConfig, images: bool) -> None:
    """``outputs.images=true`` (restored/) only on image data sets."""
    if OmegaConf.select(cfg, "outputs.images", default=False) and not images:
        raise ConfigError(f"outputs.images=true is for image data sets: dataset={cfg.dataset.get('name')} "
                          "holds points, whose reconstructions are in samples.npz and items.csv")


def validate_components(cfg: DictConfig) -> None:
    """Every key of a component's config is an argument of its ``_target_`` (as
    ``vsdr.config.instantiate`` checks when it builds it, here before anything is built):
    ``dataset``, ``sampler`` (and PSCGAN's ``sampler.gan`` networks), ``model``, ``diffusion``,
    ``image_metrics``. ``operator`` is built by ``validate_operator_fits_data``."""
    nodes = [("dataset", cfg.dataset, ()), ("sampler", cfg.sampler, ()), ("model", cfg.model, MODEL_KEYS),
             ("diffusion", cfg.diffusion, ()), ("image_metrics", cfg.get("image_metrics"), ()),
             ("score", cfg.score, ())]
    if own_networks(cfg):
        gan = cfg.sampler.gan
        nodes += [("sampler.gan.generator", gan.get("generator"), ()),
                  ("sampler.gan.critic", gan.get("critic"), ())]
    for group, node, extra in nodes:
        if not isinstance(node, DictConfig) or "_target_" not in node:
            continue
        target = target_of(node, group)
        accepted = set(inspect.signature(target).parameters)
        keys = [k for k in node if k not in HYDRA_KEYS and k not in extra
                and not (k in META and k not in accepted)]
        check_arguments(target, keys, group)


def data_shape(cfg: DictConfig, images: bool) -> tuple[int, ...]:
    """The shape of one item of ``dataset=`` (no batch axis), read from its config without
    building it: ``(C, S, S)`` for images of side ``dataset.image_size`` and ``dataset.channels``
    channels (3 when the data set has no such key), ``(dim,)`` for points
    (``dataset.dim``, the length of a mixture's mean, else the class's ``dim``)."""
    data = cfg.dataset
    if images:
        size = int(data.get("image_size", 256))
        return (int(data.get("channels", 3)), size, size)
    if data.get("dim") is not None:
        return (int(data.dim),)
    if data.get("means") is not None:
        return (len(data.means[0]),)
    dim = getattr(target_of(data, "dataset"), "dim", 2)
    return (dim if isinstance(dim, int) else 2,)


def validate_operator_fits_data(cfg: DictConfig, images: bool) -> None:
    """``operator=`` is built (its arguments checked, a value its constructor refuses named) and
    asked whether it acts on the items of ``dataset=`` (``LinearOperator.shape_problem``): a blur
    or a super-resolution needs images, a scale that divides their side, a kernel that fits;
    a matrix needs points of its column count."""
    operator = instantiate(cfg.operator, "operator")
    shape = data_shape(cfg, images)
    problem = operator.shape_problem(shape)
    if problem is None:
        return
    what = f"{shape[-1]}×{shape[-2]} images" if images else f"{shape[0]}-D points"
    if not images and operator.acts_on == "images":
        fix = "choose operator=identity or operator=matrix for points, or image data (dataset=digits, ffhq)"
    elif images and operator.acts_on == "points":
        fix = "choose operator=identity, gaussian_blur(_small) or super_resolution(_x4) for images"
    else:
        fix = "give operator values that fit these items, or choose another operator"
    raise ConfigError(f"operator={cfg.operator.get('name')} does not fit dataset={cfg.dataset.get('name')} "
                      f"({what}): {problem}; {fix}")


def diffusion_steps(cfg: DictConfig) -> int:
    """The diffusion's T: ``diffusion.T``, or the length of the schedule its ``_target_`` builds
    (a pretrained family's, read from its folder)."""
    if cfg.diffusion.get("T") is not None:
        return int(cfg.diffusion.T)
    return instantiate(cfg.diffusion, "diffusion").T


def validate_steps(cfg: DictConfig, cls: type[Sampler]) -> None:
    """A sampler's ``sampler.steps`` (ours' K, DiffPIR's grid) against the diffusion's T: at
    most ``diffusion.T``; ``null`` (all T) only where the sampler's constructor defaults to it."""
    if "steps" not in cfg.sampler:
        return
    steps, T = cfg.sampler.steps, diffusion_steps(cfg)
    param = inspect.signature(cls).parameters.get("steps")
    null_fits = param is None or param.default is None
    if steps is None and not null_fits:
        raise ConfigError(f"sampler.steps=null does not fit sampler={cls.name}: give its number of "
                          f"reverse steps, a whole number in [2, diffusion.T={T}]")
    if steps is not None and steps > T:
        raise ConfigError(f"sampler.steps={steps} is more than diffusion.T={T}: sampler={cls.name} takes "
                          f"sampler.steps of the T steps; give sampler.steps <= {T}"
                          + (" (null: all of them)" if null_fits else "") + f" or diffusion.T >= {steps}")


def validate_shards(data: DictConfig) -> None:
    """``data.shard`` names one of the ``data.num_shards`` blocks (checked again against the
    number of test items when the job selects them: ``vsdr.experiments.shards``)."""
    shard, num = data.get("shard", 0), data.get("num_shards", 1)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in (shard, num)) and num >= 1 \
            and not 0 <= shard < num:
        raise ConfigError(f"data.shard={shard} is outside 0..{num - 1} for data.num_shards={num}")


def validate_config(cfg: DictConfig) -> None:
    """Raise ``ConfigError`` on the first impossible value: unknown keys, then every plain key
    against its rule (``vsdr.experiments.rules.RULES``), then the values against each other
    and against the chosen components, then the files the job reads."""
    check_unknown_keys(cfg)
    for v in lam_values(cfg.lam):
        if not (0.0 <= v <= 1.0) or math.isnan(v):
            raise ConfigError(
                f"lam={v:g} is outside [0, 1]: λ scales the reverse-step variance, "
                "0 gives the MMSE estimate and 1 a posterior sample"
            )
    sigma = cfg.noise.sigma
    if not isinstance(sigma, (int, float)) or isinstance(sigma, bool) or math.isnan(sigma):
        raise ConfigError(f"noise.sigma={sigma!r} is not a number: give the noise std, e.g. 0.5")
    if sigma < 0:
        raise ConfigError(f"noise.sigma={sigma:g} is negative: the measurement noise std must be >= 0")
    validate_shards(cfg.data)
    check_rules(cfg)
    cls = validate_sampler(cfg.sampler)
    if sigma == 0 and cls.needs_positive_sigma:
        raise ConfigError(
            f"noise.sigma=0 does not fit sampler={cls.name}: its likelihood term divides "
            "by σ², so give σ > 0"
        )
    images = is_image_data(cfg)
    validate_choices(cfg, images)
    form = cfg.sampler.get("form")
    if form in GUIDANCE_FORMS and "form" not in inspect.signature(cls).parameters:
        raise ConfigError(f"guidance={form} sets ours' conditional score (sampler.form and its ζ); "
                          f"sampler={cls.name} has none: use sampler=ours, or drop guidance=")
    validate_components(cfg)
    validate_model_fits_data(cfg, images)
    validate_operator_fits_data(cfg, images)
    validate_steps(cfg, cls)
    validate_samples_per_image(cfg.data.get("samples_per_image", 1), images)
    validate_outputs(cfg, images)
    validate_files(cfg, images)
    validate_gan_fits_data(cfg, images)  # config mistakes first, then missing metric weights
    validate_metric_weights(cfg, images)
