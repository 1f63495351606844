"""Pure-PyTorch rasterizer implementing docs/RASTERIZER.md (CPU or GPU).

Design: instead of tiles, the backend lists (pixel, Gaussian) pairs. Candidates come from each
Gaussian's footprint box, the alpha/support test filters them, a stable sort by pixel (pairs are
generated in depth order) groups them front to back, and segmented float64 prefix sums give the
transmittance. Compositing has a hand-written backward (`_Composite`) so that the per-pixel
absolute gradient (AbsGS/FastGS) comes out of the same pass; the per-Gaussian preprocessing
(projection, EWA covariance, SH) stays in autograd.
"""
import math
from typing import Optional

import torch

from gaussian_renderer import pair_kernels as pk
from gaussian_renderer.settings import RasterOutput, RasterSettings, frustum_limits
from utils.sh_utils import eval_sh

ALPHA_MIN = pk.ALPHA_MIN
ALPHA_MAX = pk.ALPHA_MAX
T_MIN = 1e-4
NEAR_Z = 0.2
DILATION = 0.3  # EWA low-pass filter added to cov2D
AA_MIN_RATIO = 0.000025  # the reference's floor of the det ratio under --antialiasing
# Candidate pairs evaluated per chunk: bounds peak memory for large footprints.
CHUNK_PAIRS = 1 << 22


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """(M,4) w,x,y,z (already normalised) -> (M,3,3)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(-1, 3, 3)


def _cov3d(cov3D_precomp):
    c = cov3D_precomp
    return torch.stack([c[:, 0], c[:, 1], c[:, 2], c[:, 1], c[:, 3], c[:, 4],
                        c[:, 2], c[:, 4], c[:, 5]], -1).reshape(-1, 3, 3)


def _axes_cov2d(P, s):
    """cov2D = P diag(s²) Pᵀ + 0.3 I for P = T R (M,2,3): entries a, b, c, its determinant
    by Cauchy–Binet (no cancellation) and U = cov2D⁻¹ P in an expanded form where no large
    terms cancel. Same formulas as preprocess_math.h (cov2d_from_axes, inv_cov_axes)."""
    P0, P1 = P[:, 0], P[:, 1]
    s2 = s * s
    a0, b, c0 = (s2 * P0 * P0).sum(1), (s2 * P0 * P1).sum(1), (s2 * P1 * P1).sum(1)
    m = P0[:, :, None] * P1[:, None, :] - P1[:, :, None] * P0[:, None, :]  # m[i,k], antisym.
    w = s[:, :, None] * s[:, None, :] * m
    det = (w[:, 0, 1] ** 2 + w[:, 0, 2] ** 2 + w[:, 1, 2] ** 2) + DILATION * (a0 + c0) \
        + DILATION * DILATION
    U0 = DILATION * P0 + (m @ (s2 * P1)[:, :, None])[:, :, 0]
    U1 = DILATION * P1 - (m @ (s2 * P0)[:, :, None])[:, :, 0]
    return a0 + DILATION, b, c0 + DILATION, det, U0 / det[:, None], U1 / det[:, None]


class _ConicFromAxes(torch.autograd.Function):
    """conic = cov2D⁻¹ from the projected axes P (M,2,3) and scales s (M,3), with the
    well-conditioned backward of preprocess_math.h: dL/dP = -2 V Gv U D, dL/ds_k =
    -2 s_k U_kᵀ Gv U_k (V the conic, Gv its gradient as a symmetric matrix, U = V P).
    Autograd through a c - b² or through det itself cancels ~13 bits on a needle."""

    @staticmethod
    def forward(ctx, P, s):
        a, b, c, det, U0, U1 = _axes_cov2d(P, s)
        conic = torch.stack([c / det, -b / det, a / det], -1)
        ctx.save_for_backward(s, conic, U0, U1)
        ctx.mark_non_differentiable(a, c, det)
        return conic, a, c, det

    @staticmethod
    def backward(ctx, g_conic, _ga, _gc, _gdet):
        s, conic, U0, U1 = ctx.saved_tensors
        gA, gB, gC = (g[:, None] for g in g_conic.unbind(-1))
        VA, VB, VC = (v[:, None] for v in conic.unbind(-1))
        X0 = gA * U0 + 0.5 * gB * U1
        X1 = 0.5 * gB * U0 + gC * U1
        s2 = s * s
        dP = torch.stack([-2.0 * s2 * (VA * X0 + VB * X1), -2.0 * s2 * (VB * X0 + VC * X1)], 1)
        ds = -2.0 * s * (U0 * X0 + U1 * X1)
        return dP, ds


def _axes_det_trace(P, s):
    """det and trace of the undilated cov2D = P diag(s²) Pᵀ (autograd): the determinant as the
    Cauchy–Binet sum of squared scaled 2x2 minors, which does not cancel for thin Gaussians."""
    P0, P1 = P[:, 0], P[:, 1]
    m01 = P0[:, 0] * P1[:, 1] - P0[:, 1] * P1[:, 0]
    m02 = P0[:, 0] * P1[:, 2] - P0[:, 2] * P1[:, 0]
    m12 = P0[:, 1] * P1[:, 2] - P0[:, 2] * P1[:, 1]
    s0, s1, s2 = s.unbind(1)
    det0 = (s0 * s1 * m01) ** 2 + (s0 * s2 * m02) ** 2 + (s1 * s2 * m12) ** 2
    return det0, (s * s * (P0 * P0 + P1 * P1)).sum(1)


def _aa_scale(det0, tr0):
    """--antialiasing opacity factor sqrt(det(cov2D) / det(cov2D + 0.3 I)), with
    det(cov2D + 0.3 I) = det + 0.3 trace + 0.09; floored as the reference (zero gradient where
    the floor is active)."""
    ratio = det0 / (det0 + DILATION * tr0 + DILATION * DILATION)
    return torch.sqrt(torch.clamp_min(ratio, AA_MIN_RATIO))


def _preprocess(s: RasterSettings, means3D, opacities, shs, colors_precomp, scales, rotations,
                cov3D_precomp):
    """Project the Gaussians in front of the near plane. Returns a dict over the M candidates."""
    H, W = s.image_height, s.image_width
    view, proj = s.viewmatrix, s.projmatrix
    with torch.no_grad():
        z_all = means3D @ view[:3, 2] + view[3, 2]
        idx = torch.nonzero(z_all > NEAR_Z).squeeze(1)
    p = means3D[idx]
    p_view = p @ view[:3, :3] + view[3, :3]
    p_hom = p @ proj[:3, :] + proj[3, :]
    p_w = 1.0 / (p_hom[:, 3] + 1e-7)
    u = ((p_hom[:, 0] * p_w + 1.0) * W - 1.0) * 0.5
    v = ((p_hom[:, 1] * p_w + 1.0) * H - 1.0) * 0.5

    fx = W / (2.0 * s.tanfovx)
    fy = H / (2.0 * s.tanfovy)
    tz = p_view[:, 2]
    x0, x1, y0, y1 = frustum_limits(s)
    tx = torch.clamp(p_view[:, 0] / tz, x0, x1) * tz
    ty = torch.clamp(p_view[:, 1] / tz, y0, y1) * tz
    zero = torch.zeros_like(tz)
    J = torch.stack([fx / tz, zero, -fx * tx / (tz * tz),
                     zero, fy / tz, -fy * ty / (tz * tz)], -1).reshape(-1, 2, 3)
    T = J @ view[:3, :3].T  # view[:3,:3] is the transposed world->view rotation
    if cov3D_precomp is not None:
        cov2d = T @ _cov3d(cov3D_precomp[idx]) @ T.transpose(1, 2)
        a = cov2d[:, 0, 0] + DILATION
        b = cov2d[:, 0, 1]
        c = cov2d[:, 1, 1] + DILATION
        det = a * c - b * b
        det_safe = torch.where(det > 0, det, torch.ones_like(det))
        conic = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    else:
        P = T @ quat_to_rotmat(rotations[idx])
        conic, a, c, det = _ConicFromAxes.apply(P, s.scale_modifier * scales[idx])
    ok = (det > 0).detach()

    opac = opacities[idx, 0]
    if getattr(s, "antialiasing", False):
        if cov3D_precomp is not None:
            a0, c0 = cov2d[:, 0, 0], cov2d[:, 1, 1]
            det0, tr0 = a0 * c0 - b * b, a0 + c0
        else:
            det0, tr0 = _axes_det_trace(P, s.scale_modifier * scales[idx])
        opac = opac * _aa_scale(det0, tr0)
    if colors_precomp is not None:
        color = colors_precomp[idx]
    else:
        dirs = p - s.campos
        dirs = dirs / dirs.norm(dim=1, keepdim=True)
        color = torch.clamp_min(eval_sh(s.sh_degree, shs[idx].transpose(1, 2), dirs) + 0.5, 0.0)

    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt(torch.clamp_min(mid * mid - det, 0.1))
        radius = torch.ceil(3.0 * torch.sqrt(lam))
        o = opac.detach()
        t = min(s.mult, 1.0) * 2.0 * torch.log(torch.clamp_min(o * 255.0, 1e-30))
        ok = ok & (o > ALPHA_MIN)
        t = torch.where(ok, t, torch.zeros_like(t))
        ex, ey = torch.sqrt(t * a), torch.sqrt(t * c)
        x0 = torch.clamp_min(torch.ceil(u - ex), 0)
        x1 = torch.clamp_max(torch.floor(u + ex), W - 1)
        y0 = torch.clamp_min(torch.ceil(v - ey), 0)
        y1 = torch.clamp_max(torch.floor(v + ey), H - 1)
        ok = ok & (x1 >= x0) & (y1 >= y0) & torch.isfinite(u) & torch.isfinite(v)
    return dict(idx=idx, u=u, v=v, conic=conic, opac=opac, color=color, depth=tz, ok=ok,
                radius=radius, box=(x0, x1, y0, y1),
                depth_feats=torch.stack([tz, 1.0 / tz], 1))  # blended into depth, invdepth


@torch.no_grad()
def _pairs(pre, s: RasterSettings):
    """(pixel, Gaussian) pairs passing support and alpha tests, grouped per pixel in depth order.

    Returns pixel ids (int64), Gaussian ids into the preprocessed set, alpha (clamped) per pair.
    """
    H, W = s.image_height, s.image_width
    dev = pre["u"].device
    order = torch.nonzero(pre["ok"]).squeeze(1)
    # Depth order; ties broken by index because the sort is stable.
    order = order[torch.sort(pre["depth"][order].detach(), stable=True).indices]
    x0, x1, y0, y1 = (b[order] for b in pre["box"])
    bw = x1 - x0 + 1
    counts = (bw * (y1 - y0 + 1)).long()
    o = pre["opac"].detach()[order]
    q_max = s.mult * 2.0 * torch.log(torch.clamp_min(o * 255.0, 1e-30))
    conic = pre["conic"].detach()[order]
    tab = torch.stack([x0, bw, y0, pre["u"].detach()[order], pre["v"].detach()[order],
                       conic[:, 0], conic[:, 1], conic[:, 2], o, q_max], 1).contiguous()

    ends = torch.cumsum(counts, 0)
    pix_l, gid_l, alpha_l = [], [], []
    start_g = 0
    n = order.numel()
    while start_g < n:
        # Take Gaussians until the chunk holds CHUNK_PAIRS candidates (at least one Gaussian).
        base = ends[start_g - 1] if start_g > 0 else ends.new_zeros(())
        end_g = int(torch.searchsorted(ends, base + CHUNK_PAIRS, right=True))
        end_g = max(end_g, start_g + 1)
        cnt = counts[start_g:end_g]
        total = int(cnt.sum())
        rows = torch.arange(start_g, end_g, device=dev)
        first = ends[start_g:end_g] - cnt - base
        start_g = end_g
        if total == 0:
            continue
        local_g = torch.repeat_interleave(rows, cnt, output_size=total)
        k = torch.arange(total, device=dev) - torch.repeat_interleave(first, cnt, output_size=total)
        pix, alpha, keep = pk.eval_candidates(local_g, k, tab, W)
        sel = torch.nonzero(keep).squeeze(1)
        pix_l.append(pix[sel])
        gid_l.append(order[local_g[sel]])
        alpha_l.append(alpha[sel])
    if not pix_l:
        e = torch.zeros(0, dtype=torch.long, device=dev)
        return e, e, torch.zeros(0, dtype=pre["u"].dtype, device=dev)
    pix = torch.cat(pix_l)
    gid = torch.cat(gid_l)
    alpha = torch.cat(alpha_l)
    # Stable sort by pixel keeps the depth order inside each pixel.
    key = pix.to(torch.int32) if H * W < 2 ** 31 else pix
    perm = torch.sort(key, stable=True).indices
    return pix[perm], gid[perm], alpha[perm]


def _segment_ids(pix: torch.Tensor, n_pix: int):
    """Start and end index of each pair's pixel segment (pairs sorted by pixel)."""
    counts = torch.bincount(pix, minlength=n_pix)
    ends = torch.cumsum(counts, 0)
    return (ends - counts)[pix], ends[pix] - 1


