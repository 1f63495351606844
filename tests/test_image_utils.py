"""utils/image_utils.to_uint8: the three rounding rules, clamping, and tensor/array parity."""
import numpy as np
import pytest
import torch

from utils.image_utils import save_png, to_uint8, to_uint8_hwc

K = np.arange(256)
# exact levels, midpoints between levels (where the rules differ), out of range values
VALUES = np.concatenate([K / 255, (K + 0.5) / 255, [-0.5, -1e-9, 1 + 1e-6, 3.0]])

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rules_match_their_formulas(dtype):
    v = VALUES.astype(dtype)
    c = np.clip(v, 0, 1) * 255
    assert np.array_equal(to_uint8(v), np.floor(c + 0.5).astype(np.uint8))
    assert np.array_equal(to_uint8(v, "truncate"), np.floor(c).astype(np.uint8))
    assert np.array_equal(to_uint8(v, "half_even"), np.round(c).astype(np.uint8))
    assert to_uint8(np.array([254.5 / 255], np.float64))[0] == 255       # half up
    assert to_uint8(np.array([254.5 / 255], np.float64), "half_even")[0] == 254


@pytest.mark.parametrize("rounding", ["half_up", "truncate", "half_even"])
def test_tensor_and_array_agree(rounding):
    t = torch.from_numpy(VALUES.astype(np.float32))
    out = to_uint8(t, rounding)
    assert out.dtype == torch.uint8
    assert np.array_equal(out.numpy(), to_uint8(t.numpy(), rounding))


def test_hwc_layout_and_png_round_trip(tmp_path):
    from PIL import Image
    img = torch.rand(3, 5, 7, generator=torch.Generator().manual_seed(0))
    hwc = to_uint8_hwc(img)
    assert hwc.shape == (5, 7, 3) and np.array_equal(hwc[2, 4], to_uint8(img[:, 2, 4]).numpy())
    assert to_uint8_hwc(img[0]).shape == (5, 7)
    save_png(img, str(tmp_path / "a.png"))
    save_png(img[:1], str(tmp_path / "g.png"))  # one channel -> grey PNG
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), hwc)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), hwc[..., 0])


def test_unknown_rounding_is_refused():
    with pytest.raises(ValueError, match="rounding"):
        to_uint8(np.zeros(1), "nearest")
