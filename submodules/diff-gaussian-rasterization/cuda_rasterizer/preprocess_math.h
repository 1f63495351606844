// Per-Gaussian stage: projection, EWA covariance, footprint box, SH colour (forward) and the
// exact chain rule back to means3D / scales / rotations / cov3D / SH (backward). Host and
// device: the CUDA kernels and the CPU backend run this same code.
#pragma once

#include "antialias_math.h"
#include "geometry.h"
#include "sh_math.h"

namespace gsr {

// Row-major 3x3 rotation from a (w, x, y, z) quaternion, used as given.
GS_HD void quat_to_rot(const float4 q, float R[9]) {
  const float w = q.x, x = q.y, y = q.z, z = q.w;
  R[0] = 1.f - 2.f * (y * y + z * z); R[1] = 2.f * (x * y - w * z);       R[2] = 2.f * (x * z + w * y);
  R[3] = 2.f * (x * y + w * z);       R[4] = 1.f - 2.f * (x * x + z * z); R[5] = 2.f * (y * z - w * x);
  R[6] = 2.f * (x * z - w * y);       R[7] = 2.f * (y * z + w * x);       R[8] = 1.f - 2.f * (x * x + y * y);
}

GS_HD float4 load_quat(const float* r, int i) {
  return make_float4(r[4 * i], r[4 * i + 1], r[4 * i + 2], r[4 * i + 3]);
}

// Precomputed Sigma (full symmetric 3x3, row-major) of Gaussian i.
GS_HD void covariance3d(const Gaussians& g, int i, float S[9]) {
  const float* c = g.cov3D_precomp + 6 * i;
  S[0] = c[0]; S[1] = c[1]; S[2] = c[2];
  S[3] = c[1]; S[4] = c[3]; S[5] = c[4];
  S[6] = c[2]; S[7] = c[4]; S[8] = c[5];
}

// Rotation R (columns = the Gaussian's axes) and scales s = modifier * scales of Gaussian i.
GS_HD void gaussian_axes(const Gaussians& g, float modifier, int i, float R[9], float s[3]) {
  for (int k = 0; k < 3; ++k) s[k] = modifier * g.scales[3 * i + k];
  quat_to_rot(load_quat(g.rotations, i), R);
}

// T = J Wr (2x3). Also reports the clamped camera-space x, y and whether each clamp was active
// (limits: Camera::frustum, which follows an off-centre principal point).
GS_HD void ewa_jacobian(const Frame& f, float3 t, float T[6], float& tx, float& ty,
                             float& rx, float& ry, bool& cx, bool& cy) {
  const float ux = t.x / t.z, uy = t.y / t.z;
  rx = fminf(f.lim_x1, fmaxf(f.lim_x0, ux));
  ry = fminf(f.lim_y1, fmaxf(f.lim_y0, uy));
  cx = (ux < f.lim_x0 || ux > f.lim_x1);
  cy = (uy < f.lim_y0 || uy > f.lim_y1);
  tx = rx * t.z;
  ty = ry * t.z;
  const float J00 = f.focal_x / t.z, J02 = -f.focal_x * tx / (t.z * t.z);
  const float J11 = f.focal_y / t.z, J12 = -f.focal_y * ty / (t.z * t.z);
  // Wr[j][k] = view[k][j] = f.view[4k + j].
  for (int k = 0; k < 3; ++k) {
    T[k] = J00 * f.view[4 * k + 0] + J02 * f.view[4 * k + 2];
    T[3 + k] = J11 * f.view[4 * k + 1] + J12 * f.view[4 * k + 2];
  }
}

// cov2D entries a, b, c (with the low-pass dilation) of T Sigma T^T.
GS_HD void project_cov(const float T[6], const float S[9], float& a, float& b, float& c) {
  float TS[6];
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k)
      TS[3 * r + k] = T[3 * r] * S[k] + T[3 * r + 1] * S[3 + k] + T[3 * r + 2] * S[6 + k];
  a = TS[0] * T[0] + TS[1] * T[1] + TS[2] * T[2] + kDilation;
  b = TS[0] * T[3] + TS[1] * T[4] + TS[2] * T[5];
  c = TS[3] * T[3] + TS[4] * T[4] + TS[5] * T[5] + kDilation;
}

