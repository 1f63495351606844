"""Image metrics of rendered views, as the reference 3DGS metrics.py.

    python metrics.py -m <model> [<model> ...] [--split test|train] [--iteration N]

For every `<model>/<split>/ours_<N>/` (written by render.py) it compares `renders/*.png`
with `gt/*.png` of the same names: PSNR, SSIM and LPIPS-VGG (when the optional `lpips`
package works; otherwise one line says why and PSNR/SSIM are still written). Results go to
`<model>/results.json` ({"ours_N": {"SSIM", "PSNR", "LPIPS"}}) and `<model>/per_view.json`
({"ours_N": {"SSIM": {view: value}, ...}}); entries for other iterations already in those
files are kept. PSNR of a view identical to its ground truth is +inf, written as the JSON
token `Infinity` (Python's json reads it back), as the reference does. Where render.py also
wrote `alpha/*.png`, "Coverage" is the fraction of pixels with accumulated opacity > 0.5 (how
much of each view the model explains at all; telling for sparse or random starts).
"""
import json
import os
import re
import sys

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from arguments.ranges import CliParser, iteration
from utils.device import resolve_device
from utils.errors import UserError, user_errors_exit
from utils.image_utils import psnr
from utils.io_utils import atomic_write_json
from utils.loss_utils import ssim

PROG = "metrics.py"
COVERAGE_ALPHA = 0.5
_METHOD_DIR = re.compile(r"^ours_(\d+)$")


def find_methods(model_path: str, split: str = "test", iteration=None):
    """[(name, folder)] of `<model>/<split>/ours_N` folders, by increasing N."""
    if not os.path.isdir(model_path):
        raise UserError(f"model folder not found: {model_path}")
    split_dir = os.path.join(model_path, split)
    found = []
    if os.path.isdir(split_dir):
        for name in os.listdir(split_dir):
            m = _METHOD_DIR.match(name)
            if m and os.path.isdir(os.path.join(split_dir, name)):
                found.append((int(m.group(1)), name))
    if not found:
        raise UserError(f"no {os.path.join(split_dir, 'ours_<N>')} folder found "
                        f"(run render.py on {model_path} first)")
    found.sort()
    if iteration is not None:
        found = [f for f in found if f[0] == iteration]
        if not found:
            raise UserError(f"{os.path.join(split_dir, f'ours_{iteration}')} not found")
    return [(name, os.path.join(split_dir, name)) for _, name in found]


def pair_views(method_dir: str):
    """Sorted PNG names present in both renders/ and gt/; any mismatch is a UserError."""
    listed = {}
    for sub in ("renders", "gt"):
        folder = os.path.join(method_dir, sub)
        if not os.path.isdir(folder):
            raise UserError(f"missing folder {folder}")
        listed[sub] = {n for n in os.listdir(folder) if n.lower().endswith(".png")}
    renders, gts = listed["renders"], listed["gt"]
    if not renders:
        raise UserError(f"no PNG images in {os.path.join(method_dir, 'renders')}")
    if renders != gts:
        only_r, only_g = sorted(renders - gts), sorted(gts - renders)
        where, name = ("gt", only_r[0]) if only_r else ("renders", only_g[0])
        raise UserError(f"{os.path.join(method_dir, where)} has no {name} "
                        f"({len(renders)} renders vs {len(gts)} gt images in {method_dir})")
    return sorted(renders)


