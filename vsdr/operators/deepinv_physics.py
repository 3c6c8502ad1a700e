"""Any linear operator of deepinv (docs/METHOD.md §8, deepinv operators): a ``LinearPhysics``
named by ``physics._target_`` with its keyword arguments, built per image shape, used through
its noise-free ``A`` and ``A_adjoint`` (vsdr adds the measurement noise itself) and its
``prox_l2`` for DiffPIR's data step. Masks and blur kernels of the presets are drawn here from
``seed`` (``inpaint_mask``, ``motion_kernel``) and handed to the physics as ``mask`` / ``filter``."""
from __future__ import annotations

import inspect
from collections.abc import Mapping

import torch
from torch import Tensor

from vsdr.diffusion.broadcast import per_sample
from vsdr.operators.linear import LinearOperator, conjugate_gradient

#: what ``mask=`` draws: DPS's random pixels, or a centred square box
MASKS = ("random", "box")
#: what ``kernel=`` draws: deepinv's motion-blur generator, or DPS's Gaussian (vsdr's kernel)
KERNELS = ("motion", "gaussian")
#: deepinv Blur paddings that read reflected or repeated pixels (the pad must be less than the side)
PADDED = ("reflect", "replicate")


def inpaint_mask(kind: str, h: int, w: int, missing: float = 0.7, box: int = 128,
                 seed: int = 0) -> Tensor:
    """A ``(1, h, w)`` float64 0/1 mask (1: observed), the same for every channel.
    ``random``: exactly ``round(missing·h·w)`` pixels set to 0, chosen by ``torch.randperm``
    from ``torch.Generator().manual_seed(seed)`` (DPS's random mask draws the same count
    without replacement). ``box``: the ``box × box`` square at the centre set to 0
    (rows and columns ``(h − box)//2 …`` and ``(w − box)//2 …``)."""
    mask = torch.ones(h * w, dtype=torch.float64)
    if kind == "random":
        order = torch.randperm(h * w, generator=torch.Generator().manual_seed(int(seed)))
        mask[order[: round(missing * h * w)]] = 0.0
        return mask.view(1, h, w)
    if kind == "box":
        mask = mask.view(1, h, w)
        top, left = (h - box) // 2, (w - box) // 2
        mask[:, top: top + box, left: left + box] = 0.0
        return mask
    raise ValueError(f"operator.mask must be one of {list(MASKS)} or null, got {kind!r}")


def motion_kernel(size: int, seed: int = 0) -> Tensor:
    """A ``(1, 1, size, size)`` float64 motion-blur kernel (sum 1): deepinv's
    ``MotionBlurGenerator`` (a Matérn-3/2 Gaussian-process trajectory, its defaults
    ``l = 0.3``, ``sigma = 0.25``) stepped with ``seed``."""
    from deepinv.physics.generator import MotionBlurGenerator

    k = MotionBlurGenerator((size, size), dtype=torch.float64).step(seed=int(seed))["filter"]
    return k / k.sum()


def gaussian_kernel(size: int, std: float) -> Tensor:
    """vsdr's Gaussian blur kernel (``dps_gaussian_kernel``) as a ``(1, 1, size, size)`` filter."""
    from vsdr.operators.blur import dps_gaussian_kernel

    return torch.from_numpy(dps_gaussian_kernel(size, std))[None, None]


def physics_class(target: str) -> type:
    """The class ``target`` names; ``ValueError`` unless it is a deepinv ``LinearPhysics``."""
    from deepinv.physics import LinearPhysics
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except Exception as e:  # noqa: BLE001 - any import failure is the same sentence
        raise ValueError(f"operator.physics._target_={target} is not an importable class ({e})") from None
    if not (isinstance(cls, type) and issubclass(cls, LinearPhysics)):
        raise ValueError(f"operator.physics._target_={target} is not a deepinv LinearPhysics "
                         "(deepinv.physics.Inpainting, Blur, BlurFFT, Downsampling, …)")
    return cls


