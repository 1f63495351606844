"""Small valid inputs of every kind a user hands us, and hypothesis strategies that break them:
byte edits and hostile numbers at field offsets (binary files), token edits (text files),
structure edits (JSON, YAML), and hand-picked attacks (deep nesting, aliases, 100k-character
names, 300-digit integers). Used by tests/fuzz_readers.py."""
import json
import os
import struct

import numpy as np
from hypothesis import strategies as st
from PIL import Image as PILImage

from scene import colmap_loader as cl
from scene.ply_io import write_gaussian_ply, write_point_cloud

W, H = 32, 24  # size of every generated image
LONG = "n" * 100_000
FLOATS = [0.0, -0.0, 5e-324, 1e-300, -1.0, -30.0, 1e16, 1e200, 1e300, -1e300, 3.5e38,
          float("nan"), float("inf"), float("-inf")]
UINTS = [0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 62, 2 ** 63, 2 ** 64 - 1]
TOKENS = ["nan", "inf", "-inf", "0", "-0", "-1", "1e300", "1e-320", "1e400", "4294967296",
          "-9223372036854775809", "99999999999999999999999999999", "9" * 5000, "x", "",
          "0x10", "1_000", LONG]


def _png(path, size=(W, H)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PILImage.new("RGB", size, (120, 60, 30)).save(path)


# ---------------------------------------------------------------- COLMAP

def colmap_model(n_images=3, n_points=6):
    """A valid PINHOLE/SIMPLE_PINHOLE model whose images are img_XX.png of W x H."""
    rng = np.random.default_rng(0)
    cameras = {1: cl.Camera(1, "PINHOLE", W, H, np.array([30.0, 31.0, W / 2 + 1, H / 2])),
               2: cl.Camera(2, "SIMPLE_PINHOLE", W, H, np.array([28.0, W / 2, H / 2 - 1]))}
    images = {}
    for k in range(1, n_images + 1):
        q = rng.normal(size=4)
        q = q / np.linalg.norm(q) * np.sign(q[0])
        images[k] = cl.Image(k, q, rng.normal(size=3), 1 + k % 2, f"img_{k:02d}.png",
                             rng.uniform(0, 30, (2, 2)), np.array([1, -1], np.int64))
    lens = np.array([2, 0, 1, 2, 1, 0][:n_points])
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    points = cl.Points3D(np.arange(1, n_points + 1, dtype=np.int64),
                         rng.normal(size=(n_points, 3)),
                         rng.integers(0, 256, (n_points, 3)).astype(np.uint8),
                         rng.random(n_points), offsets,
                         rng.integers(0, 4, (int(offsets[-1]), 2)).astype(np.int32))
    return cameras, images, points


def make_colmap_scene(root, model, ext):
    """Writes `model` as <root>/sparse/0/*.ext and its images; returns the model folder."""
    sparse = os.path.join(root, "sparse", "0")
    cl.write_model(sparse, *model, ext=ext)
    for img in model[1].values():
        if img.name.startswith("img_") and len(img.name) < 100:
            _png(os.path.join(root, "images", img.name))
    return sparse


@st.composite
def colmap_value_edits(draw):
    """(what, index, value) edits applied to the model before it is written."""
    kind = draw(st.sampled_from(["param", "size", "qvec", "tvec", "name", "camera_id", "xyz",
                                 "zero_q"]))
    if kind == "size":
        return kind, draw(st.integers(0, 1)), draw(st.sampled_from(UINTS + [W * 8]))
    if kind == "name":
        return kind, 0, draw(st.sampled_from(["", LONG, "missing.png", "é/../x.png"]))
    if kind == "camera_id":
        return kind, 0, draw(st.sampled_from([0, 99, 2 ** 32 - 1]))
    return kind, draw(st.integers(0, 3)), draw(st.sampled_from(FLOATS))


def apply_colmap_edit(model, edit):
    cameras, images, points = model
    kind, i, v = edit
    cams, imgs = list(cameras.values()), list(images.values())
    if kind in ("param", "size"):
        cam = cams[i % len(cams)]
        if kind == "param":
            p = cam.params.copy()
            p[i % len(p)] = v
            cam = cam._replace(params=p)
        else:
            cam = cam._replace(width=v) if i == 0 else cam._replace(height=v)
        cameras = {**cameras, cam.id: cam}
    elif kind in ("qvec", "tvec", "name", "camera_id", "zero_q"):
        img = imgs[i % len(imgs)]
        if kind == "zero_q":
            img = img._replace(qvec=np.zeros(4))
        elif kind in ("qvec", "tvec"):
            a = getattr(img, kind).copy()
            a[i % len(a)] = v
            img = img._replace(**{kind: a})
        else:
            img = img._replace(**{kind: v})
        images = {**images, img.id: img}
    elif kind == "xyz":
        xyz = points.xyz.copy()
        xyz.flat[i] = v
        points = points._replace(xyz=xyz)
    return cameras, images, points


_SPECIAL_BYTES = ([struct.pack("<d", v) for v in FLOATS] + [struct.pack("<Q", v) for v in UINTS]
                  + [struct.pack("<f", v) for v in FLOATS if abs(v) < 3e38 or v != v]
                  + [struct.pack("<I", v) for v in UINTS if v < 2 ** 32])

byte_edits = st.lists(st.tuples(
    st.sampled_from(["set", "special", "truncate", "insert", "delete"]),
    st.integers(0, 1 << 20), st.integers(0, 255), st.sampled_from(_SPECIAL_BYTES)),
    min_size=1, max_size=3)


def apply_byte_edits(data: bytes, edits) -> bytes:
    b = bytearray(data)
    for op, pos, val, special in edits:
        pos = pos % max(len(b), 1)
        if op == "set" and b:
            b[pos] = val
        elif op == "special":
            b[pos:pos + len(special)] = special
        elif op == "truncate":
            del b[pos:]
        elif op == "insert":
            b[pos:pos] = bytes([val]) * (1 + val % 9)
        elif op == "delete":
            del b[pos:pos + 1 + val % 16]
    return bytes(b)


token_edits = st.lists(st.tuples(
    st.sampled_from(["token", "token", "drop_line", "dup_line", "truncate", "byte"]),
    st.integers(0, 1 << 20), st.sampled_from(TOKENS)), min_size=1, max_size=3)


def apply_token_edits(text: str, edits) -> str:
    """Edits of a whitespace-separated text file: a token replaced by a hostile one, a line
    dropped or repeated, a cut, a stray character."""
    lines = text.split("\n")
    for op, pos, tok in edits:
        data = [(i, j) for i, ln in enumerate(lines) if not ln.startswith("#")
                for j in range(len(ln.split()))]
        if op == "token" and data:
            i, j = data[pos % len(data)]
            el = lines[i].split()
            el[j] = tok
            lines[i] = " ".join(el)
        elif op == "drop_line" and lines:
            del lines[pos % len(lines)]
        elif op == "dup_line" and lines:
            k = pos % len(lines)
            lines.insert(k, lines[k])
        elif op == "truncate":
            flat = "\n".join(lines)
            lines = flat[:pos % (len(flat) + 1)].split("\n")
        elif op == "byte":
            flat = "\n".join(lines)
            k = pos % (len(flat) + 1)
            lines = (flat[:k] + chr(pos % 256) + flat[k:]).split("\n")
    return "\n".join(lines)


# ---------------------------------------------------------------- Blender

def blender_transforms(n=3):
    frames = []
    for i in range(n):
        a = 2 * np.pi * i / n
        c = np.array([4 * np.cos(a), 4 * np.sin(a), 1.5])
        back = c / np.linalg.norm(c)
        right = np.cross([0.0, 0.0, 1.0], back)
        right /= np.linalg.norm(right)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, np.cross(back, right), back, c
        frames.append({"file_path": f"./train/r_{i}", "transform_matrix": m.tolist()})
    return {"camera_angle_x": 0.69, "frames": frames}


def make_blender_images(root, n=3):
    for i in range(n):
        _png(os.path.join(root, "train", f"r_{i}.png"))


_BAD_MATRICES = [
    [[0.0] * 4] * 4, (np.eye(4) * 1e-300).tolist(), np.diag([1.0, 1, -1, 1]).tolist(),
    np.diag([2.0, 2, 2, 1]).tolist(), [[1, 0, 0], [0, 1, 0], [0, 0, 1]], [[1, 0, 0, 10 ** 400]] * 4,
    [[1, 0, 0, 1e200], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], [[[[1]]]] * 4, "eye", None,
    [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1]]]
