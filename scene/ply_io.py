"""PLY reading and writing without the plyfile dependency.

Two layouts matter here:
  * Gaussian splats: the standard 3DGS vertex layout, all float32, binary little-endian
    (x y z nx ny nz f_dc_0..2 f_rest_* opacity scale_0..2 rot_0..3). f_rest is stored
    channel-major: all K-1 higher-order coefficients of red, then green, then blue.
  * Plain point clouds (COLMAP points3D.ply, our input.ply): x y z [+ normals]
    [+ red green blue].

Anything wrong with a file a user hands us becomes a UserError naming the file.
"""
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from scene.input_checks import MAX_COORD, first_bad_row
from utils.errors import UserError, elide
from utils.image_utils import to_uint8
from utils.io_utils import atomic_path

_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}
_FORMATS = {"binary_little_endian": "<", "binary_big_endian": ">", "ascii": "ascii"}
_MAX_HEADER = 1 << 20  # a real header is a few KB; bound how much we scan for end_header
MAX_LOG_SCALE = 30.0  # exp(30) ~ 1e13 scene units: larger is corruption (float32 maths overflow)
# PlayCanvas / SuperSplat "compressed PLY": quantised chunks, not the 3DGS vertex layout.
_COMPRESSED_HINT = ("decompress it first: `splat-transform in.compressed.ply out.ply` "
                    "(npm i -g @playcanvas/splat-transform) or SuperSplat's PLY export")


@dataclass
class _Element:
    name: str
    count: int
    props: list  # [(name, dtype str)] ; list properties as (name, (count_t, item_t))


@dataclass
class PointCloud:
    points: np.ndarray          # (N,3) float32
    colors: np.ndarray          # (N,3) float32 in [0,1]
    normals: Optional[np.ndarray] = None  # (N,3) float32, when the file has them


# ---------------------------------------------------------------- reading

