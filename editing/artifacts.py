"""The edit's output layout (part of the product), and how each file is written.

<output>/config.yaml  training_state.yaml  manifest.json  training_log.csv
<output>/checkpoints/model_round_001.pt ... model_latest.pt     (params + optimizer + RNG)
<output>/rounds/round_001/renders/{pre_edit,edited,post_opt}_view_<id>.png
<output>/rounds/round_001/roi/{mask_view_<id>.png, gaussian_weights.npy, visibility_view_<id>.png}
<output>/metrics/round_001.yaml
<output>/point_cloud/round_001/point_cloud.ply

Every file goes through a temporary file and os.replace. training_state.yaml is written last
in a round: it is the commit point, so a run killed at any moment resumes from the last round
it names, whatever partial files a later round left behind.
"""
import hashlib
import json
import os
import platform
import shutil
import sys
import time
from typing import Optional

import numpy as np
import torch
import yaml

from utils.errors import UserError
from utils.general_utils import get_rng_state
from utils.io_utils import atomic_path, atomic_torch_save, atomic_write_json, atomic_write_text

CHECKPOINT_FORMAT = "gs-edit-checkpoint-v1"
STATE_FORMAT = "gs-edit-state-v1"


class Layout:
    def __init__(self, root: str):
        self.root = root
        self.config = os.path.join(root, "config.yaml")
        self.state = os.path.join(root, "training_state.yaml")
        self.manifest = os.path.join(root, "manifest.json")
        self.checkpoints = os.path.join(root, "checkpoints")
        self.latest = os.path.join(self.checkpoints, "model_latest.pt")

    def checkpoint(self, r: int) -> str:
        return os.path.join(self.checkpoints, f"model_round_{r:03d}.pt")

    def round_dir(self, r: int) -> str:
        return os.path.join(self.root, "rounds", f"round_{r:03d}")

    def render(self, r: int, kind: str, view: int) -> str:
        return os.path.join(self.round_dir(r), "renders", f"{kind}_view_{view:03d}.png")

    def roi(self, r: int, name: str) -> str:
        return os.path.join(self.round_dir(r), "roi", name)

    def metrics(self, r: int) -> str:
        return os.path.join(self.root, "metrics", f"round_{r:03d}.yaml")

    def ply(self, r: int) -> str:
        return os.path.join(self.root, "point_cloud", f"round_{r:03d}", "point_cloud.ply")

    def round_files(self, r: int):
        """Everything round r owns (for --from_round, which discards later rounds)."""
        return [self.round_dir(r), self.metrics(r), os.path.dirname(self.ply(r)),
                self.checkpoint(r)]


# ------------------------------------------------------------------ images and arrays

def save_npy(arr: np.ndarray, path: str):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
            np.save(f, arr)


def write_yaml(path: str, obj):
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=None))


def read_yaml(path: str, what: str):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        return None
    except yaml.YAMLError:
        raise UserError(f"{path}: {what} is not valid YAML") from None


# ------------------------------------------------------------------ checkpoints

def save_checkpoint(path: str, round_index: int, iteration: int, gaussians):
    atomic_torch_save({"format": CHECKPOINT_FORMAT, "round": int(round_index),
                       "iteration": int(iteration), "model": gaussians.capture(),
                       "rng": get_rng_state()}, path)


def load_checkpoint(path: str) -> dict:
    if not os.path.isfile(path):
        raise UserError(f"{path}: missing edit checkpoint (the output folder is incomplete)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path}: not a checkpoint written by edit.py")
    return ckpt


def copy_atomic(src: str, dst: str):
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


# ------------------------------------------------------------------ training state

def empty_state() -> dict:
    return {"format": STATE_FORMAT, "completed_rounds": 0, "iteration": 0, "rounds": []}


def read_state(layout: Layout) -> dict:
    st = read_yaml(layout.state, "the training state")
    if st is None:
        return empty_state()
    if not isinstance(st, dict) or st.get("format") != STATE_FORMAT:
        raise UserError(f"{layout.state}: not a training state written by edit.py")
    return st


def write_state(layout: Layout, state: dict):
    write_yaml(layout.state, state)


# ------------------------------------------------------------------ manifest