// Why axes: for a needle (scales 3 / 0.003) Sigma = R diag(s^2) R^T rounds its short axes away
// in float32, and det = a c - b^2 cancels ~13 bits. With P = T R (the unit axes in pixels,
// entries of one magnitude) cov2D = P diag(s^2) P^T + 0.3 I, and by Cauchy-Binet
// det = sum_{i<j} s_i^2 s_j^2 m_ij^2 + 0.3 (a' + c') + 0.09 (m_ij: 2x2 minors of P; a', c':
// the undilated diagonal): sums of positive terms, correct to a few ulp.
GS_HD void project_axes(const float T[6], const float R[9], float P[6]) {
  for (int r = 0; r < 2; ++r)
    for (int k = 0; k < 3; ++k)
      P[3 * r + k] = T[3 * r] * R[k] + T[3 * r + 1] * R[3 + k] + T[3 * r + 2] * R[6 + k];
}

// m_ik = P0i P1k - P0k P1i (antisymmetric).
GS_HD float axes_minor(const float P[6], int i, int k) {
  return P[i] * P[3 + k] - P[k] * P[3 + i];
}

GS_HD void cov2d_from_axes(const float P[6], const float s[3], float& a, float& b, float& c,
                           float& det) {
  float a0 = 0.f, c0 = 0.f;
  b = 0.f;
  for (int k = 0; k < 3; ++k) {
    const float s2 = s[k] * s[k];
    a0 += s2 * P[k] * P[k];
    b += s2 * P[k] * P[3 + k];
    c0 += s2 * P[3 + k] * P[3 + k];
  }
  a = a0 + kDilation;
  c = c0 + kDilation;
  const float m01 = s[0] * s[1] * axes_minor(P, 0, 1), m02 = s[0] * s[2] * axes_minor(P, 0, 2),
              m12 = s[1] * s[2] * axes_minor(P, 1, 2);
  det = m01 * m01 + m02 * m02 + m12 * m12 + kDilation * (a0 + c0) + kDilation * kDilation;
}

// U = cov2D^-1 P = adj(cov2D) P / det, expanded so that no large terms cancel:
// (adj P)_0i = 0.3 P0i + sum_k s_k^2 P1k m_ik, (adj P)_1i = 0.3 P1i - sum_k s_k^2 P0k m_ik
// (the k = i terms vanish, so a long axis never meets its own large scale).
GS_HD void inv_cov_axes(const float P[6], const float s[3], float det, float U[6]) {
  for (int i = 0; i < 3; ++i) {
    float u0 = kDilation * P[i], u1 = kDilation * P[3 + i];
    for (int k = 0; k < 3; ++k) {
      if (k == i) continue;
      const float w = s[k] * s[k] * axes_minor(P, i, k);
      u0 += w * P[3 + k];
      u1 -= w * P[k];
    }
    U[i] = u0 / det;
    U[3 + i] = u1 / det;
  }
}