def _parse_header(path: str, f):
    head = f.read(_MAX_HEADER)
    if not head.startswith(b"ply"):
        raise UserError(f"{path}: not a PLY file (missing 'ply' magic)")
    end = head.find(b"end_header")
    if end < 0:
        raise UserError(f"{path}: PLY header has no end_header (truncated or not a PLY file)")
    nl = head.find(b"\n", end)
    if nl < 0:
        raise UserError(f"{path}: PLY header is truncated after end_header")
    try:
        text = head[:end].decode("ascii")
    except UnicodeDecodeError:
        raise UserError(f"{path}: PLY header is not ASCII text (garbled file)") from None
    fmt, elements = None, []
    for raw in text.replace("\r", "").split("\n")[1:]:
        tok = raw.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            if len(tok) != 3 or tok[1] not in _FORMATS:
                raise UserError(f"{path}: unsupported PLY format line '{raw.strip()}'")
            fmt = _FORMATS[tok[1]]
        elif tok[0] == "element":
            if len(tok) != 3 or not tok[2].isdigit():
                raise UserError(f"{path}: bad PLY element line '{raw.strip()}'")
            elements.append(_Element(tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if not elements:
                raise UserError(f"{path}: PLY property declared before any element")
            if len(tok) == 5 and tok[1] == "list" and tok[2] in _TYPES and tok[3] in _TYPES:
                elements[-1].props.append((tok[4], (_TYPES[tok[2]], _TYPES[tok[3]])))
            elif len(tok) == 3 and tok[1] in _TYPES:
                elements[-1].props.append((tok[2], _TYPES[tok[1]]))
            else:
                raise UserError(f"{path}: bad PLY property line '{raw.strip()}'")
        else:
            raise UserError(f"{path}: unexpected PLY header line '{raw.strip()}'")
    if fmt is None:
        raise UserError(f"{path}: PLY header has no format line")
    for e in elements:
        if e.count and not e.props:
            raise UserError(f"{path}: PLY element {elide(e.name, 40)} declares {e.count} rows "
                            f"but no properties (corrupt header)")
    return fmt, elements, nl + 1


def _min_row_bytes(e: _Element, fmt: str) -> int:
    """Fewest bytes one row of `e` can take in the body (ASCII: a digit and a separator per
    value), so a count can be checked against the file size before anything is allocated."""
    if fmt == "ascii":
        return 2 * len(e.props)
    return sum(np.dtype(t[0] if isinstance(t, tuple) else t).itemsize for _, t in e.props)


def _refuse_compressed(path: str, elements):
    names = {e.name for e in elements}
    packed = any(p[0].startswith("packed_") for e in elements for p in e.props)
    if "chunk" in names or packed:
        raise UserError(f"{path} is a PlayCanvas compressed PLY; {_COMPRESSED_HINT}")


def _dtype(path, props, fmt):
    try:
        return np.dtype([(n, fmt + t) for n, t in props])
    except (ValueError, TypeError):  # e.g. a garbled header repeating a name
        raise UserError(f"{path}: PLY header declares invalid properties") from None


def _read_vertices(path: str, allow_ascii: bool):
    """Return the vertex element as a numpy structured array (native byte order)."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: file not found")
    try:
        with open(path, "rb") as f:
            fmt, elements, data_start = _parse_header(path, f)
            _refuse_compressed(path, elements)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            need = data_start + sum(e.count * _min_row_bytes(e, fmt) for e in elements)
            if size < need:
                raise UserError(f"{path}: PLY file has {size} bytes but its header declares "
                                f"rows needing at least {need}; truncated or corrupt file")
            idx = next((i for i, e in enumerate(elements) if e.name == "vertex"), None)
            if idx is None:
                raise UserError(f"{path}: PLY file has no 'vertex' element")
            vert = elements[idx]
            names = [p[0] for p in vert.props]
            if len(set(names)) != len(names):
                raise UserError(f"{path}: PLY vertex element repeats a property name")
            if any(isinstance(p[1], tuple) for p in vert.props):
                raise UserError(f"{path}: PLY vertex element has list properties")
            if fmt == "ascii":
                if not allow_ascii:
                    raise UserError(f"{path}: ASCII PLY is not supported for Gaussian splats; "
                                    "expected binary_little_endian")
                return _read_ascii_vertices(path, f, data_start, elements, idx)
            # Skipping elements before the vertex needs fixed-size rows.
            offset = data_start
            for e in elements[:idx]:
                if any(isinstance(p[1], tuple) for p in e.props):
                    raise UserError(f"{path}: cannot skip PLY element '{e.name}' with list "
                                    "properties that precedes 'vertex'")
                offset += e.count * _dtype(path, e.props, fmt).itemsize
            dtype = _dtype(path, vert.props, fmt)
            need = offset + vert.count * dtype.itemsize
            exact = len(elements) == 1
            if size < need or (exact and size != need):
                raise UserError(f"{path}: PLY file size {size} bytes does not match its header "
                                f"({vert.count} vertices need {need} bytes); truncated or "
                                "corrupt file")
            f.seek(offset)
            buf = f.read(vert.count * dtype.itemsize)
    except OSError as e:
        raise UserError(f"{path}: cannot read PLY file: {e.strerror}") from e
    arr = np.frombuffer(buf, dtype=dtype, count=vert.count)
    return arr.astype(dtype.newbyteorder("="))


def _read_ascii_vertices(path, f, data_start, elements, idx):
    if idx != 0:
        raise UserError(f"{path}: ASCII PLY must list the 'vertex' element first")
    vert = elements[0]
    f.seek(data_start)
    try:
        tokens = f.read().decode("ascii").split()
    except UnicodeDecodeError:
        raise UserError(f"{path}: ASCII PLY body is not text (garbled file)") from None
    n_props = len(vert.props)
    if len(tokens) < vert.count * n_props:
        raise UserError(f"{path}: ASCII PLY has fewer values than its header declares")
    try:
        vals = np.array(tokens[: vert.count * n_props], dtype=np.float64)
    except ValueError:
        raise UserError(f"{path}: ASCII PLY contains a non-numeric value") from None
    vals = vals.reshape(vert.count, n_props)
    arr = np.empty(vert.count, dtype=[(n, t) for n, t in vert.props])
    for i, (n, _) in enumerate(vert.props):
        arr[n] = vals[:, i]
    return arr


def _column(arr, path, name):
    if name not in arr.dtype.names:
        raise UserError(f"{path}: PLY vertex element is missing property '{name}'")
    return np.asarray(arr[name], dtype=np.float32)


def _stack(arr, path, names):
    if not names:
        return np.zeros((len(arr), 0), dtype=np.float32)
    return np.stack([_column(arr, path, n) for n in names], axis=1)


def _numbered(names, prefix):
    """Count properties named prefix0..prefixM-1, requiring no gaps."""
    found = sorted(int(n[len(prefix):]) for n in names
                   if n.startswith(prefix) and n[len(prefix):].isdigit())
    return len(found), found == list(range(len(found)))


def _refuse_rows(path: str, bad: np.ndarray, problem: str):
    row, count = first_bad_row(bad)
    if count:
        raise UserError(f"{path}: vertex {row} {problem} ({count} of {len(bad)} vertices); "
                        "corrupt or not a trained splat file")


def _check_finite(path: str, arr, names):
    """Every float property finite and within float32 (what it is converted to)."""
    f32_max = float(np.finfo(np.float32).max)
    for name in names:
        if np.issubdtype(arr.dtype[name], np.floating):
            with np.errstate(invalid="ignore"):
                ok = np.abs(arr[name]) <= f32_max  # False for NaN
            _refuse_rows(path, ~ok, f"has a non-finite (or beyond float32) {elide(name, 40)}")


def _check_positions(path: str, xyz: np.ndarray):
    _refuse_rows(path, np.any(np.abs(xyz) > MAX_COORD, axis=1),
                 f"has a position beyond +-{MAX_COORD:g}")


def read_gaussian_ply(path: str) -> dict:
    """Read a 3DGS splat PLY. Returns numpy float32 arrays: xyz (N,3), features_dc (N,1,3),
    features_rest (N,K-1,3), opacity (N,1), scaling (N,3) log-scale, rotation (N,4) wxyz,
    and sh_degree (int)."""
    arr = _read_vertices(path, allow_ascii=False)
    names = arr.dtype.names
    n = len(arr)
    n_rest, contiguous = _numbered(names, "f_rest_")
    if not contiguous:
        raise UserError(f"{path}: f_rest_* properties are not numbered 0..M-1")
    n_coeffs = n_rest // 3 + 1
    degree = int(round(np.sqrt(n_coeffs))) - 1
    if n_rest % 3 or (degree + 1) ** 2 != n_coeffs:
        raise UserError(f"{path}: {n_rest} f_rest_* properties do not match any SH degree")
    for prefix, want in (("scale_", 3), ("rot_", 4)):
        got, contiguous = _numbered(names, prefix)
        if got != want or not contiguous:
            raise UserError(f"{path}: expected {prefix}0..{want - 1} properties, found {got}")
    rest = _stack(arr, path, [f"f_rest_{i}" for i in range(n_rest)])
    out = {
        "xyz": _stack(arr, path, ["x", "y", "z"]),
        "features_dc": _stack(arr, path, ["f_dc_0", "f_dc_1", "f_dc_2"]).reshape(n, 1, 3),
        # channel-major on disk: (N, 3, K-1) -> (N, K-1, 3)
        "features_rest": rest.reshape(n, 3, n_coeffs - 1).transpose(0, 2, 1).copy(),
        "opacity": _column(arr, path, "opacity").reshape(n, 1),
        "scaling": _stack(arr, path, ["scale_0", "scale_1", "scale_2"]),
        "rotation": _stack(arr, path, ["rot_0", "rot_1", "rot_2", "rot_3"]),
        "sh_degree": degree,
    }
    # Values, once every property is known to be there: nothing below may reach the maths.
    _check_finite(path, arr, names)
    _check_positions(path, out["xyz"])
    _refuse_rows(path, np.abs(out["rotation"]).max(axis=1, initial=0.0) < 1e-12,
                 "has a zero rotation quaternion (rot_0..rot_3)")
    _refuse_rows(path, np.any(out["scaling"] > MAX_LOG_SCALE, axis=1),
                 f"has a log-scale above {MAX_LOG_SCALE:g}")
    return out


def read_point_cloud(path: str) -> PointCloud:
    """Read x,y,z (+ optional nx,ny,nz and red,green,blue) from any PLY encoding.
    Integer colours are scaled by their type's maximum; float colours are taken as [0,1].
    Missing colours default to mid grey."""
    arr = _read_vertices(path, allow_ascii=True)
    names = arr.dtype.names
    _check_finite(path, arr, [n for n in ("x", "y", "z", "red", "green", "blue") if n in names])
    points = _stack(arr, path, ["x", "y", "z"])
    _check_positions(path, points)
    if all(c in names for c in ("red", "green", "blue")):
        kind = arr.dtype["red"]
        colors = _stack(arr, path, ["red", "green", "blue"])
        if np.issubdtype(kind, np.integer):
            colors = colors / float(np.iinfo(kind).max)
        colors = np.clip(colors, 0.0, 1.0).astype(np.float32)
    else:
        colors = np.full_like(points, 0.5)
    normals = None
    if all(c in names for c in ("nx", "ny", "nz")):
        normals = _stack(arr, path, ["nx", "ny", "nz"])
    return PointCloud(points=points, colors=colors, normals=normals)


# ---------------------------------------------------------------- writing

def gaussian_attribute_names(sh_degree: int) -> list:
    """Property names of the standard 3DGS vertex layout, in file order."""
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(n_rest)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def _write_binary(path: str, data: np.ndarray):
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(data)}"]
    inv = {"i1": "char", "u1": "uchar", "i2": "short", "u2": "ushort",
           "i4": "int", "u4": "uint", "f4": "float", "f8": "double"}
    for name in data.dtype.names:
        header.append(f"property {inv[data.dtype[name].str[1:]]} {name}")
    header.append("end_header")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(("\n".join(header) + "\n").encode("ascii"))
            f.write(data.tobytes())


def write_gaussian_ply(path: str, xyz, features_dc, features_rest, opacity, scaling, rotation):
    """Write numpy arrays shaped as read_gaussian_ply returns them (normals written as 0)."""
    xyz = np.asarray(xyz, dtype=np.float32)
    n = xyz.shape[0]
    k_minus_1 = np.asarray(features_rest).shape[1]
    degree = int(round(np.sqrt(k_minus_1 + 1))) - 1
    if (degree + 1) ** 2 != k_minus_1 + 1:
        raise ValueError(f"features_rest has {k_minus_1} coefficients: not a full SH degree")
    cols = np.concatenate([
        xyz,
        np.zeros((n, 3), np.float32),
        np.asarray(features_dc, np.float32).reshape(n, 3),
        np.asarray(features_rest, np.float32).transpose(0, 2, 1).reshape(n, 3 * k_minus_1),
        np.asarray(opacity, np.float32).reshape(n, 1),
        np.asarray(scaling, np.float32).reshape(n, 3),
        np.asarray(rotation, np.float32).reshape(n, 4),
    ], axis=1)
    names = gaussian_attribute_names(degree)
    assert cols.shape[1] == len(names)
    data = np.ascontiguousarray(cols).view(np.dtype([(nm, "<f4") for nm in names])).reshape(n)
    _write_binary(path, data)


def write_point_cloud(path: str, points, colors, normals=None):
    """Write x,y,z,nx,ny,nz float + red,green,blue uchar (the reference's storePly layout).
    colors are floats in [0,1]."""
    points = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    n = len(points)
    normals = np.zeros_like(points) if normals is None else np.asarray(normals, np.float32)
    rgb = to_uint8(np.asarray(colors, np.float64).reshape(n, 3), "half_even")
    data = np.empty(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                              ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
                              ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    for i, c in enumerate("xyz"):
        data[c] = points[:, i]
        data["n" + c] = normals[:, i]
    for i, c in enumerate(("red", "green", "blue")):
        data[c] = rgb[:, i]
    _write_binary(path, data)
