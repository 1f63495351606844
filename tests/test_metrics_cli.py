"""metrics.py end to end on tiny fake model folders, its user errors, and the helpers it
relies on (optional LPIPS loading, iteration folder search)."""
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

import metrics
from utils import lpips_utils
from utils.system_utils import mkdir_p, searchForMaxIteration

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Stand-ins for the optional `lpips` package, put first on PYTHONPATH of the subprocess.
BROKEN_LPIPS = "raise ImportError(\"No module named 'torchvision'\", name='torchvision')\n"
FAKE_LPIPS = textwrap.dedent("""
    import torch
    class LPIPS(torch.nn.Module):
        def __init__(self, net="alex", verbose=True):
            super().__init__()
            assert net == "vgg"
            self.w = torch.nn.Parameter(torch.ones(1))
        def forward(self, a, b, normalize=False):
            # mean |a-b| (x2 when mapped to [-1,1]), shaped (B,1,1,1) like lpips
            d = (a - b).abs().mean(dim=(1, 2, 3), keepdim=True) * self.w
            return 2 * d if normalize else d
""")


def _save(path, arr):
    Image.fromarray((np.clip(arr, 0, 1) * 255).round().astype(np.uint8)).save(path)


def make_model(root, iters=(7000, 30000), n_views=3, size=(20, 28), split="test", seed=0):
    """<root>/<split>/ours_N/{renders,gt}/0000i.png with known noise."""
    rng = np.random.default_rng(seed)
    h, w = size
    for it in iters:
        for sub in ("renders", "gt"):
            mkdir_p(os.path.join(root, split, f"ours_{it}", sub))
        for i in range(n_views):
            gt = rng.random((h, w, 3))
            render = gt + rng.normal(0, 0.05 + 0.02 * i, gt.shape)
            _save(os.path.join(root, split, f"ours_{it}", "gt", f"{i:05d}.png"), gt)
            _save(os.path.join(root, split, f"ours_{it}", "renders", f"{i:05d}.png"), render)
    return str(root)


def _png(path):
    return np.asarray(Image.open(path), dtype=np.float64) / 255.0


def _fake_pkg(tmp_path, source):
    d = tmp_path / "fakepkgs" / "lpips"
    d.mkdir(parents=True)
    (d / "__init__.py").write_text(source)
    return str(tmp_path / "fakepkgs")