_BAD_VALUES = [0, -0.5, 3.2, 1e-300, 10 ** 400, float("nan"), float("inf"), "x", None, True,
               [], {}, 1, LONG]


@st.composite
def blender_edits(draw):
    kind = draw(st.sampled_from(["angle", "frames", "matrix", "file_path", "drop_key",
                                 "frame_value", "deep", "text", "benign", "benign"]))
    values = st.floats(0.05, 3.1) if kind == "benign" else st.sampled_from(_BAD_VALUES)
    return (kind, draw(st.integers(0, 1 << 20)), draw(values),
            draw(st.sampled_from(_BAD_MATRICES)), draw(byte_edits))


def apply_blender_edit(doc, edit) -> bytes:
    kind, pos, value, matrix, bedits = edit
    doc = json.loads(json.dumps(doc))
    frame = doc["frames"][pos % len(doc["frames"])]
    if kind in ("angle", "benign"):  # benign: a plausible angle, and a shifted camera
        doc["camera_angle_x"] = value
        if kind == "benign":
            frame["transform_matrix"][pos % 3][3] += value
    elif kind == "frames":
        doc["frames"] = value
    elif kind == "matrix":
        frame["transform_matrix"] = matrix
    elif kind == "file_path":
        frame["file_path"] = value
    elif kind == "drop_key":
        target = [doc, frame][pos % 2]
        target.pop(sorted(target)[pos % len(target)])
    elif kind == "frame_value":
        doc["frames"][pos % len(doc["frames"])] = value
    elif kind == "deep":
        return b"[" * (1000 + pos % 200000) + b"]" * (pos % 3)
    text = json.dumps(doc).encode()
    return apply_byte_edits(text, bedits) if kind == "text" else text