class DeepInvOperator(LinearOperator):
    """``A`` = a deepinv ``LinearPhysics``: ``A x = physics.A(x)``, ``Aᵀ y = physics.A_adjoint(y)``.

    ``physics``: the physics' config (``_target_`` and its arguments), built once per image
    shape ``(C, H, W)`` with ``img_size=(C, H, W)`` added where its constructor takes one, under
    ``torch.manual_seed(seed)`` (so a physics that draws its own randomness is fixed too).
    ``mask`` (``random`` | ``box`` | null, with ``missing`` and ``box``) and ``kernel``
    (``motion`` | ``gaussian`` | null, with ``kernel_size`` and ``std``) draw the physics'
    ``mask`` / ``filter`` argument from ``seed``. The physics' noise model is replaced by
    ``ZeroNoise`` and never used: vsdr measures ``y = A x0 + σ n`` itself.

    ``prox_data`` is deepinv's ``prox_l2`` with ``γ = 1/ρ`` (exact for decomposable physics such
    as inpainting, conjugate gradients to ``tol`` / ``max_iter`` otherwise); ``solve_gram`` is
    exact for inpainting (``A Aᵀ`` is the squared mask) and conjugate gradients otherwise."""

    name = "deepinv"
    acts_on = "images"

    def __init__(self, physics: Mapping, mask: str | None = None, missing: float = 0.7,
                 box: int = 128, kernel: str | None = None, kernel_size: int = 61, std: float = 3.0,
                 seed: int = 0, tol: float = 1e-5, max_iter: int = 200):
        spec = _plain(physics)
        if "_target_" not in spec:
            raise ValueError("operator.physics needs a _target_ (a deepinv LinearPhysics, e.g. "
                             "deepinv.physics.Inpainting)")
        self.target = str(spec.pop("_target_"))
        self.cls = physics_class(self.target)
        if spec.get("noise_model") is not None:
            raise ValueError("operator.physics.noise_model must be null: vsdr adds the measurement "
                             "noise itself (noise.sigma)")
        spec.pop("noise_model", None)
        self.kwargs = spec
        if mask is not None and mask not in MASKS:
            raise ValueError(f"operator.mask must be one of {list(MASKS)} or null, got {mask!r}")
        if kernel is not None and kernel not in KERNELS:
            raise ValueError(f"operator.kernel must be one of {list(KERNELS)} or null, got {kernel!r}")
        if not 0.0 <= float(missing) < 1.0:
            raise ValueError(f"operator.missing must be in [0, 1), got {missing}")
        takes = inspect.signature(self.cls).parameters
        for key, given, arg in (("mask", mask, "mask"), ("kernel", kernel, "filter")):
            if given is not None and arg not in takes:
                raise ValueError(f"operator.{key}={given} draws a `{arg}` argument and {self.target} "
                                 f"takes none: set operator.{key}=null")
        self.mask, self.missing, self.box = mask, float(missing), int(box)
        self.kernel, self.kernel_size, self.std = kernel, int(kernel_size), float(std)
        self.seed, self.tol, self.max_iter = int(seed), float(tol), int(max_iter)
        self._built: dict[tuple, object] = {}
        self._by_output: dict[tuple, object] = {}

    # -- the physics for one image shape --------------------------------------------------
    def arguments(self, shape: tuple[int, ...]) -> dict:
        """The physics' constructor arguments for images of ``shape`` ``(C, H, W)``."""
        kwargs = dict(self.kwargs)
        takes = inspect.signature(self.cls).parameters
        if "img_size" in takes and kwargs.get("img_size") is None:
            kwargs["img_size"] = tuple(shape)
        if self.mask is not None:
            kwargs["mask"] = inpaint_mask(self.mask, shape[-2], shape[-1], self.missing, self.box,
                                          self.seed)
        elif isinstance(kwargs.get("mask"), list):
            kwargs["mask"] = torch.tensor(kwargs["mask"], dtype=torch.float64)
        if self.kernel == "motion":
            kwargs["filter"] = motion_kernel(self.kernel_size, self.seed)
        elif self.kernel == "gaussian":
            kwargs["filter"] = gaussian_kernel(self.kernel_size, self.std)
        return kwargs

    def physics(self, shape: tuple[int, ...], like: Tensor | None = None):
        """The physics built for one image of ``shape``, in ``like``'s dtype and device."""
        dtype = torch.float64 if like is None else like.dtype
        device = torch.device("cpu") if like is None else like.device
        key = (tuple(shape), dtype, device)
        if key not in self._built:
            from deepinv.physics import ZeroNoise

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                phys = self.cls(**self.arguments(shape))
            phys.set_noise_model(ZeroNoise())
            phys = phys.to(device=device, dtype=dtype)
            out = phys.A(torch.zeros(1, *shape, dtype=dtype, device=device))
            self._built[key] = phys
            self._by_output[(tuple(out.shape[1:]), dtype, device)] = phys
        return self._built[key]

    def shape_problem(self, shape: tuple[int, ...]) -> str | None:
        """Images only; a box that fits inside them; a given mask or ``img_size`` of their
        size; and the physics must build and act on one of them."""
        name = self.target.rsplit(".", 1)[-1]
        if len(shape) != 3:
            return f"it applies deepinv's {name} to images (C, H, W)"
        h, w = shape[-2:]
        if self.mask == "box" and self.box > min(h, w):
            return f"its {self.box}×{self.box} box mask (operator.box) does not fit inside {h}×{w} images"
        reach = self.kernel_size // 2
        if self.kernel is not None and self.kwargs.get("padding", "valid") in PADDED and reach >= min(h, w):
            return (f"its {self.kernel_size}×{self.kernel_size} kernel (operator.kernel_size) pads the "
                    f"image by {reach} pixels and {self.kwargs['padding']} padding needs a side larger "
                    f"than {reach}, not {min(h, w)}")
        given = self.kwargs.get("img_size")
        if given is not None and tuple(given) != tuple(shape):
            return f"operator.physics.img_size={list(given)} is not the images' size {list(shape)}"
        mask = self.kwargs.get("mask")
        if self.mask is None and isinstance(mask, list):
            mh, mw = torch.tensor(mask).shape[-2:]
            if (mh, mw) != (h, w):
                return f"its mask (operator.physics.mask) is {mh}×{mw}, not {h}×{w} like the images"
        try:
            self.physics(tuple(shape))
        except Exception as e:  # noqa: BLE001 - the physics' own refusal, in a clause
            size = "×".join(map(str, shape))
            return f"deepinv's {name} fails on one {size} image ({str(e).splitlines()[0]})"
        return None

    # -- A, Aᵀ -------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        return self.physics(tuple(x.shape[1:]), x).A(x)

    def adjoint(self, y: Tensor) -> Tensor:
        """``Aᵀ y`` with the physics whose ``A`` gives ``y``'s shape (built by an earlier
        ``forward``); one built for ``y``'s own shape if there is none (a shape-preserving ``A``)."""
        phys = self._by_output.get((tuple(y.shape[1:]), y.dtype, y.device))
        if phys is None:
            phys = self.physics(tuple(y.shape[1:]), y)
        return phys.A_adjoint(y)

    # -- DiffPIR's data step -----------------------------------------------------------------
    def prox_data(self, x0_hat: Tensor, y: Tensor, rho: float | Tensor) -> Tensor:
        """``argmin_x ‖y − A x‖² + ρ‖x − x̂0‖²`` as deepinv's ``prox_l2(z, y, γ)``, which
        minimises ``γ/2 ‖A x − y‖² + ½‖x − z‖²``: dividing ours by ``2ρ`` gives ``z = x̂0``,
        ``γ = 1/ρ`` (both solve ``(AᵀA + ρ I) x = Aᵀy + ρ x̂0``). ``rho`` > 0, a number or ``(B,)``."""
        rho_b = torch.as_tensor(rho, dtype=x0_hat.dtype, device=x0_hat.device)
        gamma = 1.0 / rho_b.reshape(-1).expand(x0_hat.shape[0]).reshape(-1, *[1] * (x0_hat.dim() - 1))
        phys = self.physics(tuple(x0_hat.shape[1:]), x0_hat)
        return phys.prox_l2(x0_hat, y, gamma.contiguous(), tol=self.tol, max_iter=self.max_iter)

    # -- ΠGDM's solve ------------------------------------------------------------------------
    def solve_gram(self, v: Tensor, r2: float | Tensor, sigma2: float | Tensor,
                   x_shape: tuple[int, ...]) -> Tensor:
        """``(r2 A Aᵀ + sigma2 I)⁻¹ v``: ``v / (r2 m² + sigma2)`` for inpainting (``A`` multiplies by
        the mask ``m``, so ``A Aᵀ`` is ``m²``); conjugate gradients with ``A`` and ``Aᵀ`` otherwise."""
        from deepinv.physics import Inpainting

        phys = self.physics(tuple(x_shape), v)
        r2_b, s2_b = per_sample(r2, v), per_sample(sigma2, v)
        if isinstance(phys, Inpainting) and isinstance(phys.mask, Tensor):
            return v / (r2_b * phys.mask.to(v) ** 2 + s2_b)
        return conjugate_gradient(lambda p: r2_b * phys.A(phys.A_adjoint(p)) + s2_b * p, v)


def _plain(node) -> dict:
    """A config node (``DictConfig`` or mapping) as a plain ``dict`` of plain values."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True)
    if not isinstance(node, Mapping):
        raise ValueError(f"operator.physics must be a config with a _target_, got {node!r}")
    return dict(node)