def run_cli(args, fake_pkgs):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([fake_pkgs, REPO]))
    return subprocess.run([sys.executable, os.path.join(REPO, "metrics.py"), *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.e2e
def test_end_to_end_without_lpips(tmp_path):
    model = make_model(tmp_path / "model")
    proc = run_cli(["-m", model, "--device", "cpu"], _fake_pkg(tmp_path, BROKEN_LPIPS))
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if "LPIPS unavailable" in ln]
    assert len(lines) == 1 and "torchvision" in lines[0]
    assert "Traceback" not in proc.stderr
    assert "Method: ours_7000" in proc.stdout and "PSNR :" in proc.stdout

    results = json.load(open(os.path.join(model, "results.json")))
    per_view = json.load(open(os.path.join(model, "per_view.json")))
    assert list(results) == ["ours_7000", "ours_30000"]
    for method in results:
        assert set(results[method]) == {"SSIM", "PSNR"}
        assert set(per_view[method]) == {"SSIM", "PSNR"}
        assert list(per_view[method]["PSNR"]) == ["00000.png", "00001.png", "00002.png"]
        # PSNR recomputed independently with NumPy from the PNG files.
        expected = []
        for name in per_view[method]["PSNR"]:
            r = _png(os.path.join(model, "test", method, "renders", name))
            g = _png(os.path.join(model, "test", method, "gt", name))
            expected.append(10 * math.log10(1 / np.mean((r - g) ** 2)))
            assert per_view[method]["PSNR"][name] == pytest.approx(expected[-1], abs=1e-3)
            assert 0.3 < per_view[method]["SSIM"][name] < 1
        assert results[method]["PSNR"] == pytest.approx(np.mean(expected), abs=1e-3)
        assert results[method]["SSIM"] == pytest.approx(np.mean(list(per_view[method]["SSIM"].values())))
    # More noise on later views -> lower PSNR.
    psnrs = list(per_view["ours_7000"]["PSNR"].values())
    assert psnrs[0] > psnrs[1] > psnrs[2]


@pytest.mark.e2e
def test_end_to_end_with_lpips_and_merge(tmp_path):
    model = make_model(tmp_path / "model", iters=(7000, 30000))
    fake = _fake_pkg(tmp_path, FAKE_LPIPS)
    proc = run_cli(["--model_paths", model, "--device", "cpu", "--iteration", "30000",
                    "--lpips_normalize"], fake)
    assert proc.returncode == 0, proc.stderr
    assert "LPIPS unavailable" not in proc.stdout and "LPIPS:" in proc.stdout
    results = json.load(open(os.path.join(model, "results.json")))
    assert list(results) == ["ours_30000"]  # --iteration: only that folder
    assert set(results["ours_30000"]) == {"SSIM", "PSNR", "LPIPS"}
    name = "00001.png"
    r = _png(os.path.join(model, "test", "ours_30000", "renders", name))
    g = _png(os.path.join(model, "test", "ours_30000", "gt", name))
    per_view = json.load(open(os.path.join(model, "per_view.json")))
    # The fake doubles its distance when asked to normalise: the flag reached lpips.
    assert per_view["ours_30000"]["LPIPS"][name] == pytest.approx(2 * np.abs(r - g).mean(), abs=1e-5)

    # A second run for another iteration, without LPIPS, keeps the first entry intact.
    proc = run_cli(["-m", model, "--iteration", "7000", "--no_lpips"], fake)
    assert proc.returncode == 0, proc.stderr
    results = json.load(open(os.path.join(model, "results.json")))
    assert set(results) == {"ours_7000", "ours_30000"}
    assert "LPIPS" in results["ours_30000"] and "LPIPS" not in results["ours_7000"]


def test_identical_images_give_infinite_psnr(tmp_path):
    model = make_model(tmp_path / "model", iters=(100,), n_views=1)
    method = os.path.join(model, "test", "ours_100")
    Image.open(os.path.join(method, "gt", "00000.png")).save(os.path.join(method, "renders", "00000.png"))
    out = metrics.evaluate_model(model, progress=False)
    assert out["ours_100"]["PSNR"] == math.inf
    assert out["ours_100"]["SSIM"] == pytest.approx(1.0, abs=1e-6)
    # Written as JSON `Infinity`, which Python's json reads back.
    assert json.load(open(os.path.join(model, "results.json")))["ours_100"]["PSNR"] == math.inf


def test_train_split_and_rgba(tmp_path):
    model = make_model(tmp_path / "model", iters=(5,), n_views=2, split="train")
    render = os.path.join(model, "train", "ours_5", "renders", "00000.png")
    rgba = np.concatenate([_png(render), np.full((20, 28, 1), 0.5)], axis=2)
    Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(render)
    out = metrics.evaluate_model(model, split="train", write=False, progress=False)
    assert set(out["ours_5"]) == {"SSIM", "PSNR"}
    assert not os.path.exists(os.path.join(model, "results.json"))


def _break(kind, model):
    method = os.path.join(model, "test", "ours_7000")
    if kind == "missing_model":
        return os.path.join(model, "nope"), "nope"
    if kind == "no_ours":
        os.rename(os.path.join(model, "test"), os.path.join(model, "elsewhere"))
        return model, "ours_<N>"
    if kind == "count":
        os.remove(os.path.join(method, "gt", "00002.png"))
        return model, "00002.png"
    if kind == "name":
        os.rename(os.path.join(method, "renders", "00001.png"), os.path.join(method, "renders", "x.png"))
        return model, "x.png"
    if kind == "unreadable":
        with open(os.path.join(method, "renders", "00001.png"), "wb") as f:
            f.write(b"not a png")
        return model, os.path.join("renders", "00001.png")
    if kind == "size":
        _save(os.path.join(method, "gt", "00000.png"), np.zeros((10, 10, 3)))
        return model, os.path.join("gt", "00000.png")
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing_model", "no_ours", "count", "name", "unreadable", "size"])
def test_user_errors_in_process(tmp_path, capsys, kind):
    model = make_model(tmp_path / "model", iters=(7000,))
    path, needle = _break(kind, model)
    with pytest.raises(SystemExit) as exc:
        metrics.main(["-m", path, "--no_lpips", "--device", "cpu"])
    assert exc.value.code == 2
    # The error is one line of its own (a progress bar may precede it on stderr).
    err = capsys.readouterr().err.strip().split("\n")
    assert err[-1].startswith("metrics.py: error:") and needle in err[-1]
    assert sum("error" in ln for ln in err) == 1 and "Traceback" not in "\n".join(err)
    assert not os.path.exists(os.path.join(model, "results.json"))


@pytest.mark.e2e
def test_user_error_subprocess_one_line(tmp_path):
    model = make_model(tmp_path / "model", iters=(7000,))
    proc = run_cli(["-m", model, "--iteration", "123"], _fake_pkg(tmp_path, BROKEN_LPIPS))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "ours_123" in lines[0] and "Traceback" not in proc.stderr


def test_lpips_loader(monkeypatch):
    monkeypatch.setattr(lpips_utils, "_cache", {})
    monkeypatch.setitem(sys.modules, "lpips", None)  # import lpips -> ImportError
    fn, reason = lpips_utils.try_load_lpips("vgg", "cpu")
    assert fn is None and "not installed" in reason

    class Failing:
        @staticmethod
        def LPIPS(net, verbose):
            raise OSError("download failed\nsecond line")

    monkeypatch.setattr(lpips_utils, "_cache", {})
    monkeypatch.setitem(sys.modules, "lpips", Failing)
    fn, reason = lpips_utils.try_load_lpips("vgg", "cpu")
    assert fn is None and reason == "could not build LPIPS-vgg: OSError: download failed"

    namespace = {}
    exec(FAKE_LPIPS, namespace)
    monkeypatch.setattr(lpips_utils, "_cache", {})
    monkeypatch.setitem(sys.modules, "lpips", type("M", (), {"LPIPS": namespace["LPIPS"]}))
    fn, reason = lpips_utils.try_load_lpips("vgg", "cpu")
    assert reason is None
    a, b = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 0.25)
    assert fn(a, b).shape == (2,) and fn(a[0], b[0]).dim() == 0
    assert float(fn(a[0], b[0])) == pytest.approx(0.25)


def test_search_for_max_iteration(tmp_path):
    assert searchForMaxIteration(str(tmp_path / "missing")) is None
    assert searchForMaxIteration(str(tmp_path)) is None
    for name in ("iteration_7000", "iteration_30000", "ours_900", "iteration_final",
                 "ours_99999.bak", ".DS_Store", "iteration_", "point_cloud.ply"):
        mkdir_p(str(tmp_path / name))
    mkdir_p(str(tmp_path / "iteration_7000"))  # existing folder is fine
    assert searchForMaxIteration(str(tmp_path)) == 30000