# ---------------------------------------------------------------- PLY

def splat_arrays(n=3, degree=1):
    rng = np.random.default_rng(0)
    k = (degree + 1) ** 2
    return {"xyz": rng.normal(size=(n, 3)), "features_dc": rng.normal(size=(n, 1, 3)),
            "features_rest": rng.normal(size=(n, k - 1, 3)), "opacity": rng.normal(size=(n, 1)),
            "scaling": rng.normal(size=(n, 3)) - 3, "rotation": rng.normal(size=(n, 4))}


def write_valid_ply(path, kind):
    if kind == "splat":
        write_gaussian_ply(path, **splat_arrays())
    else:
        rng = np.random.default_rng(1)
        write_point_cloud(path, rng.normal(size=(5, 3)), rng.random((5, 3)))


_HEADER_EDITS = ["count:0", "count:4611686018427387904", "count:2147483648", "count:+1",
                 "count:-1", "drop_prop", "chunk", "packed", "ascii", "big_endian",
                 "empty_element", "no_props_vertex", "list_prop", "dup_prop", "float64"]
_CELL_VALUES = [float("nan"), float("inf"), -float("inf"), 0.0, 1e38, -1e38, 1e16, 1e300]


@st.composite
def ply_edits(draw):
    return (draw(st.sampled_from(["splat", "points"])),
            draw(st.lists(st.sampled_from(_HEADER_EDITS), max_size=2)),
            draw(st.lists(st.tuples(st.integers(0, 1 << 20), st.sampled_from(_CELL_VALUES)),
                          max_size=2)),
            draw(st.booleans()), draw(st.integers(0, 1 << 20)),
            draw(st.one_of(st.just([]), byte_edits)))


