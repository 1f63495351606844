"""Depth regularisation on a shared capture, with and without `-d/--depths`; one markdown table.

Stand-in for a monocular depth network: the inverse depth rendered by a model already trained
on the capture (`--source_model`), through a random per-image affine map (scale 0.5-2,
offset 0-0.05: what a monocular network's arbitrary scale looks like), saved as the reference's
16-bit PNGs. `utils/make_depth_scale.py` then fits depth_params.json from the capture's SfM
points (juicebox_table has no 2D observations: the projection path). Both runs train from
`--random_init 100` for the same iterations and seed; reported: test PSNR (render.py +
metrics.py) and the depth error, mean |rendered inverse depth - s * map + t| over the test
views (and the train views), in COLMAP units of 1/depth.

    python bench/bench_depth.py --source_model bench_out/aa/noaa --out bench_out/depth \
        [--scene juicebox_table] [--iterations 3000] [--threads 1]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from argparse import Namespace

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SCENES = os.path.join(os.path.dirname(ROOT), "shared", "scenes")


def load_model(model_dir, source, images, depths="", eval_split=True):
    from scene import Scene
    from scene.gaussian_model import GaussianModel
    ds = Namespace(source_path=source, model_path=model_dir, images=images, depths=depths,
                   resolution=-1, white_background=False, data_device="cpu", eval=eval_split,
                   llffhold=8, random_init=0, seed=0, sh_degree=3)
    g = GaussianModel(3, device=torch.device("cpu"))
    return Scene(ds, g, load_iteration=-1, quiet=True), g


@torch.no_grad()
def make_depth_capture(scene_dir, source_model, out_scene, images, seed=0):
    """Symlinked images, copied sparse model, and depths/ rendered from `source_model`."""
    from gaussian_renderer import render
    from scene.depth_maps import save_invdepth_png
    os.makedirs(os.path.join(out_scene, "sparse", "0"), exist_ok=True)
    for name in os.listdir(scene_dir):
        if name.startswith("images") and not os.path.exists(os.path.join(out_scene, name)):
            os.symlink(os.path.join(scene_dir, name), os.path.join(out_scene, name))
    src_model = os.path.join(scene_dir, "sparse", "0")
    for f in os.listdir(src_model):
        if f.endswith((".bin", ".txt")):
            shutil.copy(os.path.join(src_model, f), os.path.join(out_scene, "sparse", "0", f))
    scene, g = load_model(source_model, scene_dir, images, eval_split=False)
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out_scene, "depths"), exist_ok=True)
    pipe = Namespace(backend="auto", mult=0.5, antialiasing=False)
    bg = torch.zeros(3)
    for cam in scene.getTrainCameras():
        inv = render(cam, g, pipe, bg)["invdepth"][0].numpy()
        a, b = rng.uniform(0.5, 2.0), rng.uniform(0.0, 0.05)
        save_invdepth_png(os.path.join(out_scene, "depths", cam.image_name + ".png"),
                          np.clip(a * inv + b, 0.0, 0.999))


@torch.no_grad()
def depth_error(model_dir, scene, images):
    """Mean |rendered inverse depth - mapped depth map| over reliable test and train views."""
    from gaussian_renderer import render
    sc, g = load_model(model_dir, scene, images, depths="depths")
    pipe = Namespace(backend="auto", mult=0.5, antialiasing=False)
    out = {}
    for split, cams in (("test", sc.getTestCameras()), ("train", sc.getTrainCameras())):
        errs = [float((render(c, g, pipe, torch.zeros(3))["invdepth"] - c.invdepthmap).abs().mean())
                for c in cams if c.depth_reliable]
        out[split] = (float(np.mean(errs)), len(errs))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source_model", required=True, help="trained model giving the maps")
    ap.add_argument("--out", default="bench_out/depth")
    ap.add_argument("--scene", default="juicebox_table")
    ap.add_argument("--scenes_dir", default=SCENES)
    ap.add_argument("--images", default="images_2")
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    scene = os.path.join(out, "scene")
    py, env = sys.executable, dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if not os.path.isfile(os.path.join(scene, "sparse", "0", "depth_params.json")):
        make_depth_capture(os.path.join(args.scenes_dir, args.scene), args.source_model, scene,
                           args.images, args.seed)
        subprocess.run([py, "utils/make_depth_scale.py", "--base_dir", scene, "--depths_dir",
                        os.path.join(scene, "depths"), "--quiet"], check=True, cwd=ROOT, env=env)
    runs = {"without -d": [], "with -d depths": ["-d", "depths"]}
    procs = {}
    for name, extra in runs.items():
        m = os.path.join(out, "depth" if extra else "plain")
        cmd = [py, "train.py", "-s", scene, "-m", m, "-i", args.images, "--eval",
               "--random_init", "100", "--iterations", str(args.iterations), "--test_iterations",
               str(args.iterations), "--save_iterations", str(args.iterations), "--seed",
               str(args.seed), "--quiet", "--no_tensorboard", *extra]
        if not os.path.isfile(os.path.join(m, "results.json")):
            log = open(m + ".log", "w")
            procs[name] = (m, subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                               stderr=subprocess.STDOUT))
        else:
            procs[name] = (m, None)
    rows = []
    for name, (m, p) in procs.items():
        if p is not None and p.wait() != 0:
            sys.exit(f"training {name} failed: see {m}.log")
        if not os.path.isfile(os.path.join(m, "results.json")):
            subprocess.run([py, "render.py", "-m", m, "--skip_train", "--quiet"], check=True,
                           cwd=ROOT, env=env)
            subprocess.run([py, "metrics.py", "-m", m], check=True, cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL)
        res = json.load(open(os.path.join(m, "results.json")))[f"ours_{args.iterations}"]
        err = depth_error(m, scene, args.images)
        rows.append((name, res["PSNR"], res["SSIM"], err["test"], err["train"]))
    print(f"| {args.scene}, --random_init 100, {args.iterations} it | test PSNR | SSIM | "
          "depth error test (views) | depth error train (views) |")
    print("|---|---|---|---|---|")
    for name, psnr, ssim, te, tr in rows:
        print(f"| {name} | {psnr:.2f} | {ssim:.4f} | {te[0]:.4f} ({te[1]}) | {tr[0]:.4f} ({tr[1]}) |")


if __name__ == "__main__":
    main()
