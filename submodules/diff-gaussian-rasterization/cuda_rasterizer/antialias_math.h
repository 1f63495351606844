// --antialiasing (the reference's 2D mip filter): each Gaussian's opacity is multiplied by
// sqrt(det(cov2D) / det(cov2D + 0.3 I)), floored at sqrt(kAAMinRatio) as the reference, with
// the 0.3 px^2 dilation kept in the conic. det(cov2D) is the undilated determinant, computed
// from the projected axes (Cauchy-Binet, as cov2d_from_axes) so that it does not cancel for
// thin Gaussians; det(cov2D + 0.3 I) = det + 0.3 trace + 0.09. Forward and backward here;
// preprocess_math.h calls them. Host and device.
#pragma once

#include "geometry.h"

namespace gsr {

constexpr float kAAMinRatio = 0.000025f;

// Undilated det and trace of P diag(s^2) P^T (P = T R: the unit axes in pixels, 2x3).
GS_HD void axes_det0_trace(const float P[6], const float s[3], float& det0, float& tr0) {
  det0 = 0.f;
  tr0 = 0.f;
  for (int k = 0; k < 3; ++k) {
    tr0 += s[k] * s[k] * (P[k] * P[k] + P[3 + k] * P[3 + k]);
    for (int j = k + 1; j < 3; ++j) {
      const float m = s[k] * s[j] * (P[k] * P[3 + j] - P[j] * P[3 + k]);
      det0 += m * m;
    }
  }
}

// Adds d(g_det0 det0 + g_tr0 tr0) to dP (2x3) and ds (3).
GS_HD void axes_det0_trace_backward(const float P[6], const float s[3], float g_det0,
                                    float g_tr0, float dP[6], float ds[3]) {
  for (int i = 0; i < 3; ++i) {
    const float si2 = s[i] * s[i];
    float d0 = 0.f, d1 = 0.f, dsi = 0.f;
    for (int k = 0; k < 3; ++k) {
      if (k == i) continue;
      const float m = P[i] * P[3 + k] - P[k] * P[3 + i];  // minor m_ik
      const float w = s[k] * s[k] * m;
      d0 += w * P[3 + k];   // d m_ik / d P0i = P1k
      d1 -= w * P[k];       // d m_ik / d P1i = -P0k
      dsi += w * m;
    }
    dP[i] += g_det0 * 2.f * si2 * d0 + g_tr0 * 2.f * si2 * P[i];
    dP[3 + i] += g_det0 * 2.f * si2 * d1 + g_tr0 * 2.f * si2 * P[3 + i];
    ds[i] += g_det0 * 2.f * s[i] * dsi + g_tr0 * 2.f * s[i] * (P[i] * P[i] + P[3 + i] * P[3 + i]);
  }
}

// The opacity factor of the filter.
GS_HD float aa_scale(float det0, float tr0) {
  const float ratio = det0 / (det0 + kDilation * tr0 + kDilation * kDilation);
  return sqrtf(fmaxf(ratio, kAAMinRatio));
}

// Backward of o_eff = o * aa_scale(det0, tr0): rescales *g_o (in: dL/do_eff, out: dL/do) and
// returns dL/ddet0 and dL/dtrace (zero where the floor is active).
GS_HD void aa_backward(float det0, float tr0, float o, float* g_o, float& g_det0,
                       float& g_tr0) {
  const float dp = det0 + kDilation * tr0 + kDilation * kDilation;
  const float ratio = det0 / dp;
  const float sc = sqrtf(fmaxf(ratio, kAAMinRatio));
  const float g_eff = *g_o;
  *g_o = g_eff * sc;
  const float g_ratio = ratio <= kAAMinRatio ? 0.f : g_eff * o / (2.f * sc);
  g_det0 = g_ratio * (kDilation * tr0 + kDilation * kDilation) / (dp * dp);
  g_tr0 = -g_ratio * kDilation * det0 / (dp * dp);
}

}  // namespace gsr