def sha256_file(path: str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def hash_folder(folder: str, cache: Optional[dict] = None) -> dict:
    """{relative path: {"sha256", "bytes"}} for every file; entries of `cache` whose size and
    mtime still match are reused (a resumed run does not re-hash gigabytes of weights)."""
    cache = cache or {}
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            p = os.path.join(root, name)
            rel = os.path.relpath(p, folder)
            st = os.stat(p)
            old = cache.get(rel)
            if old and old.get("bytes") == st.st_size and old.get("mtime") == int(st.st_mtime):
                out[rel] = old
                continue
            out[rel] = {"sha256": sha256_file(p), "bytes": st.st_size, "mtime": int(st.st_mtime)}
    return out


def describe_model(name: Optional[str], cache: Optional[dict] = None) -> Optional[dict]:
    """Model id, the local folder it was read from, and its files' hashes (hub ids: the local
    cache snapshot when there is one)."""
    if not name:
        return None
    from utils.hf_models import local_snapshot
    rec = {"id": name, "path": None, "files": None}
    folder, note = local_snapshot(name)
    if note:
        rec["note"] = note
    if folder and os.path.isdir(folder):
        rec["path"] = os.path.abspath(folder)
        rec["files"] = hash_folder(folder, (cache or {}).get("files"))
    return rec


def package_versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in ("torch", "numpy", "diffusers", "transformers", "tokenizers", "safetensors",
                 "PIL", "yaml"):
        try:
            mod = __import__(name)
            out[name] = getattr(mod, "__version__", "unknown")
        except Exception:
            out[name] = None
    return out


def read_manifest(layout: Layout) -> dict:
    try:
        with open(layout.manifest) as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def write_manifest(layout: Layout, manifest: dict):
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(layout.manifest, manifest)


def start_manifest(layout: Layout, cfg, *, completed_rounds: int, editor, grounding,
                   input_iteration: int, input_ply: str, dataset, cameras, device,
                   editor_load_s: float) -> dict:
    """The run's manifest.json, written at the start of every run: what was edited (the input
    model and its PLY's hash), how (instruction, editor, diffusion, seeds, RoI), with what
    (model files' hashes, package versions), and the committed rounds of earlier runs."""
    old = read_manifest(layout)
    models = old.get("models", {})
    manifest = {
        "instruction": cfg.instruction,
        "mode": cfg.mode,
        "editor": editor.describe(),
        "diffusion": {"steps": cfg.diffusion_steps, "guidance_scale": cfg.guidance_scale,
                      "image_guidance_scale": cfg.image_guidance_scale,
                      "size": cfg.diffusion_size},
        "seeds": {"seed": cfg.seed, "round_seed": "seed + 1000 * round",
                  "diffusion_seed": "round_seed + view"},
        "input_model": {"path": os.path.abspath(cfg.model_path),
                        "iteration": input_iteration,
                        "ply": os.path.abspath(input_ply),
                        "ply_sha256": sha256_file(input_ply),
                        "source_path": dataset.source_path,
                        "images": dataset.images},
        "views": {str(i): c.image_name for i, c in enumerate(cameras)},
        "roi": {"prompt": cfg.roi_prompt, "boxes": cfg.roi_box, "polygons": cfg.roi_polygon,
                "points": cfg.roi_points, "grounding": grounding},
        "models": {
            "pix2pix": (describe_model(cfg.pix2pix_model, models.get("pix2pix"))
                        if cfg.editor == "pix2pix" else None),
            "clip": describe_model(cfg.clip_model, models.get("clip")),
            "qwen": describe_model(cfg.qwen_model_path, models.get("qwen"))
            if cfg.roi_prompt else None,
        },
        "packages": package_versions(),
        "device": str(device),
        "editor_load_s": round(editor_load_s, 3),
        "rounds_planned": cfg.rounds,
        "round_iters": cfg.round_iters,
        "refine_iters": cfg.refine_iters,
        "created": old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # Only committed rounds: a round killed after its manifest update is not one.
        "rounds": [e for e in old.get("rounds", []) if e["round"] <= completed_rounds],
    }
    write_manifest(layout, manifest)
    return manifest


def manifest_round(cfg, r: int, seed: int, views, diffusion_seeds: dict, first: int, last: int,
                   gaussians: int, timings: dict) -> dict:
    """Round r's entry in manifest.json: its seeds, views, iterations and size."""
    return {"round": r, "seed": seed, "views": views,
            "diffusion_seeds": {str(v): s for v, s in diffusion_seeds.items()},
            "iterations": {"first": first, "last": last,
                           "optimisation": cfg.round_iters, "refine": cfg.refine_iters},
            "gaussians": gaussians, "timings_s": timings}


def replace_round(entries: list, entry: dict) -> list:
    """A per-round list (manifest or training state) with `entry` as its last round: entries
    of that round or later (a discarded branch, a round redone) are dropped."""
    return [e for e in entries if e["round"] < entry["round"]] + [entry]