class _Composite(torch.autograd.Function):
    """Front-to-back blending of sorted pairs, with the exact backward of docs/RASTERIZER.md."""

    @staticmethod
    def forward(ctx, u, v, conic, opac, color, depth, viewspace, pix, gid, alpha, bg, H, W,
                vis_idx):
        n_pix = H * W
        seg_start, _ = _segment_ids(pix, n_pix)
        la = torch.log1p(-alpha.double())
        cs = torch.cumsum(la, 0)
        T, keep = pk.transmittance(la, cs, seg_start, math.log(T_MIN))
        # Early termination is a prefix per pixel, so dropping the rest keeps segments intact.
        sel = torch.nonzero(keep).squeeze(1)
        pix, gid, alpha, T, la = pix[sel], gid[sel], alpha[sel], T[sel].to(alpha.dtype), la[sel]
        w = alpha * T
        log_t_final = torch.zeros(n_pix, dtype=torch.float64, device=u.device)
        log_t_final.index_add_(0, pix, la)
        t_final = torch.exp(log_t_final).to(alpha.dtype)

        acc = torch.zeros(n_pix, 5, dtype=alpha.dtype, device=u.device)
        acc.index_add_(0, pix, pk.blend_values(gid, w, color, depth))
        img = acc[:, :3] + t_final[:, None] * bg[None, :]
        out_color = img.T.reshape(3, H, W)
        out_depth = acc[:, 3].reshape(1, H, W)
        out_invdepth = acc[:, 4].reshape(1, H, W)
        out_alpha = (1.0 - t_final).reshape(1, H, W)

        ctx.save_for_backward(u, v, conic, opac, color, depth, pix, gid, alpha, T, t_final, bg,
                              vis_idx)
        ctx.shape = (H, W, viewspace.shape[0])
        ctx.mark_non_differentiable(pix, gid)
        return out_color, out_depth, out_invdepth, out_alpha, pix, gid

    @staticmethod
    def backward(ctx, g_color, g_depth, g_invdepth, g_alpha, _gp, _gg):
        u, v, conic, opac, color, depth, pix, gid, alpha, T, t_final, bg, vis_idx = \
            ctx.saved_tensors
        H, W, N = ctx.shape
        n_pix = H * W
        M = u.shape[0]
        dt = alpha.dtype
        zeros = lambda *shape: torch.zeros(*shape, dtype=dt, device=u.device)  # noqa: E731
        gC = g_color.reshape(3, n_pix).T.contiguous() if g_color is not None else zeros(n_pix, 3)
        gD = torch.stack([g_depth.reshape(n_pix) if g_depth is not None else zeros(n_pix),
                          g_invdepth.reshape(n_pix) if g_invdepth is not None else zeros(n_pix)],
                         1)
        gA = g_alpha.reshape(n_pix) if g_alpha is not None else zeros(n_pix)

        val, wv = pk.pair_value(gid, pix, alpha * T, color, depth, gC, gD)
        cs = torch.cumsum(wv, 0)  # float64: suffix sums are differences of this
        _, seg_end = _segment_ids(pix, n_pix)
        tab = torch.cat([u[:, None], v[:, None], conic, opac[:, None]], 1).contiguous()
        per_pair = pk.pair_grads(gid, pix, alpha, T, val, cs, seg_end, tab, gC, gD, gA,
                                 t_final, bg, W)
        acc = torch.zeros(M, 13, dtype=dt, device=u.device)
        acc.index_add_(0, gid, per_pair)

        g_viewspace = torch.zeros(N, 4, dtype=dt, device=u.device)
        scale = torch.tensor([0.5 * W, 0.5 * H, 0.5 * W, 0.5 * H], dtype=dt, device=u.device)
        g_viewspace[vis_idx] = acc[:, 0:4] * scale
        return (acc[:, 0], acc[:, 1], acc[:, 4:7], acc[:, 7], acc[:, 10:13], acc[:, 8:10],
                g_viewspace, None, None, None, None, None, None, None)


