"""Property-based fuzzing of every reader of user input (hypothesis; fixed seed and budget).

    .venv/bin/python -m tests.fuzz_readers [--scale 1.0] [--json totals.json]

Families: COLMAP binary and text scenes (through readColmapSceneInfo and the camera maths),
Blender transforms, PLY (splats and point clouds), VLM answers, edit.py YAML configs. Inputs
are valid files broken by tests/fuzz_inputs.py. Every input must end in a load or a
UserError of one line of at most 300 characters naming the file (or, for configs, the flag);
a VLM answer must never raise. Anything else -- another exception, a load whose cameras or
points are not finite, a hang over HANG_S, an allocation past 1 GB (the process runs under
RLIMIT_AS = its size after imports + 1 GB) -- counts as "other" and is printed. Prints the
totals per family; exit status 1 if any "other".
"""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from scene.cameras import Camera
from scene.dataset_readers import getNerfppNorm, readColmapSceneInfo, readNerfSyntheticInfo
from scene.ply_io import read_gaussian_ply, read_point_cloud
from semantic.boxes import boxes_to_mask, clean_boxes, parse_boxes, to_view_pixels
from editing.config import resolve_config
from tests import fuzz_inputs as fi
from utils.errors import MAX_MESSAGE, UserError

HANG_S = 5.0
MEMORY_HEADROOM = 1 << 30
BUDGETS = {"colmap_bin": 600, "colmap_txt": 600, "blender": 500, "ply": 600, "vlm": 700,
           "yaml": 400}


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def limit_memory(headroom: int = MEMORY_HEADROOM):
    """Cap the address space at its current size + headroom: a reader that tries to allocate
    more gets MemoryError (counted as "other") instead of swapping the machine."""
    with open("/proc/self/status") as f:
        vm = int(re.search(r"VmSize:\s+(\d+) kB", f.read()).group(1)) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + headroom, resource.getrlimit(
        resource.RLIMIT_AS)[1]))