def read_image(path: str) -> torch.Tensor:
    """(3,H,W) float32 in [0,1]; alpha is dropped as in the reference, grey expanded to RGB."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode.startswith("I"):  # 16/32-bit greyscale PNG
                arr = np.asarray(im, dtype=np.float32) / 65535.0
                arr = np.repeat(arr[..., None], 3, axis=2)
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except UnidentifiedImageError as e:
        raise UserError(f"cannot read image {path}: not a valid image file") from e
    except (OSError, ValueError) as e:  # truncated file, permissions, odd PNG mode
        raise UserError(f"cannot read image {path}: {getattr(e, 'strerror', None) or e}") from e
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)


def evaluate_method(method_dir: str, lpips_fn=None, device="cpu", progress: bool = True):
    """Metrics of one `ours_N` folder: (means, per_view), where means is
    {"SSIM", "PSNR"[, "LPIPS"]} -> float and per_view the same keys -> {view: float}."""
    names = pair_views(method_dir)
    per_view = {"SSIM": {}, "PSNR": {}}
    if lpips_fn is not None:
        per_view["LPIPS"] = {}
    # The context manager closes the bar on errors too, so a user error starts on a new line.
    with torch.no_grad(), tqdm(names, desc="Metric evaluation progress", disable=not progress) as bar:
        for name in bar:
            r_path = os.path.join(method_dir, "renders", name)
            g_path = os.path.join(method_dir, "gt", name)
            render, gt = read_image(r_path), read_image(g_path)
            if render.shape != gt.shape:
                raise UserError(f"size mismatch: {r_path} is {render.shape[2]}x{render.shape[1]} "
                                f"but {g_path} is {gt.shape[2]}x{gt.shape[1]}")
            render, gt = render.to(device).unsqueeze(0), gt.to(device).unsqueeze(0)
            per_view["SSIM"][name] = float(ssim(render, gt))
            per_view["PSNR"][name] = float(psnr(render, gt)[0])
            if lpips_fn is not None:
                per_view["LPIPS"][name] = float(lpips_fn(render, gt)[0])
            a_path = os.path.join(method_dir, "alpha", name)
            if os.path.isfile(a_path):
                alpha = np.asarray(Image.open(a_path).convert("L"), dtype=np.float32) / 255.0
                per_view.setdefault("Coverage", {})[name] = float((alpha > COVERAGE_ALPHA).mean())
    means = {k: float(np.mean(list(v.values()))) for k, v in per_view.items()}
    return means, per_view


def _load_existing(path: str) -> dict:
    """Earlier results to merge into; anything unreadable is simply replaced."""
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def evaluate_model(model_path: str, split: str = "test", lpips_fn=None, iteration=None,
                   device="cpu", write: bool = True, progress: bool = True) -> dict:
    """Evaluate every `<model>/<split>/ours_N` (or only ours_<iteration>).

    Returns {"ours_N": {"SSIM": mean, "PSNR": mean[, "LPIPS": mean]}} for the folders
    evaluated; with write=True also merges them into <model>/results.json and per_view.json."""
    methods = find_methods(model_path, split, iteration)
    for _, method_dir in methods:  # catch pairing errors before any long computation
        pair_views(method_dir)
    results, per_view = {}, {}
    for name, method_dir in methods:
        if progress:
            print(f"Method: {name}")
        results[name], per_view[name] = evaluate_method(method_dir, lpips_fn, device, progress)
        if progress:
            for key in ("SSIM", "PSNR", "LPIPS", "Coverage"):
                if key in results[name]:
                    print(f"  {key:<5}: {results[name][key]:>12.7f}")
            print("")
    if write:
        for fname, new in (("results.json", results), ("per_view.json", per_view)):
            path = os.path.join(model_path, fname)
            merged = _load_existing(path)
            merged.update(new)
            atomic_write_json(path, merged)
    return results


def _trained_with_exposure(model_path: str) -> bool:
    from arguments import read_cfg_args
    return bool(read_cfg_args(model_path).get("train_test_exp", False))


def build_parser():
    parser = CliParser(prog=PROG, description="PSNR / SSIM / LPIPS of rendered views.")
    parser.add_argument("--model_paths", "-m", required=True, nargs="+", type=str,
                        help="trained model folders, each holding <split>/ours_<N>/{renders,gt}")
    parser.add_argument("--split", choices=("test", "train"), default="test",
                        help="which render.py output to evaluate (default: test)")
    parser.add_argument("--iteration", type=iteration(), default=None,
                        help="evaluate only ours_<N> (default: every ours_<N> found)")
    parser.add_argument("--no_lpips", action="store_true", help="skip LPIPS")
    parser.add_argument("--lpips_normalize", action="store_true",
                        help="map images to [-1,1] before LPIPS as the lpips package documents "
                             "(default feeds [0,1] like the reference metrics.py, so numbers "
                             "match published 3DGS tables)")
    parser.add_argument("--device", default=None, help="torch device (default: CUDA when available, else cpu)")
    return parser


def main(argv=None):
    parser = build_parser()
    with user_errors_exit(PROG):
        args = parser.parse_args(argv)
        device = resolve_device(args.device)
        # Validate every model first: a typo in the last path should not cost a long run.
        for model_path in args.model_paths:
            for _, method_dir in find_methods(model_path, args.split, args.iteration):
                pair_views(method_dir)

        lpips_fn = None
        if not args.no_lpips:
            from utils.lpips_utils import try_load_lpips
            lpips_fn, reason = try_load_lpips("vgg", device, normalize=args.lpips_normalize)
            if lpips_fn is None:
                print(f"{PROG}: LPIPS unavailable, reporting PSNR and SSIM only: {reason}", flush=True)

        for model_path in args.model_paths:
            print(f"Scene: {model_path}")
            if _trained_with_exposure(model_path):
                from scene.exposure import PROTOCOL_NOTE
                print(PROTOCOL_NOTE)
            evaluate_model(model_path, args.split, lpips_fn, args.iteration, device)


if __name__ == "__main__":
    main(sys.argv[1:])
