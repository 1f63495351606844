"""PLY reader/writer: round trips, the exact 3DGS header, and robustness to bad files."""
import os
import random

import numpy as np
import pytest

from scene.ply_io import (gaussian_attribute_names, read_gaussian_ply, read_point_cloud,
                          write_gaussian_ply, write_point_cloud)
from utils.errors import UserError

pytestmark = pytest.mark.unit


def _random_splats(n, degree, seed=0):
    rng = np.random.default_rng(seed)
    k = (degree + 1) ** 2
    return {
        "xyz": rng.normal(size=(n, 3)).astype(np.float32),
        "features_dc": rng.normal(size=(n, 1, 3)).astype(np.float32),
        "features_rest": rng.normal(size=(n, k - 1, 3)).astype(np.float32),
        "opacity": rng.normal(size=(n, 1)).astype(np.float32),
        "scaling": rng.normal(size=(n, 3)).astype(np.float32),
        "rotation": rng.normal(size=(n, 4)).astype(np.float32),
    }


def _header(path):
    with open(path, "rb") as f:
        data = f.read()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    return data[:end].decode("ascii").splitlines(), data, end


def test_standard_header_degree3(tmp_path):
    path = str(tmp_path / "pc.ply")
    write_gaussian_ply(path, **_random_splats(7, 3))
    lines, data, end = _header(path)
    expected_names = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                      + [f"f_rest_{i}" for i in range(45)]
                      + ["opacity", "scale_0", "scale_1", "scale_2",
                         "rot_0", "rot_1", "rot_2", "rot_3"])
    assert len(expected_names) == 62
    assert gaussian_attribute_names(3) == expected_names
    assert lines == (["ply", "format binary_little_endian 1.0", "element vertex 7"]
                     + [f"property float {n}" for n in expected_names] + ["end_header"])
    assert len(data) - end == 7 * 62 * 4


@pytest.mark.parametrize("degree,n", [(0, 5), (1, 1), (3, 33), (3, 0)])
def test_gaussian_round_trip(tmp_path, degree, n):
    path = str(tmp_path / "pc.ply")
    src = _random_splats(n, degree, seed=degree)
    write_gaussian_ply(path, **src)
    got = read_gaussian_ply(path)
    assert got["sh_degree"] == degree
    for key, v in src.items():
        assert got[key].dtype == np.float32 and got[key].shape == v.shape
        np.testing.assert_array_equal(got[key], v)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".tmp_")]


def test_f_rest_is_channel_major(tmp_path):
    path = str(tmp_path / "pc.ply")
    src = _random_splats(1, 1)
    src["features_rest"] = np.arange(9, dtype=np.float32).reshape(1, 3, 3)  # [coef, channel]
    write_gaussian_ply(path, **src)
    _, data, end = _header(path)
    row = np.frombuffer(data[end:], dtype="<f4")
    # f_rest_0..2 are red's 3 coefficients, then green's, then blue's
    np.testing.assert_array_equal(row[9:18], [0, 3, 6, 1, 4, 7, 2, 5, 8])


def test_missing_property_and_ascii_rejected(tmp_path):
    path = str(tmp_path / "bad.ply")
    names = [n for n in gaussian_attribute_names(0) if n != "opacity"]
    header = ("ply\nformat binary_little_endian 1.0\nelement vertex 2\n"
              + "".join(f"property float {n}\n" for n in names) + "end_header\n")
    with open(path, "wb") as f:
        f.write(header.encode() + np.zeros(2 * len(names), "<f4").tobytes())
    with pytest.raises(UserError, match="bad.ply.*opacity"):
        read_gaussian_ply(path)
    with open(path, "w") as f:
        f.write("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n1\n")
    with pytest.raises(UserError, match="bad.ply"):
        read_gaussian_ply(path)
    with pytest.raises(UserError, match="nothere.ply"):
        read_gaussian_ply(str(tmp_path / "nothere.ply"))


def test_fuzz_truncated_and_garbled(tmp_path):
    """Every mangled file either parses to the declared shapes or raises UserError."""
    good = str(tmp_path / "good.ply")
    write_gaussian_ply(good, **_random_splats(4, 1))
    with open(good, "rb") as f:
        blob = f.read()
    rng = random.Random(0)
    path = str(tmp_path / "fuzz.ply")
    outcomes = {"ok": 0, "error": 0}
    cases = [blob[:i] for i in range(0, len(blob), 7)]
    for _ in range(300):
        b = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(b)) if rng.random() < 0.5 else rng.randrange(400)
            op = rng.random()
            if op < 0.4:
                b[pos] = rng.randrange(256)
            elif op < 0.7:
                del b[pos:pos + rng.randint(1, 20)]
            else:
                b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 10)))
        cases.append(bytes(b))
    for case in cases:
        with open(path, "wb") as f:
            f.write(case)
        try:
            got = read_gaussian_ply(path)
        except UserError as e:
            assert "fuzz.ply" in str(e)
            outcomes["error"] += 1
            continue
        n = got["xyz"].shape[0]
        assert got["features_rest"].shape == (n, (got["sh_degree"] + 1) ** 2 - 1, 3)
        outcomes["ok"] += 1
    assert outcomes["ok"] > 0 and outcomes["error"] > 0


def test_point_cloud_round_trip_and_ascii(tmp_path):
    path = str(tmp_path / "points3D.ply")
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(10, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(10, 3)) / 255.0
    write_point_cloud(path, pts, rgb)
    pc = read_point_cloud(path)
    np.testing.assert_array_equal(pc.points, pts)
    np.testing.assert_allclose(pc.colors, rgb, atol=1e-6)
    assert pc.normals.shape == (10, 3)

    ascii_path = str(tmp_path / "input.ply")
    with open(ascii_path, "w") as f:
        f.write("ply\nformat ascii 1.0\ncomment made by hand\nelement vertex 2\n"
                "property double x\nproperty double y\nproperty double z\n"
                "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
                "0 1 2\n3 4 5\n3 0 1 1\n")
    pc = read_point_cloud(ascii_path)
    np.testing.assert_array_equal(pc.points, [[0, 1, 2], [3, 4, 5]])
    np.testing.assert_array_equal(pc.colors, np.full((2, 3), 0.5, np.float32))
    assert pc.normals is None

    with open(ascii_path, "w") as f:
        f.write("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nend_header\n1\n")
    with pytest.raises(UserError, match="input.ply"):
        read_point_cloud(ascii_path)
