"""Worst relative gradient error of each float32 backend against float64 central finite
differences on the hard cases of bench/raster_cases.hard_cases (needles, aspect 1000,
near plane, frustum edge, off-centre principal point). Prints one markdown table.

    python bench/bench_grad_accuracy.py [--cases needle_40deg ...] [--backends torch cpp naive]

Errors are norm-relative per parameter over a case's Gaussians (bench/grad_fd.rel_error).
`naive` is plain float32 autograd of the textbook formulas (Sigma = M M^T in float32, then
T Sigma T^T and a c - b^2), fed through the torch backend's cov3D_precomp path: the
yardstick of what float32 autograd alone reaches. `torch64` checks the harness itself.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("GS_COMPILE", "0")  # tiny images: compiling costs more than it saves

import torch  # noqa: E402

from bench.grad_fd import PARAMS, analytic_grads, fd_grads, rel_error  # noqa: E402
from bench.raster_cases import hard_cases  # noqa: E402


def naive_autograd(settings, means2D, means3D, scales, rotations, opacities, colors_precomp):
    """Textbook float32 autograd: covariance from scales/rotations, then the precomp path."""
    from gaussian_renderer import torch_backend
    M = torch_backend.quat_to_rotmat(rotations) * scales[:, None, :]
    S = M @ M.transpose(1, 2)
    cov6 = S[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    return torch_backend.rasterize(settings, means3D, means2D, opacities,
                                   colors_precomp=colors_precomp, cov3D_precomp=cov6)


def backends(names):
    from gaussian_renderer import cpp_backend, torch_backend
    table = {"torch": (torch_backend.rasterize, torch.float32),
             "cpp": (cpp_backend.rasterize, torch.float32),
             "naive": (naive_autograd, torch.float32),
             "torch64": (torch_backend.rasterize, torch.float64)}
    if "cpp" in names and not cpp_backend.is_available():
        print("cpp backend unavailable here: skipped", file=sys.stderr)
        names = [n for n in names if n != "cpp"]
    return {n: table[n] for n in names}


def errors(case, fd, fn, dtype):
    g = analytic_grads(fn, case, dtype)
    return {k: rel_error(g[k], fd[k]) for k in PARAMS}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", default=None)
    ap.add_argument("--backends", nargs="+", default=["torch", "cpp", "naive", "torch64"])
    args = ap.parse_args(argv)
    cases = [c for c in hard_cases() if args.cases is None or c[0] in args.cases]
    bk = backends(args.backends)
    short = {"means3D": "means", "scales": "scales", "rotations": "rot", "opacities": "opac",
             "colors_precomp": "colour"}
    print("| case | backend | " + " | ".join(short[k] for k in PARAMS) + " | worst |")
    print("|---|---|" + "---|" * (len(PARAMS) + 1))
    worst = {n: 0.0 for n in bk}
    for case in cases:
        fd = fd_grads(case)
        for name, (fn, dtype) in bk.items():
            e = errors(case, fd, fn, dtype)
            worst[name] = max(worst[name], max(e.values()))
            print(f"| {case[0]} | {name} | " + " | ".join(f"{e[k]:.1e}" for k in PARAMS)
                  + f" | {max(e.values()):.1e} |", flush=True)
    print("\nworst over all cases: " + ", ".join(f"{n} {w:.1e}" for n, w in worst.items()))


if __name__ == "__main__":
    main()