def outcome(call, names):
    """("load" | "error" | "other", detail). `names`: one of them must be in an error line."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        problem = call()
        return ("other", f"loaded but {problem}") if problem else ("load", None)
    except UserError as e:
        msg = str(e)
        if "\n" in msg or len(msg) > MAX_MESSAGE or not any(n in msg for n in names):
            return "other", f"bad error line ({len(msg)} chars): {msg[:240]!r}"
        return "error", None
    except _Hang:
        return "other", f"hang over {HANG_S} s"
    except Exception as e:  # MemoryError included
        return "other", f"{type(e).__name__}: {str(e)[:240]}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def cameras_problem(info):
    """The maths a loaded scene feeds: camera matrices and initial points must be finite."""
    cams = list(info.train_cameras) + list(info.test_cameras)
    for c in cams:
        cam = Camera(c.uid, c.R, c.T, c.FovX, c.FovY, torch.zeros(3, c.height, c.width,
                     dtype=torch.uint8), c.image_name, c.uid, cx=c.cx, cy=c.cy)
        for m in (cam.full_proj_transform, cam.camera_center):
            if not torch.isfinite(m).all():
                return f"camera {c.image_name!r} has non-finite matrices"
    if not np.isfinite(getNerfppNorm(cams)["radius"]):
        return "scene radius is not finite"
    pcd = info.point_cloud
    if pcd is not None and not np.isfinite(pcd.points).all():
        return "initial points are not finite"
    return None


# ---------------------------------------------------------------- families

def colmap_family(root, ext):
    fi.make_colmap_scene(root, fi.colmap_model(), ext)
    edits = fi.byte_edits if ext == ".bin" else fi.token_edits
    apply = fi.apply_byte_edits if ext == ".bin" else fi.apply_token_edits
    strategy = st.tuples(st.lists(fi.colmap_value_edits(), max_size=2),
                         st.sampled_from(["cameras", "images", "points3D"]),
                         st.one_of(st.just([]), edits))

    def run(example):
        value_edits, which, file_edits = example
        model = fi.colmap_model()
        for e in value_edits:
            model = fi.apply_colmap_edit(model, e)
        sparse = os.path.join(root, "sparse", "0")
        fi.cl.write_model(sparse, *model, ext=ext)
        if file_edits:
            path = os.path.join(sparse, which + ext)
            mode = "b" if ext == ".bin" else ""
            with open(path, "r" + mode) as f:
                data = f.read()
            with open(path, "w" + mode) as f:
                f.write(apply(data, file_edits))
        return outcome(lambda: cameras_problem(readColmapSceneInfo(root, "images", False)),
                       [root])
    return strategy, run


def blender_family(root):
    fi.make_blender_images(root)
    doc = fi.blender_transforms()
    path = os.path.join(root, "transforms_train.json")

    def run(edit):
        with open(path, "wb") as f:
            f.write(fi.apply_blender_edit(doc, edit) if edit else json.dumps(doc).encode())
        return outcome(lambda: cameras_problem(readNerfSyntheticInfo(root, False, False)),
                       [root])
    return st.one_of(st.none(), fi.blender_edits()), run


def _ply_problem(kind, path):
    if kind == "splat":
        d = read_gaussian_ply(path)
        arrays = [d[k] for k in ("xyz", "features_dc", "features_rest", "opacity", "scaling",
                                 "rotation")]
        if not all(np.isfinite(a).all() for a in arrays):
            return "splat attributes are not finite"
        if len(d["rotation"]) and np.abs(d["rotation"]).max(axis=1).min() == 0:
            return "a rotation is zero"
        return None
    pc = read_point_cloud(path)
    return None if np.isfinite(pc.points).all() and np.isfinite(pc.colors).all() \
        else "points are not finite"


def ply_family(root):
    valid = {}
    for kind in ("splat", "points"):
        p = os.path.join(root, f"valid_{kind}.ply")
        fi.write_valid_ply(p, kind)
        with open(p, "rb") as f:
            valid[kind] = f.read()
    path = os.path.join(root, "fuzz.ply")

    def run(example):
        kind, header_edits, cells, zero_quat, pos, bedits = example
        with open(path, "wb") as f:
            f.write(fi.apply_ply_edits(valid[kind], header_edits, cells, zero_quat, pos, bedits))
        return outcome(lambda: _ply_problem(kind, path), ["fuzz.ply"])
    return fi.ply_edits(), run


def _vlm_problem(text):
    parsed = parse_boxes(text)
    if parsed.status not in ("ok", "partial", "empty", "unparseable"):
        return f"unknown parse status {parsed.status!r}"
    mapped = to_view_pixels(parsed, (64, 48), (0, 0, 64, 48), (40, 30))
    boxes, _, _ = clean_boxes(mapped, parsed.labels, (40, 30), 8, 1.0)
    for x1, y1, x2, y2 in boxes:
        if not (0 <= x1 <= x2 <= 40 and 0 <= y1 <= y2 <= 30):
            return f"box {(x1, y1, x2, y2)} outside the view"
    boxes_to_mask(boxes, (40, 30))
    if not boxes:
        raise UserError("no boxes (parse status recorded)")  # counted as a clean "error"
    return None


def vlm_family(root):
    return fi.vlm_answers, lambda text: outcome(lambda: _vlm_problem(text), ["no boxes"])


def yaml_family(root):
    path = os.path.join(root, "edit.yaml")

    def run(data):
        with open(path, "wb") as f:
            f.write(data)
        return outcome(lambda: resolve_config(["-m", os.path.join(root, "model"),
                                               "--instruction", "x", "--config", path]) and None,
                       ["--"])
    return fi.yaml_configs(), run


FAMILIES = {
    "colmap_bin": lambda root: colmap_family(root, ".bin"),
    "colmap_txt": lambda root: colmap_family(root, ".txt"),
    "blender": blender_family, "ply": ply_family, "vlm": vlm_family, "yaml": yaml_family,
}


def run_family(name, budget):
    root = tempfile.mkdtemp(prefix=f"fuzz_{name}_")
    counts, others = Counter(), []
    slowest = 0.0
    try:
        strategy, run = FAMILIES[name](root)

        @settings(max_examples=budget, derandomize=True, database=None, deadline=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(strategy)
        def prop(example):
            nonlocal slowest
            t0 = time.perf_counter()
            kind, detail = run(example)
            slowest = max(slowest, time.perf_counter() - t0)
            counts[kind] += 1
            if detail:
                others.append(detail)

        t0 = time.perf_counter()
        prop()
        seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"inputs": sum(counts.values()), "loads": counts["load"],
            "clean_errors": counts["error"], "other": counts["other"],
            "slowest_s": round(slowest, 3), "seconds": round(seconds, 1), "others": others[:10]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=1.0, help="multiplies every budget")
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    ap.add_argument("--json", default=None, help="also write the totals here")
    args = ap.parse_args(argv)
    limit_memory()
    results = {}
    print(f"{'family':<12}{'inputs':>8}{'loads':>8}{'errors':>8}{'other':>7}{'slowest':>9}"
          f"{'time':>7}")
    for name in args.families:
        r = results[name] = run_family(name, max(1, int(BUDGETS[name] * args.scale)))
        print(f"{name:<12}{r['inputs']:>8}{r['loads']:>8}{r['clean_errors']:>8}{r['other']:>7}"
              f"{r['slowest_s']:>8.2f}s{r['seconds']:>6.1f}s", flush=True)
        for detail in r["others"]:
            print(f"    other: {detail}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 1 if any(r["other"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
