"""Brute-force float64 reference rasterizer: the test oracle for both backends.

Written independently of torch_backend: one Gaussian at a time over every pixel, exactly the
sequential front-to-back loop of docs/RASTERIZER.md, with all gradients from autograd. The
per-pixel absolute gradient comes from a per-(pixel, Gaussian) perturbation of the projected
mean. Slow: meant for small images and tens of Gaussians.
"""
import math

import torch

from gaussian_renderer.settings import frustum_limits
from utils.sh_utils import eval_sh


def _rot(q):
    w, x, y, z = q
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)]),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)]),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]),
    ])


def reference_rasterize(settings, means3D, opacities, shs=None, colors_precomp=None,
                        scales=None, rotations=None, cov3D_precomp=None, metric_map=None,
                        clamp=True):
    """Returns dict(color, depth, invdepth, alpha, radii, counts, delta) where `delta`
    (2,H*W,N) is the per-pixel perturbation leaf whose .grad gives each pixel's screen-space
    contribution. clamp=False: the EWA Jacobian at the true x/z, y/z (no frustum clamp)."""
    s = settings
    H, W = s.image_height, s.image_width
    N = means3D.shape[0]
    f64 = dict(dtype=torch.float64, device=means3D.device)
    view = s.viewmatrix.to(**f64).T   # column convention: p_view = view @ [p,1]
    proj = s.projmatrix.to(**f64).T
    fx, fy = W / (2 * s.tanfovx), H / (2 * s.tanfovy)
    ys, xs = torch.meshgrid(torch.arange(H, **f64), torch.arange(W, **f64), indexing="ij")
    xs, ys = xs.reshape(-1), ys.reshape(-1)
    delta = torch.zeros(2, H * W, max(N, 1), **f64, requires_grad=True)

    lim = frustum_limits(s)
    gauss = []
    for i in range(N):
        ph = torch.cat([means3D[i].double(), torch.ones(1, **f64)])
        pv = view @ ph
        if pv[2] <= 0.2:
            continue
        pc = proj @ ph
        ndc = pc[:3] / (pc[3] + 1e-7)
        u = ((ndc[0] + 1) * W - 1) / 2
        v = ((ndc[1] + 1) * H - 1) / 2
        if cov3D_precomp is not None:
            c6 = cov3D_precomp[i].double()
            sig = torch.stack([c6[[0, 1, 2]], c6[[1, 3, 4]], c6[[2, 4, 5]]])
        else:
            R = _rot(rotations[i].double())
            S = torch.diag(s.scale_modifier * scales[i].double())
            sig = R @ S @ S @ R.T
        tx, ty = pv[0], pv[1]
        if clamp:
            tx = torch.clamp(pv[0] / pv[2], lim[0], lim[1]) * pv[2]
            ty = torch.clamp(pv[1] / pv[2], lim[2], lim[3]) * pv[2]
        z = pv[2]
        Jm = torch.stack([torch.stack([fx / z, z * 0, -fx * tx / z ** 2]),
                          torch.stack([z * 0, fy / z, -fy * ty / z ** 2])])
        Wr = view[:3, :3]
        cov = Jm @ Wr @ sig @ Wr.T @ Jm.T + 0.3 * torch.eye(2, **f64)
        det = cov[0, 0] * cov[1, 1] - cov[0, 1] ** 2
        if det <= 0:
            continue
        inv = torch.linalg.inv(cov)
        o = opacities[i, 0].double()
        if getattr(s, "antialiasing", False):  # 2D mip filter: det ratio before/after dilation
            c0 = cov - 0.3 * torch.eye(2, **f64)
            ratio = (c0[0, 0] * c0[1, 1] - c0[0, 1] ** 2) / det
            o = o * torch.sqrt(torch.clamp_min(ratio, 0.000025))
        o_f = float(o.detach())
        if o_f <= 1 / 255:
            continue
        t = min(s.mult, 1.0) * 2 * math.log(255 * o_f)
        # Bounds and radius are plain numbers: read them from detached values.
        cd, u_f, v_f = cov.detach(), float(u.detach()), float(v.detach())
        ex, ey = math.sqrt(t * float(cd[0, 0])), math.sqrt(t * float(cd[1, 1]))
        x0, x1 = max(0, math.ceil(u_f - ex)), min(W - 1, math.floor(u_f + ex))
        y0, y1 = max(0, math.ceil(v_f - ey)), min(H - 1, math.floor(v_f + ey))
        if x0 > x1 or y0 > y1:
            continue
        mid = 0.5 * float(cd[0, 0] + cd[1, 1])
        radius = math.ceil(3 * math.sqrt(mid + math.sqrt(max(0.1, mid * mid - float(det.detach())))))
        if colors_precomp is not None:
            col = colors_precomp[i].double()
        else:
            d = means3D[i].double() - s.campos.double()
            d = d / torch.linalg.norm(d)
            col = torch.clamp_min(eval_sh(s.sh_degree, shs[i].double().T[None], d[None])[0] + 0.5,
                                  0.0)
        gauss.append((float(z.detach()), i, u, v, inv, o, o_f, col, z, radius))

    gauss.sort(key=lambda g: (g[0], g[1]))
    T = torch.ones(H * W, **f64)
    C = torch.zeros(3, H * W, **f64)
    D = torch.zeros(H * W, **f64)
    ID = torch.zeros(H * W, **f64)
    done = torch.zeros(H * W, dtype=torch.bool, device=means3D.device)
    radii = torch.zeros(N, dtype=torch.int32)
    counts = torch.zeros(N, dtype=torch.int32)
    mm = metric_map.reshape(-1).bool().cpu() if metric_map is not None else None
    for _, i, u, v, inv, o, o_f, col, z, radius in gauss:
        radii[i] = radius
        dx = (u + delta[0, :, i]) - xs
        dy = (v + delta[1, :, i]) - ys
        q = inv[0, 0] * dx * dx + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy * dy
        raw = o * torch.exp(-0.5 * q)
        a = torch.minimum(raw, torch.full_like(raw, 0.99))
        q_ok = q.detach() <= s.mult * 2 * math.log(255 * o_f)
        active = (~done) & q_ok & (a.detach() >= 1 / 255)
        test_T = T * (1 - a)
        stop = active & (test_T.detach() < 1e-4)
        done = done | stop
        use = active & ~stop
        wgt = torch.where(use, a * T, torch.zeros_like(a))
        C = C + col[:, None] * wgt[None]
        D = D + z * wgt
        ID = ID + wgt / z
        T = torch.where(use, test_T, T)
        if mm is not None:
            counts[i] += int((use.cpu() & mm).sum())
    color = C + T[None] * s.bg.double()[:, None]
    return dict(color=color.reshape(3, H, W), depth=D.reshape(1, H, W),
                invdepth=ID.reshape(1, H, W),
                alpha=(1 - T).reshape(1, H, W), radii=radii, counts=counts, delta=delta)