def apply_ply_edits(data: bytes, header_edits, cells, zero_quat, pos, bedits) -> bytes:
    end = data.index(b"end_header\n") + len(b"end_header\n")
    head, body = data[:end].decode().split("\n")[:-1], bytearray(data[end:])
    props = [i for i, ln in enumerate(head) if ln.startswith("property")]
    row_bytes = 4 * sum(1 for i in props if " float " in head[i]) + \
        sum(1 for i in props if " uchar " in head[i])
    names = [head[i].split()[-1] for i in props]
    n_float = sum(1 for i in props if " float " in head[i])
    for value_pos, v in cells:  # a float cell of some row set to a hostile value
        row, col = (value_pos // 64) % max(len(body) // row_bytes, 1), value_pos % n_float
        at = row * row_bytes + 4 * col
        body[at:at + 4] = struct.pack("<f", np.float32(v) if abs(v) < 3.4e38 or v != v
                                      else np.float32(np.inf))
    if zero_quat and "rot_0" in names:
        row = pos % max(len(body) // row_bytes, 1)
        at = row * row_bytes + 4 * names.index("rot_0")
        body[at:at + 16] = b"\0" * 16
    vline = next(i for i, ln in enumerate(head) if ln.startswith("element vertex"))
    n = int(head[vline].split()[2])
    for e in header_edits:
        if not props and e in ("drop_prop", "packed", "list_prop", "dup_prop", "float64"):
            continue
        if e.startswith("count:"):
            c = e[6:]
            head[vline] = f"element vertex {n + int(c) if c[0] in '+-' else int(c)}"
        elif e == "drop_prop":
            del head[props[pos % len(props)]]
        elif e == "chunk":
            head[vline:vline] = ["element chunk 1", "property float min_x"]
        elif e == "packed":
            head[props[0]] = "property uint packed_position"
        elif e == "ascii":
            head[1] = "format ascii 1.0"
        elif e == "big_endian":
            head[1] = "format binary_big_endian 1.0"
        elif e == "empty_element":
            head[vline:vline] = ["element extra 4611686018427387904"]
        elif e == "no_props_vertex":
            head = [ln for ln in head if not ln.startswith("property")]
            head[vline] = "element vertex 4611686018427387904"
        elif e == "list_prop":
            head[props[-1]] = "property list uchar int " + names[-1]
        elif e == "dup_prop":
            head.insert(props[0], head[props[0]])
        elif e == "float64":
            head[props[0]] = head[props[0]].replace(" float ", " double ")
        props = [i for i, ln in enumerate(head) if ln.startswith("property")]
    out = ("\n".join(head) + "\n").encode() + bytes(body)
    return apply_byte_edits(out, bedits) if bedits else out


# ---------------------------------------------------------------- VLM answers

_FRAGMENTS = ['[', ']', '{', '}', ',', ':', '"bbox_2d"', '"bbox"', '"label"', '"cup"', '```json',
              '```', ' ', '\n', '12', '-3', '1e3', '900', '1001', '0.5', '"', 'null', 'NaN',
              '9' * 400, ' ' * 2000, '"bbox_2d": [' + ' ' * 20000, '[' * 5000, '{"a":' * 3000]
_num = st.one_of(st.integers(0, 1000), st.integers(0, 1000), st.integers(-2000, 3000),
                 st.floats(allow_nan=True, allow_infinity=True),
                 st.sampled_from([10 ** 300, -(10 ** 310), 2 ** 64]))
_box = st.fixed_dictionaries({"bbox_2d": st.one_of(st.lists(_num, min_size=4, max_size=4),
                                                   st.lists(_num, min_size=3, max_size=5)),
                              "label": st.text(max_size=12)})
_json_answer = st.recursive(st.one_of(_box, _num, st.text(max_size=8), st.none()),
                            lambda kids: st.lists(kids, max_size=4), max_leaves=12)

vlm_answers = st.one_of(
    st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=10)),
             max_size=30).map("".join),
    _json_answer.map(lambda o: json.dumps(o)),
    st.lists(_box, min_size=1, max_size=3).map(json.dumps),
    st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500), st.integers(501, 1000),
                       st.integers(501, 1000)), min_size=1, max_size=3).map(  # plausible
        lambda bs: json.dumps([{"bbox_2d": list(b), "label": "x"} for b in bs])),
    st.tuples(_json_answer, st.text(max_size=20), st.integers(0, 400)).map(
        lambda t: ("Sure! ```json\n" + json.dumps(t[0]) + "\n```" + t[1])[:t[2] or None]))


# ---------------------------------------------------------------- edit YAML configs

VALID_CONFIG = {"instruction": "'make it red'", "mode": "restyle", "rounds": "2", "seed": "3",
                "guidance_scale": "7.5", "roi_softness": "0.3", "roi_box": "['0:1,2,10,12']",
                "edit_fraction": "0.5", "quiet": "true"}
_YAML_VALUES = ["null", "~", ".inf", "-.inf", ".nan", str(2 ** 70), "-1", "[1, 2]", "{a: 1}",
                "true", "'1e999'", "9" * 5000, "2.5", "0", "1e308", "''", "!!binary aGk=",
                "2001-13-45", "!!python/object:os.system x", "&a 1", "*a", LONG]
_YAML_ATTACKS = [
    "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\n" + "".join(
        f"d{i}: &d{i} [*{'c' if i == 0 else f'd{i - 1}'}, *{'c' if i == 0 else f'd{i - 1}'}]\n"
        for i in range(20)),
    "rounds: " + "[" * 50000, "rounds: " + "{a: " * 3000 + "1" + "}" * 3000,
    "".join("  " * i + f"k{i}:\n" for i in range(200)), b"\xff\xfe rounds: 1", "- 1\n- 2\n",
    "<<: {rounds: 2}\n", "? [a, b]\n: 1\n", "rounds: 1\nrounds: 2\n", "unknown_key: 1\n"]


@st.composite
def yaml_configs(draw) -> bytes:
    kind = draw(st.sampled_from(["values", "values", "attack", "bytes"]))
    if kind == "attack":
        attack = draw(st.sampled_from(_YAML_ATTACKS))
        return attack if isinstance(attack, bytes) else attack.encode()
    cfg = dict(VALID_CONFIG)
    for key, value in draw(st.lists(st.tuples(st.sampled_from(sorted(cfg)),
                                              st.sampled_from(_YAML_VALUES)), max_size=2)):
        cfg[key] = value
    text = "".join(f"{k}: {v}\n" for k, v in cfg.items()).encode()
    return apply_byte_edits(text, draw(byte_edits)) if kind == "bytes" else text