GS_HD void preprocess_one(int i, const Frame& f, const Gaussians& g,
                                        const GeomState& geom, int* radii) {
  const float modifier = f.scale_modifier;
  radii[i] = 0;
  geom.tiles_touched[i] = 0;

  const float3 p = make_float3(g.means3D[3 * i], g.means3D[3 * i + 1], g.means3D[3 * i + 2]);
  const float3 t = transform_point(f.view, p);
  if (!(t.z > kNearZ)) return;
  const float4 h = transform_point4(f.proj, p);
  const float pw = 1.0f / (h.w + 1e-7f);
  const float u = ((h.x * pw + 1.0f) * f.W - 1.0f) * 0.5f;
  const float v = ((h.y * pw + 1.0f) * f.H - 1.0f) * 0.5f;

  float T[6], tx, ty, rx, ry;
  bool cx, cy;
  ewa_jacobian(f, t, T, tx, ty, rx, ry, cx, cy);
  float a, b, c, det, det0, tr0;  // det0, tr0: undilated, for --antialiasing
  if (g.cov3D_precomp) {
    float S[9];
    covariance3d(g, i, S);
    project_cov(T, S, a, b, c);
    det = a * c - b * b;
    det0 = (a - kDilation) * (c - kDilation) - b * b;
    tr0 = (a - kDilation) + (c - kDilation);
  } else {
    float R[9], s[3], P[6];
    gaussian_axes(g, modifier, i, R, s);
    project_axes(T, R, P);
    cov2d_from_axes(P, s, a, b, c, det);
    axes_det0_trace(P, s, det0, tr0);
  }
  if (!(det > 0.0f)) return;
  const float o = g.opacities[i] * (f.antialiasing ? aa_scale(det0, tr0) : 1.0f);
  if (!(o > kAlphaMin)) return;

  const float mid = 0.5f * (a + c);
  const float lam = mid + sqrtf(fmaxf(mid * mid - det, 0.1f));
  const float radius = ceilf(3.0f * sqrtf(lam));

  // Footprint box: bounding box of the support ellipse q <= min(mult,1) 2 ln(255 o).
  const float lg = logf(o * 255.0f);
  const float tb = f.box_t * lg;
  const float ex = sqrtf(tb * a), ey = sqrtf(tb * c);
  if (!isfinite(u) || !isfinite(v) || isnan(ex) || isnan(ey)) return;
  const float x0 = fmaxf(ceilf(u - ex), 0.0f), x1 = fminf(floorf(u + ex), float(f.W - 1));
  const float y0 = fmaxf(ceilf(v - ey), 0.0f), y1 = fminf(floorf(v + ey), float(f.H - 1));
  if (!(x1 >= x0) || !(y1 >= y0)) return;
  const int ix0 = int(x0), ix1 = int(x1), iy0 = int(y0), iy1 = int(y1);

  if (g.shs) {
    const float3 d = make_float3(p.x - f.campos[0], p.y - f.campos[1], p.z - f.campos[2]);
    const float inv = 1.0f / sqrtf(d.x * d.x + d.y * d.y + d.z * d.z);
    float bs[16], bx[16], by[16], bz[16];
    sh_basis(g.sh_degree, d.x * inv, d.y * inv, d.z * inv, bs, bx, by, bz);
    const int n = (g.sh_degree + 1) * (g.sh_degree + 1);
    const float* sh = g.shs + size_t(i) * g.sh_coeffs * 3;
    uint8_t mask = 0;
    for (int ch = 0; ch < 3; ++ch) {
      float acc = 0.f;
      for (int k = 0; k < n; ++k) acc += bs[k] * sh[3 * k + ch];
      acc += 0.5f;
      if (acc < 0.0f) mask |= uint8_t(1u << ch);
      geom.rgb[3 * i + ch] = fmaxf(acc, 0.0f);
    }
    geom.clamped[i] = mask;
  }

  geom.pos[i] = make_float4(u, v, o, t.z);
  geom.conic[i] = make_float4(c / det, -b / det, a / det, f.support_t * lg);
  geom.box[i] = make_uint2(uint32_t(ix0) | (uint32_t(ix1) << 16), uint32_t(iy0) | (uint32_t(iy1) << 16));
  geom.tiles_touched[i] = uint32_t(ix1 / kTileX - ix0 / kTileX + 1) * uint32_t(iy1 / kTileY - iy0 / kTileY + 1);
  radii[i] = int(radius);
}

