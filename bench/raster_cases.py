"""Shared synthetic rasterization cases for renderer tests (torch backend, CUDA parity)."""
import math

import torch

from gaussian_renderer.settings import RasterSettings


def look_at_settings(W=24, H=18, fovx=1.0, eye=(0.0, 0.0, -4.0), target=(0.0, 0.0, 0.0),
                     sh_degree=0, mult=1.0, bg=(0.1, 0.2, 0.3), cx_shift=0.0, cy_shift=0.0,
                     antialiasing=False, dtype=torch.float32, device="cpu"):
    """Pinhole camera at `eye` looking at `target`; `cx_shift`, `cy_shift` move the principal
    point in NDC units (2 cx / W - 1, as utils/graphics_utils.getProjectionMatrixShift)."""
    eye_t = torch.tensor(eye, dtype=torch.float64)
    fwd = torch.tensor(target, dtype=torch.float64) - eye_t
    fwd = fwd / fwd.norm()
    up = torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
    right = torch.linalg.cross(up, fwd)
    if right.norm() < 1e-6:
        right = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    right = right / right.norm()
    down = torch.linalg.cross(fwd, right)
    R = torch.stack([right, down, fwd])            # world -> camera rows
    V = torch.eye(4, dtype=torch.float64)
    V[:3, :3] = R
    V[:3, 3] = -R @ eye_t
    fovy = 2 * math.atan(math.tan(fovx / 2) * H / W)
    n, f = 0.01, 100.0
    tx, ty = math.tan(fovx / 2), math.tan(fovy / 2)
    P = torch.zeros(4, 4, dtype=torch.float64)
    P[0, 0] = 1 / tx
    P[1, 1] = 1 / ty
    P[0, 2] = cx_shift  # off-centre principal point, in NDC units
    P[1, 2] = cy_shift
    P[2, 2] = f / (f - n)
    P[2, 3] = -f * n / (f - n)
    P[3, 2] = 1.0
    view = V.T.contiguous()
    proj = (V.T @ P.T).contiguous()
    return RasterSettings(
        image_height=H, image_width=W, tanfovx=tx, tanfovy=ty,
        bg=torch.tensor(bg, dtype=dtype, device=device), scale_modifier=1.0,
        viewmatrix=view.to(dtype=dtype, device=device), projmatrix=proj.to(dtype=dtype, device=device),
        sh_degree=sh_degree, campos=eye_t.to(dtype=dtype, device=device), mult=mult,
        antialiasing=antialiasing)


def random_gaussians(n, seed=0, sh_degree=0, spread=1.2, scale=(-2.5, -1.0), dtype=torch.float32,
                     device="cpu"):
    g = torch.Generator().manual_seed(seed)
    K = (sh_degree + 1) ** 2
    means = (torch.rand(n, 3, generator=g) * 2 - 1) * spread
    scales = torch.exp(torch.rand(n, 3, generator=g) * (scale[1] - scale[0]) + scale[0])
    q = torch.randn(n, 4, generator=g)
    q = q / q.norm(dim=1, keepdim=True)
    opac = torch.rand(n, 1, generator=g) * 0.9 + 0.05
    shs = torch.randn(n, K, 3, generator=g) * 0.5
    out = dict(means3D=means, scales=scales, rotations=q, opacities=opac, shs=shs)
    return {k: v.to(dtype=dtype, device=device) for k, v in out.items()}


def rasterizer_inputs(g, gen, precomp_colors=False, precomp_cov=False):
    """Keyword inputs of a rasterize call for Gaussians `g`: SH or random precomputed colours,
    scales/rotations or random precomputed covariances (drawn from `gen`)."""
    n = g["means3D"].shape[0]
    kw = {}
    if precomp_colors:
        kw["colors_precomp"] = torch.rand(n, 3, generator=gen)
    else:
        kw["shs"] = g["shs"]
    if precomp_cov:
        L = torch.randn(n, 3, 3, generator=gen) * 0.15
        cov = L @ L.transpose(1, 2) + 0.01 * torch.eye(3)
        kw["cov3D_precomp"] = cov[:, [0, 0, 0, 1, 1, 2], [0, 1, 2, 1, 2, 2]]
    else:
        kw["scales"], kw["rotations"] = g["scales"], g["rotations"]
    return kw


def _quat_about(axis, angle):
    """Unit quaternion (w, x, y, z) rotating by `angle` radians about `axis`."""
    a = torch.tensor(axis, dtype=torch.float64)
    a = a / a.norm()
    return torch.cat([torch.tensor([math.cos(angle / 2)], dtype=torch.float64),
                      a * math.sin(angle / 2)])


def _gaussian_set(means, scales, quats, opacities, colours):
    f64 = dict(dtype=torch.float64)
    return dict(means3D=torch.tensor(means, **f64), scales=torch.tensor(scales, **f64),
                rotations=torch.stack(quats), opacities=torch.tensor(opacities, **f64)[:, None],
                colors_precomp=torch.tensor(colours, **f64))