def rasterize(settings: RasterSettings, means3D, means2D, opacities, shs=None,
              colors_precomp=None, scales=None, rotations=None, cov3D_precomp=None,
              metric_map: Optional[torch.Tensor] = None) -> RasterOutput:
    s = settings
    H, W = s.image_height, s.image_width
    N = means3D.shape[0]
    dev = means3D.device
    if (shs is None) == (colors_precomp is None):
        raise ValueError("pass exactly one of shs / colors_precomp")
    if cov3D_precomp is None and (scales is None or rotations is None):
        raise ValueError("pass scales and rotations, or cov3D_precomp")
    pre = _preprocess(s, means3D, opacities, shs, colors_precomp, scales, rotations,
                      cov3D_precomp)
    pix, gid, alpha = _pairs(pre, s)
    bg = s.bg.to(device=dev, dtype=means3D.dtype)
    color, depth, invdepth, alpha_img, pix_k, gid_k = _Composite.apply(
        pre["u"], pre["v"], pre["conic"], pre["opac"], pre["color"], pre["depth_feats"], means2D,
        pix, gid, alpha, bg, H, W, pre["idx"])

    radii = torch.zeros(N, dtype=torch.int32, device=dev)
    ok = pre["ok"]
    radii[pre["idx"][ok]] = pre["radius"][ok].to(torch.int32)
    counts = torch.zeros(N, dtype=torch.int32, device=dev)
    if metric_map is not None and pix_k.numel():
        hit = metric_map.reshape(-1).to(torch.bool)[pix_k]
        per = torch.bincount(gid_k[hit], minlength=pre["u"].shape[0]).to(torch.int32)
        counts[pre["idx"]] = per
    return RasterOutput(color, depth, alpha_img, radii, counts, invdepth)
