"""Image metrics: PSNR by hand, LPIPS and FID plumbing with locally built stand-ins (labelled),
and clear messages when pretrained weights are missing."""
from __future__ import annotations

import math

import pytest
import torch

from vsdr.data.images import save_images
from vsdr.metrics.image import (
    BACKBONE_FILES,
    INCEPTION_FILE,
    ImageMetrics,
    MissingWeightsError,
    StandinFeatures,
    build_lpips,
    build_lpips_standin,
    fid_folders,
    find_backbone,
    find_inception,
    folder_features,
    image_mse,
    lpips_distance,
    psnr,
    ssim,
)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """A torch hub folder with nothing in it, and clean-fid's /tmp folder pointed elsewhere."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr("vsdr.metrics.image.CLEANFID_FOLDER", tmp_path / "cleanfid_tmp")
    return hub


def test_psnr_and_mse_hand_computed():
    x0 = torch.zeros(2, 3, 4, 4)              # grey 0.5 in [0, 1]
    x_hat = torch.zeros(2, 3, 4, 4)
    x_hat[0] += 0.2                          # 0.1 off in [0, 1] everywhere: MSE 0.01, PSNR 20 dB
    x_hat[1, 0, 0, 0] = 1.0                  # one pixel 0.5 off: MSE 0.25/48
    mse = image_mse(x0, x_hat)
    torch.testing.assert_close(mse, torch.tensor([0.01, 0.25 / 48], dtype=torch.float64))
    p = psnr(x0, x_hat)
    assert float(p[0]) == pytest.approx(20.0, abs=1e-5)  # 0.2 is not exact in float32
    # torchmetrics multiplies by 10/ln 10 in float32: 1e-6 dB off the float64 value
    assert float(p[1]) == pytest.approx(10 * math.log10(48 / 0.25), abs=1e-5)
    # reconstructions are clipped to the valid range before measuring
    assert float(image_mse(x0, torch.full_like(x0, 3.0))[0]) == pytest.approx(0.25)
    assert float(psnr(x0, torch.full_like(x0, 3.0))[0]) == pytest.approx(10 * math.log10(4), abs=1e-5)


def test_ssim_hand_computed_on_constant_images():
    """Constant images a and b (in [0, 1]) have no variance: SSIM = (2ab + C1)/(a² + b² + C1)
    with C1 = (0.01 · 1)²; identical images give 1."""
    x0 = torch.full((1, 3, 16, 16), 2 * 0.3 - 1, dtype=torch.float64)   # 0.3 in [0, 1]
    x_hat = torch.full((1, 3, 16, 16), 2 * 0.6 - 1, dtype=torch.float64)  # 0.6
    c1 = 1e-4
    assert float(ssim(x0, x_hat)[0]) == pytest.approx((2 * 0.18 + c1) / (0.09 + 0.36 + c1), rel=1e-9)
    noisy = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(ssim(noisy, noisy), torch.ones(2, dtype=torch.float64))
    assert (ssim(noisy, noisy + 0.2 * torch.randn_like(noisy)) < 0.99).all()


def test_lpips_standin_needs_no_download_and_is_zero_on_identical(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    model = build_lpips_standin("alex", seed=0)
    torch.manual_seed(0)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    d0 = lpips_distance(model, x, x)
    assert torch.equal(d0, torch.zeros(3, dtype=torch.float64))
    d1 = lpips_distance(model, x, x + 0.3 * torch.randn_like(x))
    d2 = lpips_distance(model, x, x + 0.6 * torch.randn_like(x))
    assert (d1 > 0).all() and (d2 > d1).all()
    # the same seed builds the same stand-in
    other = build_lpips_standin("alex", seed=0)
    torch.testing.assert_close(lpips_distance(other, x, x + 0.1), lpips_distance(model, x, x + 0.1))


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_real_lpips_is_plain_lpips_with_the_trunk_from_the_hub_cache(empty_hub, net):
    """``build_lpips`` is ``lpips.LPIPS(net=...)`` reading torchvision's file from torch hub's
    cache (here a randomly initialised torchvision network saved under the published name):
    its trunk holds that file's ``features.i`` tensors, nothing is downloaded, and a missing file
    is one sentence naming it, the folder and the published address."""
    import torchvision

    name = BACKBONE_FILES[net]
    with pytest.raises(MissingWeightsError, match=rf"^LPIPS \({net}\) needs .*{name}, not found in "
                                                  rf".*hub/checkpoints/ .*published at "
                                                  rf"https://download.pytorch.org/models/{name}$"):
        build_lpips(net)
    tv = {"alex": torchvision.models.alexnet, "vgg": torchvision.models.vgg16}[net]()
    (empty_hub / "checkpoints").mkdir(parents=True)
    torch.save(tv.state_dict(), empty_hub / "checkpoints" / name)
    model = build_lpips(net)
    trunk = model.net.state_dict()  # LPIPS's sliceK.i.* are torchvision's features.i.*
    assert len(trunk) == {"alex": 10, "vgg": 26}[net]
    for key, value in trunk.items():
        assert torch.equal(value, tv.features.state_dict()[key.split(".", 1)[1]]), key
    assert find_backbone(net) == empty_hub / "checkpoints" / name


def test_fid_standin_zero_on_identical_sets_positive_otherwise(tmp_path):
    torch.manual_seed(1)
    a = torch.rand(8, 3, 32, 32) * 2 - 1
    b = (a + 0.5 * torch.randn_like(a)).clamp(-1, 1)
    c = (a + 0.1 * torch.randn_like(a)).clamp(-1, 1)
    save_images(c, tmp_path / "c")
    save_images(a, tmp_path / "a")
    save_images(a, tmp_path / "a2")
    save_images(b, tmp_path / "b")
    ext = StandinFeatures()
    same = fid_folders(tmp_path / "a", tmp_path / "a2", ext)
    diff = fid_folders(tmp_path / "a", tmp_path / "b", ext)
    assert abs(same) < 1e-6
    assert diff > 1e-3 and diff > 1e4 * abs(same)
    assert fid_folders(tmp_path / "a", tmp_path / "c", ext) < diff  # less noise, closer sets


def test_fid_is_clean_fids_features_and_frechet_without_scipy_deprecation(tmp_path):
    """``fid_folders`` reads features through clean-fid and measures them with our Fréchet
    routine: no DeprecationWarning from SciPy's ``sqrtm(disp=False)`` (clean-fid's own call,
    removed in SciPy 1.18), and the value of POT's Bures–Wasserstein formula on clean-fid's
    features and of ``cleanfid.fid.compute_fid`` itself (while SciPy still accepts it)."""
    import warnings

    import numpy as np
    import ot
    import scipy
    from cleanfid import fid

    torch.manual_seed(3)
    a = torch.rand(20, 3, 32, 32) * 2 - 1
    save_images(a, tmp_path / "a")
    save_images((a + 0.3 * torch.randn_like(a)).clamp(-1, 1), tmp_path / "b")
    ext = StandinFeatures()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        ours = fid_folders(tmp_path / "a", tmp_path / "b", ext)
    fa, fb = (folder_features(tmp_path / d, ext, torch.device("cpu")) for d in ("a", "b"))
    assert fa.shape == (20, 16)
    bw = ot.gaussian.bures_wasserstein_distance(fa.mean(0), fb.mean(0), np.cov(fa, rowvar=False),
                                                np.cov(fb, rowvar=False))
    assert ours == pytest.approx(float(bw) ** 2, rel=1e-6) and ours > 0
    if tuple(int(v) for v in scipy.__version__.split(".")[:2]) < (1, 18):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            theirs = fid.compute_fid(str(tmp_path / "a"), str(tmp_path / "b"), mode="clean",
                                     custom_feat_extractor=ext, device=torch.device("cpu"),
                                     num_workers=0, batch_size=16, verbose=False)
        assert ours == pytest.approx(theirs, rel=1e-6)
        if tuple(int(v) for v in scipy.__version__.split(".")[:2]) >= (1, 16):  # the warning we avoid
            assert any(issubclass(w.category, DeprecationWarning) and "disp" in str(w.message)
                       for w in caught)


def test_missing_inception_message(empty_hub, tmp_path):
    with pytest.raises(MissingWeightsError, match=rf"{INCEPTION_FILE}.*cleanfid_tmp/.*hub/checkpoints/"):
        find_inception()
    with pytest.raises(MissingWeightsError, match="not found at"):
        find_inception(tmp_path / "nope.pt")


def test_image_metrics_runs_the_rest_and_labels_standins(empty_hub):
    torch.manual_seed(2)
    x0 = torch.rand(4, 3, 32, 32) * 2 - 1
    x_hat = x0 + 0.1 * torch.randn_like(x0)
    real = ImageMetrics()
    row = real(x0, x_hat)
    assert set(row) == {"mse", "psnr", "ssim", "lpips_alex", "fid"}  # the column names the trunk
    assert math.isnan(row["lpips_alex"]) and math.isnan(row["fid"])
    assert row["mse"] == pytest.approx(float(image_mse(x0, x_hat).mean()))
    assert len(real.notes) == 2
    assert "alexnet-owt-7be5be79.pth" in real.notes[0] and INCEPTION_FILE in real.notes[1]
    stand = ImageMetrics(lpips_net="vgg", standin=True)
    row = stand(x0, x0)
    assert set(row) == {"mse", "psnr", "ssim", "lpips_vgg_standin", "fid_standin"} and not stand.notes
    assert row["lpips_vgg_standin"] == 0.0 and abs(row["fid_standin"]) < 1e-6 and row["mse"] == 0.0
    assert row["ssim"] == pytest.approx(1.0)
    assert stand.column("lpips_standin") == "lpips_vgg_standin" and real.column("lpips") == "lpips_alex"


def test_fid_of_one_image_is_nan_with_a_note():
    """A set of one image (a one-image shard) has no covariance: FID is nan, with a sentence,
    and the other measures are still computed; two images give a number."""
    torch.manual_seed(3)
    x0 = torch.rand(2, 3, 32, 32) * 2 - 1
    x_hat = (x0 + 0.1 * torch.randn_like(x0)).clamp(-1, 1)
    one = ImageMetrics(standin=True)
    row = one(x0[:1], x_hat[:1])
    assert math.isnan(row["fid_standin"]) and "at least 2 images" in one.notes[0]
    assert row["mse"] == pytest.approx(float(image_mse(x0[:1], x_hat[:1]).mean()))
    two = ImageMetrics(standin=True)
    assert math.isfinite(two(x0, x_hat)["fid_standin"]) and not two.notes
