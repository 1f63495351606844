"""Renderer benchmark: forward and forward+backward, median of several runs.

Scene: like a fitted model, N Gaussians lie on surfaces seen by the camera (a ground plane, a
sphere and a back wall, sampled uniformly by area inside the view frustum). Each gets the
standard initial scale (root mean squared distance to its 3 nearest neighbours, x0.8, with
+-30% per-axis jitter), a random rotation, opacity U(0.2, 1) and SH degree 3. So denser models
have smaller splats, as in training; the same 3D scene is rendered at every resolution.

    python bench/bench_renderer.py [--backends cpp,torch] [--threads 2] [--repeats 7]
        [--sizes 10000,50000,200000] [--resolutions 200x133,400x266]
    python bench/bench_renderer.py --backends cuda --sizes 100000,1000000,3000000 \
        --resolutions 1280x720,1920x1080        # the CUDA extension, on the GPU
"""
import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from gaussian_renderer import cpp_backend, cuda_backend, torch_backend  # noqa: E402
from bench.raster_cases import look_at_settings  # noqa: E402



def make_scene(n, seed=0, fovx=1.2, aspect=133 / 200):
    g = torch.Generator().manual_seed(seed)
    t = math.tan(fovx / 2)
    pts = []
    while sum(p.shape[0] for p in pts) < n:
        m = 4 * n
        kind = torch.randint(0, 3, (m,), generator=g)
        a, b = torch.rand(m, generator=g), torch.rand(m, generator=g)
        ground = torch.stack([(a * 2 - 1) * 8, torch.full_like(a, 1.5), b * 8 + 1], 1)
        theta, phi = a * 2 * math.pi, torch.acos(1 - 2 * b)
        sphere = torch.stack([torch.sin(phi) * torch.cos(theta), torch.cos(phi),
                              torch.sin(phi) * torch.sin(theta)], 1) * 1.5 + torch.tensor([0, 0, 5.0])
        wall = torch.stack([(a * 2 - 1) * 8, (b * 2 - 1) * 6, torch.full_like(a, 9.0)], 1)
        p = torch.where((kind == 0)[:, None], ground, torch.where((kind == 1)[:, None], sphere, wall))
        z = p[:, 2]
        inside = (z > 0.5) & (p[:, 0].abs() < t * z) & (p[:, 1].abs() < t * aspect * z)
        pts.append(p[inside])
    means = torch.cat(pts)[:n]
    from scipy.spatial import cKDTree
    d, _ = cKDTree(means.numpy()).query(means.numpy(), k=4)
    base = torch.from_numpy((d[:, 1:] ** 2).mean(1) ** 0.5).float() * 0.8
    scales = base[:, None] * torch.exp((torch.rand(n, 3, generator=g) * 2 - 1) * 0.3)
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    opac = torch.rand(n, 1, generator=g) * 0.8 + 0.2
    shs = torch.randn(n, 16, 3, generator=g) * 0.3
    return dict(means3D=means, scales=scales, rotations=q, opacities=opac, shs=shs), fovx


def time_call(fn, repeats, sync=lambda: None):
    fn()  # warm-up
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--sizes", default="10000,50000,200000")
    ap.add_argument("--resolutions", default="200x133,400x266")
    ap.add_argument("--backends", default="cpp,torch",
                    help="comma list of cpp (tile-based C++), torch (pure PyTorch, on the CPU) "
                         "and cuda (the CUDA extension, on the GPU)")
    args = ap.parse_args()
    backends = {"cpp": cpp_backend, "torch": torch_backend, "cuda": cuda_backend}
    names = args.backends.split(",")
    for b in names:
        if b not in backends:
            sys.exit(f"--backends: unknown backend {b!r} (cpp, torch, cuda)")
        if b == "cpp" and not cpp_backend.is_available():
            sys.exit("--backends cpp: the C++ extension could not be built (see the warning above)")
        if b == "cuda" and not (torch.cuda.is_available() and cuda_backend.is_available()):
            sys.exit("--backends cuda: needs a CUDA device and diff_gaussian_rasterization "
                     "(pip install --no-build-isolation ./submodules/diff-gaussian-rasterization)")
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if "cuda" in names:
        print(f"GPU {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}")
    print("| backend | N | resolution | pairs | forward (s) | forward+backward (s) |")
    print("|---|---|---|---|---|---|")
    for n in [int(x) for x in args.sizes.split(",")]:
        scene, fovx = make_scene(n)
        for res in args.resolutions.split(","):
            W, H = (int(v) for v in res.split("x"))
            s = look_at_settings(W=W, H=H, fovx=fovx, eye=(0, 0, 0), target=(0, 0, 1), sh_degree=3)
            # look_at_settings derives fovy from the aspect ratio, matching make_scene's frustum.
            leaves = {k: v.clone().requires_grad_(True) for k, v in scene.items()}
            pairs = "-"  # (pixel, Gaussian) pairs: too many to list on the CPU at GPU sizes
            if names != ["cuda"]:
                with torch.no_grad():
                    pre = torch_backend._preprocess(s, leaves["means3D"], leaves["opacities"],
                                                    leaves["shs"], None, leaves["scales"],
                                                    leaves["rotations"], None)
                    pairs = torch_backend._pairs(pre, s)[0].numel()
            for b in names:
                rasterize = backends[b].rasterize
                dev = "cuda" if b == "cuda" else "cpu"
                sb = look_at_settings(W=W, H=H, fovx=fovx, eye=(0, 0, 0), target=(0, 0, 1),
                                      sh_degree=3, device=dev)
                lb = {k: v.detach().to(dev).requires_grad_(True) for k, v in leaves.items()}
                sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)

                def fwd():
                    with torch.no_grad():
                        return rasterize(sb, means2D=torch.zeros(n, 4, device=dev), **lb)

                def fwd_bwd():
                    vs = torch.zeros(n, 4, device=dev, requires_grad=True)
                    out = rasterize(sb, means2D=vs, **lb)
                    (out.color.sum() + out.depth.sum() * 0.01).backward()
                    for v in lb.values():
                        v.grad = None

                tf = time_call(fwd, args.repeats, sync)
                tfb = time_call(fwd_bwd, args.repeats, sync)
                print(f"| {b} | {n} | {W}x{H} | {pairs} | {tf:.4f} | {tfb:.4f} |", flush=True)

if __name__ == "__main__":
    main()
