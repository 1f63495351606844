"""Each class of bad input from issue 22 ends in one UserError line naming the file and entry
(and nothing else): COLMAP cameras/images/points, Blender transforms, PLY, VLM answers, edit
YAML. The fuzzer (test_reader_fuzz.py) explores around these; here each case is pinned."""
import json
import os
import time

import numpy as np
import pytest

from editing.config import resolve_config
from scene import colmap_loader as cl
from scene.dataset_readers import readColmapSceneInfo, readNerfSyntheticInfo
from scene.ply_io import read_gaussian_ply, read_point_cloud, write_gaussian_ply
from semantic.boxes import parse_boxes
from tests import fuzz_inputs as fi
from utils.errors import UserError

pytestmark = pytest.mark.unit


def _refused(call, *needles):
    with pytest.raises(UserError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg and len(msg) <= 300, msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


# ---------------------------------------------------------------- COLMAP

def _colmap_scene(tmp_path, ext, edit):
    cameras, images, points = fi.colmap_model()
    cameras, images, points = edit(dict(cameras), dict(images), points)
    fi.make_colmap_scene(str(tmp_path), fi.colmap_model(), ext)  # images
    cl.write_model(str(tmp_path / "sparse" / "0"), cameras, images, points, ext=ext)
    return lambda: readColmapSceneInfo(str(tmp_path), "images", False)


def _cam(value, index=0, field="params"):
    def edit(cams, imgs, pts):
        c = cams[1]
        if field == "params":
            p = c.params.copy()
            p[index] = value
            cams[1] = c._replace(params=p)
        else:
            cams[1] = c._replace(**{field: value})
        return cams, imgs, pts
    return edit


def _img(field, value):
    def edit(cams, imgs, pts):
        imgs[2] = imgs[2]._replace(**{field: value})
        return cams, imgs, pts
    return edit


def _pts(value):
    def edit(cams, imgs, pts):
        xyz = pts.xyz.copy()
        xyz[3, 1] = value
        return cams, imgs, pts._replace(xyz=xyz)
    return edit


@pytest.mark.parametrize("ext", [".bin", ".txt"])
@pytest.mark.parametrize("edit,needles", [
    (_cam(0.0), ["cameras", "camera 1", "focal"]),
    (_cam(5e-324), ["camera 1", "focal"]),
    (_cam(-30.0), ["camera 1", "focal"]),
    (_cam(1e300, 1), ["camera 1", "fy"]),
    (_cam(1e300, 2), ["camera 1", "principal point"]),
    (_cam(-1e6, 3), ["camera 1", "cy"]),
    (_cam(0, field="width"), ["camera 1", "size"]),
    (_cam(1 << 40, field="height"), ["camera 1", "size"]),
    (_img("qvec", np.zeros(4)), ["images", "image 2", "quaternion"]),
    (_img("qvec", np.array([1e-200, 0, 0, 0])), ["image 2", "quaternion"]),
    (_img("qvec", np.array([np.nan, 0, 0, 1])), ["image 2", "quaternion"]),
    (_img("tvec", np.array([0, 1e200, 0])), ["images", "image 2", "translation"]),
    (_pts(np.nan), ["points3D", "point 4"]),
    (_pts(np.inf), ["points3D", "point 4"]),
    (_pts(3.5e38), ["points3D", "point 4"]),
])
def test_colmap_values_refused(tmp_path, ext, edit, needles):
    _refused(_colmap_scene(tmp_path, ext, edit), *needles)


def test_colmap_long_name_elided_and_listing_file_named(tmp_path):
    _refused(_colmap_scene(tmp_path / "a", ".bin", _img("name", fi.LONG)), "images.bin", "...")
    _refused(_colmap_scene(tmp_path / "b", ".txt", _img("name", "gone.png")), "gone.png",
             "listed in", "images.txt")


@pytest.mark.parametrize("line,needle", [
    ("99999999999999999999 0 0 0 1 2 3 0.5", "point id"),
    ("1 0 0 0 1 2 3 0.5 1 4294967296", "track entry"),
    ("1 0 1e999 0 1 2 3 0.5", "point 1"),
])
def test_colmap_text_point_ranges(tmp_path, line, needle):
    p = tmp_path / "points3D.txt"
    p.write_text(line + "\n")
    _refused(lambda: cl.read_points3D_text(str(p)), "points3D.txt", needle)


# ---------------------------------------------------------------- Blender

def _blender(tmp_path, mutate=None, raw=None):
    fi.make_blender_images(str(tmp_path))
    doc = fi.blender_transforms()
    if mutate:
        mutate(doc)
    (tmp_path / "transforms_train.json").write_bytes(raw if raw is not None
                                                     else json.dumps(doc).encode())
    return lambda: readNerfSyntheticInfo(str(tmp_path), False, False)


def _set_matrix(m):
    return lambda doc: doc["frames"][1].__setitem__("transform_matrix", m)


@pytest.mark.parametrize("mutate,needles", [
    (_set_matrix([[0.0] * 4] * 4), ["frame 1", "bottom row"]),
    (_set_matrix((np.eye(4) * 1e-300).tolist()), ["frame 1"]),
    (_set_matrix(np.diag([1.0, 1, -1, 1]).tolist()), ["frame 1", "rotation"]),
    (_set_matrix([[1, 0, 0, 10 ** 400], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     ["frame 1", "transform_matrix"]),
    (lambda d: d.__setitem__("frames", 1), ["frames must be a list"]),
    (lambda d: d.__setitem__("frames", None), ["frames must be a list"]),
    (lambda d: d.pop("camera_angle_x"), ["camera_angle_x"]),
    (lambda d: d["frames"][0].pop("file_path"), ["frame 0", "file_path"]),
] + [(lambda d, v=v: d.__setitem__("camera_angle_x", v), ["camera_angle_x"])
     for v in (0, float("inf"), float("nan"), -0.5, np.pi, 4.0, 10 ** 400, "wide", True)])
def test_blender_refused(tmp_path, mutate, needles):
    _refused(_blender(tmp_path, mutate), "transforms_train.json", *needles)


def test_blender_deep_json(tmp_path):
    _refused(_blender(tmp_path, raw=b"[" * 200_000), "transforms_train.json", "nested")


# ---------------------------------------------------------------- PLY

def _ply(tmp_path, **changes):
    arrays = fi.splat_arrays()
    for k, (row, col, v) in changes.items():
        arrays[k][row].flat[col] = v
    path = str(tmp_path / "point_cloud.ply")
    write_gaussian_ply(path, **arrays)
    return path


@pytest.mark.parametrize("changes,needles", [
    ({"opacity": (2, 0, np.nan)}, ["vertex 2", "opacity"]),
    ({"xyz": (1, 2, np.inf)}, ["vertex 1", "'z'"]),
    ({"features_rest": (0, 4, -np.inf)}, ["vertex 0", "f_rest"]),
    ({"scaling": (1, 0, 1e6)}, ["vertex 1", "log-scale"]),
])
def test_ply_values_refused(tmp_path, changes, needles):
    path = _ply(tmp_path, **changes)
    _refused(lambda: read_gaussian_ply(path), "point_cloud.ply", *needles)


def test_ply_zero_quaternion_names_the_row(tmp_path):
    arrays = fi.splat_arrays()
    arrays["rotation"][2] = 0
    path = str(tmp_path / "z.ply")
    write_gaussian_ply(path, **arrays)
    _refused(lambda: read_gaussian_ply(path), "z.ply", "vertex 2", "zero rotation")


def test_ply_huge_count_without_properties_fails_fast(tmp_path):
    path = tmp_path / "big.ply"
    path.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 4611686018427387904"
                     b"\nend_header\n")
    t0 = time.perf_counter()
    _refused(lambda: read_point_cloud(str(path)), "big.ply", "no properties")
    path.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 4611686018427387904\n"
                     b"property float x\nproperty float y\nproperty float z\nend_header\n1 2 3\n")
    _refused(lambda: read_point_cloud(str(path)), "big.ply", "truncated")
    assert time.perf_counter() - t0 < 5.0  # a hang guard, not a speed target


def test_ply_truncated(tmp_path):
    path = _ply(tmp_path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[:-5])
    _refused(lambda: read_gaussian_ply(path), "point_cloud.ply", "truncated")


def test_playcanvas_compressed_ply_refused_with_how_to_decompress(tmp_path):
    path = tmp_path / "scene.compressed.ply"
    head = ("ply\nformat binary_little_endian 1.0\nelement chunk 1\n"
            + "".join(f"property float {n}\n" for n in ("min_x", "min_y", "min_z", "max_x"))
            + "element vertex 2\n" + "".join(f"property uint packed_{n}\n" for n in
                                             ("position", "rotation", "scale", "color"))
            + "end_header\n")
    path.write_bytes(head.encode() + b"\0" * (16 + 2 * 16))
    _refused(lambda: read_gaussian_ply(str(path)), "scene.compressed.ply", "PlayCanvas",
             "splat-transform", "SuperSplat")


# ---------------------------------------------------------------- VLM answers

@pytest.mark.parametrize("text", [
    '"bbox_2d": [' + " " * 20_000, '[{"bbox_2d": [' + "9" * 400 + ', 1, 2, 3]}]',
    "[" * 100_000 + "]" * 100_000, '{"a": ' * 50_000, "x" * 5_000_000,
])
def test_vlm_hostile_answers_give_no_boxes_quickly(text):
    t0 = time.perf_counter()
    parsed = parse_boxes(text)
    assert parsed.boxes == [] and parsed.status == "unparseable"
    assert time.perf_counter() - t0 < 1.0  # cubic backtracking took 7 s at 1,000 spaces


def test_vlm_overlong_answer_keeps_its_complete_boxes():
    text = '[{"bbox_2d": [10, 20, 300, 400], "label": "cup"}, ' + " " * 100_000 + "]"
    parsed = parse_boxes(text)
    assert parsed.boxes == [(10.0, 20.0, 300.0, 400.0)] and parsed.status == "partial"


# ---------------------------------------------------------------- edit YAML

@pytest.mark.parametrize("yaml_text,needles", [
    ("rounds: null\n", ["'rounds'", "null"]),
    ("round_iters: ~\n", ["'round_iters'", "null"]),
    ("seed: .inf\n", ["'seed'"]),
    (f"seed: {2 ** 70}\n", ["'seed'", "[0, 2147483647]"]),
    ("guidance_scale: .nan\n", ["'guidance_scale'", "finite"]),
    ("roi_softness: .nan\n", ["'roi_softness'", "finite"]),
    ("rounds: 2.5\n", ["'rounds'"]),
    ("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n", ["anchor"]),
    ("rounds: " + "[" * 100_000 + "\n", ["nested deeper"]),
    ("rounds: 1\n\x00\n", ["--config"]),
])
def test_edit_yaml_refused(tmp_path, yaml_text, needles):
    path = tmp_path / "edit.yaml"
    path.write_text(yaml_text)
    _refused(lambda: resolve_config(["-m", str(tmp_path / "m"), "--instruction", "x",
                                     "--config", str(path)]), "edit.yaml", *needles)


@pytest.mark.parametrize("flags,needle", [
    (["--guidance_scale", "nan"], "--guidance_scale"), (["--seed", str(2 ** 70)], "--seed"),
    (["--roi_softness", "inf"], "--roi_softness"), (["--seed", "-1"], "--seed")])
def test_edit_numeric_flags_refused(flags, needle):
    _refused(lambda: resolve_config(["-m", "m", "--instruction", "x"] + flags), needle)


def test_edit_yaml_not_utf8(tmp_path):
    path = tmp_path / "edit.yaml"
    path.write_bytes(b"instruction: caf\xe9\n")
    _refused(lambda: resolve_config(["-m", "m", "--instruction", "x", "--config", str(path)]),
             "edit.yaml", "UTF-8")


def test_edit_yaml_valid_still_loads(tmp_path):
    path = tmp_path / "edit.yaml"
    path.write_text("rounds: 2\nseed: 7\nguidance_scale: 6.5\nroi_box: ['0:1,2,10,12']\n"
                    "clip_model: null\n")
    cfg = resolve_config(["-m", str(tmp_path / "m"), "--instruction", "x", "--config",
                          str(path)])
    assert (cfg.rounds, cfg.seed, cfg.guidance_scale, cfg.roi_box) == (2, 7, 6.5,
                                                                         ["0:1,2,10,12"])
    assert os.path.basename(cfg.output) == "m_edit"