def hard_cases():
    """Numerically hard Gaussian sets for gradient and parity checks: list of
    (name, settings kwargs for look_at_settings, float64 Gaussians dict with means3D, scales,
    rotations, opacities, colors_precomp). Convert with `.to(dtype)` per backend.

    Covers the needle of issue 18 (scales 3, 0.004, 0.003 rotated 40 deg in the image plane,
    2 units away, 64x48), needles in several orientations (in the image plane and tilted
    towards the camera), aspect ratios up to 1000 (edge-on and face-on discs), Gaussians just
    past the near plane, centres just outside the frustum, and an off-centre principal point
    (cx = 0.62 W, cy = 0.4 H) with Gaussians hugging the image edges.
    """
    cam = dict(W=64, H=48, eye=(0.0, 0.0, -2.0))
    z_axis = (0.0, 0.0, 1.0)
    cases = []
    cases.append(("needle_40deg", cam, _gaussian_set(
        [[0.0, 0.0, 0.0]], [[3.0, 0.004, 0.003]], [_quat_about(z_axis, math.radians(40))],
        [0.8], [[0.9, 0.4, 0.2]])))
    angles = [0, 30, 75, 90, 130, 165]
    cases.append(("needles_in_plane", cam, _gaussian_set(
        [[0.5 * (i % 3 - 1), 0.4 * (i // 3) - 0.2, 0.1 * i] for i in range(6)],
        [[0.8, 0.002, 0.0008]] * 6, [_quat_about(z_axis, math.radians(a)) for a in angles],
        [0.7, 0.9, 0.6, 0.95, 0.5, 0.85], [[0.2 + 0.1 * i, 0.9 - 0.1 * i, 0.5] for i in range(6)])))
    cases.append(("needles_tilted", cam, _gaussian_set(
        [[-0.4, 0.1, 0.0], [0.3, -0.2, 0.3], [0.0, 0.3, -0.5]],
        [[1.0, 0.003, 0.001], [0.6, 0.001, 0.002], [0.4, 0.0004, 0.0004]],
        [_quat_about((0.0, 1.0, 0.0), 1.1), _quat_about((1.0, 1.0, 0.3), 0.9),
         _quat_about((0.3, -1.0, 0.5), 2.0)],
        [0.9, 0.75, 0.6], [[0.9, 0.1, 0.3], [0.2, 0.8, 0.4], [0.5, 0.5, 0.9]])))
    cases.append(("discs_aspect_1000", cam, _gaussian_set(
        [[-0.4, 0.0, 0.0], [0.4, 0.0, 0.2], [0.0, 0.35, 0.4]],
        [[0.5, 0.5, 0.0005], [0.5, 0.4, 0.0005], [0.3, 0.0003, 0.3]],
        [_quat_about((0.0, 1.0, 0.0), 1.5), _quat_about((1.0, 0.0, 0.0), 0.2),
         _quat_about((0.2, 0.1, 1.0), 0.7)],
        [0.7, 0.6, 0.8], [[0.1, 0.6, 0.9], [0.9, 0.7, 0.1], [0.4, 0.2, 0.6]])))
    cases.append(("near_plane", dict(cam, eye=(0.0, 0.0, -1.0)), _gaussian_set(
        [[0.02, 0.01, -0.77], [-0.03, 0.02, -0.72], [0.05, -0.04, -0.6]],
        [[0.03, 0.01, 0.02], [0.2, 0.001, 0.004], [0.01, 0.05, 0.002]],
        [_quat_about((1.0, 2.0, 3.0), 0.5), _quat_about(z_axis, 1.0),
         _quat_about((0.0, 1.0, 1.0), 2.5)],
        [0.6, 0.5, 0.7], [[0.8, 0.3, 0.3], [0.3, 0.8, 0.3], [0.3, 0.3, 0.8]])))
    # Centres past the left/right/top/bottom edges (|x/z| between 1.0 and 1.3 tan(fov/2)).
    tx = math.tan(0.5)
    ty = tx * 48 / 64
    edge = [[-1.12 * tx * 2, 0.1, 0.0], [1.2 * tx * 2.2, -0.1, 0.2], [0.2, -1.15 * ty * 2, 0.0],
            [-0.1, 1.25 * ty * 2.1, 0.1]]
    cases.append(("frustum_edge", cam, _gaussian_set(
        edge, [[0.15, 0.02, 0.01], [0.5, 0.002, 0.004], [0.1, 0.1, 0.01], [0.3, 0.003, 0.3]],
        [_quat_about((0.0, 0.0, 1.0), 0.3), _quat_about((0.0, 1.0, 1.0), 1.2),
         _quat_about((1.0, 0.0, 0.0), 0.4), _quat_about((1.0, 1.0, 1.0), 2.2)],
        [0.8, 0.9, 0.7, 0.6], [[0.9, 0.9, 0.2], [0.2, 0.9, 0.9], [0.9, 0.2, 0.9], [0.5, 0.5, 0.5]])))
    # cx = 0.62 W, cy = 0.4 H. This camera has x_cam = -x_world, y_cam = -y_world: the left
    # edge is at x/z = -1.24 tan(fovx/2) (world x > 0), the bottom at y/z = 1.2 tan(fovy/2).
    off = dict(cam, cx_shift=0.24, cy_shift=-0.2)
    cases.append(("off_centre_edges", off, _gaussian_set(
        [[1.27 * tx * 2, 0.0, 0.0], [1.4 * tx * 2, 0.3, 0.0], [-0.78 * tx * 2, -0.2, 0.0],
         [0.1, 0.83 * ty * 2, 0.0], [-0.2, -1.35 * ty * 2, 0.0]],
        [[0.12, 0.03, 0.02], [0.6, 0.003, 0.002], [0.1, 0.1, 0.05], [0.08, 0.02, 0.08],
         [0.4, 0.004, 0.002]],
        [_quat_about(z_axis, 0.2), _quat_about(z_axis, 1.3), _quat_about((1.0, 0.0, 0.0), 0.5),
         _quat_about((0.0, 1.0, 0.0), 0.7), _quat_about(z_axis, 2.8)],
        [0.9, 0.8, 0.7, 0.9, 0.8], [[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.1, 0.9],
                                    [0.9, 0.9, 0.1], [0.1, 0.9, 0.9]])))
    return cases