GS_HD void preprocess_backward_one(int i, const Frame& f, const Gaussians& g,
                                                 const GeomState& geom, const int* radii,
                                                 const Gradients& d) {
  const float modifier = f.scale_modifier;
  if (radii[i] <= 0) return;

  const float3 p = make_float3(g.means3D[3 * i], g.means3D[3 * i + 1], g.means3D[3 * i + 2]);
  const float3 t = transform_point(f.view, p);
  const float4 h = transform_point4(f.proj, p);
  const float pw = 1.0f / (h.w + 1e-7f);

  // Screen-space statistics: pixel gradients accumulated by render, scaled to NDC in place.
  float4* g2 = reinterpret_cast<float4*>(d.means2D) + i;
  float4 gm = *g2;
  const float sx = 0.5f * f.W, sy = 0.5f * f.H;
  gm = make_float4(gm.x * sx, gm.y * sy, gm.z * sx, gm.w * sy);
  *g2 = gm;

  // u = ((h.x / (h.w + eps) + 1) W - 1) / 2: dL/dndc = gm.xy.
  float3 dp;
  {
    const float dhx = gm.x * pw, dhy = gm.y * pw;
    const float dhw = -(gm.x * h.x + gm.y * h.y) * pw * pw;
    const float* m = f.proj;
    dp.x = m[0] * dhx + m[1] * dhy + m[3] * dhw;
    dp.y = m[4] * dhx + m[5] * dhy + m[7] * dhw;
    dp.z = m[8] * dhx + m[9] * dhy + m[11] * dhw;
  }

  // The conic V = cov2D^-1 receives Gv = [[gA, gB/2], [gB/2, gC]] (B is used twice in q), so
  // dL/dcov2D = -V Gv V. Everything below contracts V with what it multiplies before use.
  float T[6], tx, ty, rx, ry;
  bool cx, cy;
  ewa_jacobian(f, t, T, tx, ty, rx, ry, cx, cy);
  const float gA = d.conic[3 * i], gB = d.conic[3 * i + 1], gC = d.conic[3 * i + 2];
  float dT[6];
  if (g.cov3D_precomp) {
    // A given Sigma has no axes to keep apart: the plain closed form of -V Gv V.
    float S[9];
    covariance3d(g, i, S);
    float a, b, c;
    project_cov(T, S, a, b, c);
    const float det = a * c - b * b;
    const float id2 = 1.0f / (det * det);
    float dLa = (-c * c * gA + b * c * gB - b * b * gC) * id2;
    float dLc = (-b * b * gA + a * b * gB - a * a * gC) * id2;
    float dLb = (2.f * b * c * gA - (a * c + b * b) * gB + 2.f * a * b * gC) * id2;
    if (f.antialiasing) {  // det0 = a0 c0 - b^2, tr0 = a0 + c0 (a0, c0 undilated)
      const float a0 = a - kDilation, c0 = c - kDilation;
      float g_det0, g_tr0;
      aa_backward(a0 * c0 - b * b, a0 + c0, g.opacities[i], d.opacities + i, g_det0, g_tr0);
      dLa += g_det0 * c0 + g_tr0;
      dLc += g_det0 * a0 + g_tr0;
      dLb -= 2.f * g_det0 * b;
    }
    // a = T0 S T0^T, b = T0 S T1^T, c = T1 S T1^T  ->  dL/dSigma and dL/dT.
    float G[9], ST0[3], ST1[3];
    for (int r = 0; r < 3; ++r) {
      for (int k = 0; k < 3; ++k)
        G[3 * r + k] = dLa * T[r] * T[k] + dLb * T[r] * T[3 + k] + dLc * T[3 + r] * T[3 + k];
      ST0[r] = S[3 * r] * T[0] + S[3 * r + 1] * T[1] + S[3 * r + 2] * T[2];
      ST1[r] = S[3 * r] * T[3] + S[3 * r + 1] * T[4] + S[3 * r + 2] * T[5];
    }
    for (int k = 0; k < 3; ++k) {
      dT[k] = 2.f * dLa * ST0[k] + dLb * ST1[k];
      dT[3 + k] = 2.f * dLc * ST1[k] + dLb * ST0[k];
    }
    float* o = d.cov3D + 6 * i;
    o[0] = G[0]; o[1] = G[1] + G[3]; o[2] = G[2] + G[6];
    o[3] = G[4]; o[4] = G[5] + G[7]; o[5] = G[8];
  } else {
    // cov2D = P D P^T + 0.3 I with P = T R, D = diag(s^2), U = V P (inv_cov_axes):
    //   dL/dP = -2 V Gv U D,  dL/ds_k = -2 s_k U_k^T Gv U_k  (V P_k = U_k: no V left over).
    float R[9], s[3], P[6], U[6];
    gaussian_axes(g, modifier, i, R, s);
    project_axes(T, R, P);
    float a, b, c, det;
    cov2d_from_axes(P, s, a, b, c, det);
    inv_cov_axes(P, s, det, U);
    const float VA = c / det, VB = -b / det, VC = a / det;
    float dP[6];
    for (int k = 0; k < 3; ++k) {
      const float X0 = gA * U[k] + 0.5f * gB * U[3 + k];
      const float X1 = 0.5f * gB * U[k] + gC * U[3 + k];
      const float s2 = s[k] * s[k];
      dP[k] = -2.f * s2 * (VA * X0 + VB * X1);
      dP[3 + k] = -2.f * s2 * (VB * X0 + VC * X1);
      d.scales[3 * i + k] = modifier * -2.f * s[k] * (U[k] * X0 + U[3 + k] * X1);
    }
    if (f.antialiasing) {
      float det0, tr0, g_det0, g_tr0, ds[3] = {0.f, 0.f, 0.f};
      axes_det0_trace(P, s, det0, tr0);
      aa_backward(det0, tr0, g.opacities[i], d.opacities + i, g_det0, g_tr0);
      axes_det0_trace_backward(P, s, g_det0, g_tr0, dP, ds);
      for (int k = 0; k < 3; ++k) d.scales[3 * i + k] += modifier * ds[k];
    }
    // P = T R: dT = dP R^T, dR = T^T dP.
    float dR[9];
    for (int r = 0; r < 2; ++r)
      for (int j = 0; j < 3; ++j)
        dT[3 * r + j] = dP[3 * r] * R[3 * j] + dP[3 * r + 1] * R[3 * j + 1] + dP[3 * r + 2] * R[3 * j + 2];
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 3; ++k) dR[3 * j + k] = T[j] * dP[k] + T[3 + j] * dP[3 + k];
    const float4 q = load_quat(g.rotations, i);
    const float w = q.x, x = q.y, y = q.z, zq = q.w;
    float* o = d.rotations + 4 * i;
    o[0] = 2.f * (zq * (dR[3] - dR[1]) + y * (dR[2] - dR[6]) + x * (dR[7] - dR[5]));
    o[1] = 2.f * (y * (dR[1] + dR[3]) + zq * (dR[2] + dR[6]) + w * (dR[7] - dR[5])) - 4.f * x * (dR[4] + dR[8]);
    o[2] = 2.f * (x * (dR[1] + dR[3]) + w * (dR[2] - dR[6]) + zq * (dR[5] + dR[7])) - 4.f * y * (dR[0] + dR[8]);
    o[3] = 2.f * (w * (dR[3] - dR[1]) + x * (dR[2] + dR[6]) + y * (dR[5] + dR[7])) - 4.f * zq * (dR[0] + dR[4]);
  }
  // T = J Wr: dL/dJ[r][j] = sum_k dT[r][k] Wr[j][k] with Wr[j][k] = view[4k + j].
  float dJ00 = 0.f, dJ02 = 0.f, dJ11 = 0.f, dJ12 = 0.f;
  for (int k = 0; k < 3; ++k) {
    dJ00 += dT[k] * f.view[4 * k + 0];
    dJ02 += dT[k] * f.view[4 * k + 2];
    dJ11 += dT[3 + k] * f.view[4 * k + 1];
    dJ12 += dT[3 + k] * f.view[4 * k + 2];
  }
  const float z = t.z, z2 = z * z, z3 = z2 * z;
  float dtz = -f.focal_x * dJ00 / z2 + 2.f * f.focal_x * tx * dJ02 / z3
              - f.focal_y * dJ11 / z2 + 2.f * f.focal_y * ty * dJ12 / z3;
  const float dtx = -f.focal_x * dJ02 / z2, dty = -f.focal_y * dJ12 / z2;
  // tx = clamp(x/z) z: passes to x when free; when clamped, tx = +-lim z depends on z only.
  float3 dview = make_float3(cx ? 0.f : dtx, cy ? 0.f : dty, 0.f);
  dtz += (cx ? rx * dtx : 0.f) + (cy ? ry * dty : 0.f);
  dview.z = dtz + d.depth[i];
  // p_view = p @ view[:3,:3] + view[3,:3].
  dp.x += f.view[0] * dview.x + f.view[1] * dview.y + f.view[2] * dview.z;
  dp.y += f.view[4] * dview.x + f.view[5] * dview.y + f.view[6] * dview.z;
  dp.z += f.view[8] * dview.x + f.view[9] * dview.y + f.view[10] * dview.z;

  if (g.shs) {
    const float3 dd = make_float3(p.x - f.campos[0], p.y - f.campos[1], p.z - f.campos[2]);
    const float inv = 1.0f / sqrtf(dd.x * dd.x + dd.y * dd.y + dd.z * dd.z);
    const float3 dir = make_float3(dd.x * inv, dd.y * inv, dd.z * inv);
    float bs[16], bx[16], by[16], bz[16];
    sh_basis(g.sh_degree, dir.x, dir.y, dir.z, bs, bx, by, bz);
    const int n = (g.sh_degree + 1) * (g.sh_degree + 1);
    const float* sh = g.shs + size_t(i) * g.sh_coeffs * 3;
    float* dsh = d.shs + size_t(i) * g.sh_coeffs * 3;
    const uint8_t mask = geom.clamped[i];
    float3 ddir = make_float3(0.f, 0.f, 0.f);
    for (int ch = 0; ch < 3; ++ch) {
      const float gc = (mask >> ch) & 1u ? 0.f : d.colors[3 * i + ch];
      for (int k = 0; k < n; ++k) {
        dsh[3 * k + ch] = bs[k] * gc;
        const float coef = sh[3 * k + ch] * gc;
        ddir.x += bx[k] * coef;
        ddir.y += by[k] * coef;
        ddir.z += bz[k] * coef;
      }
    }
    // dir = d / |d|.
    const float proj = dir.x * ddir.x + dir.y * ddir.y + dir.z * ddir.z;
    dp.x += (ddir.x - dir.x * proj) * inv;
    dp.y += (ddir.y - dir.y * proj) * inv;
    dp.z += (ddir.z - dir.z * proj) * inv;
  }

  d.means3D[3 * i] = dp.x;
  d.means3D[3 * i + 1] = dp.y;
  d.means3D[3 * i + 2] = dp.z;
}

}  // namespace gsr
