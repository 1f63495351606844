// Real spherical-harmonics basis and its derivatives (utils/sh_utils.py convention), host and
// device: used by preprocess_math.h for the view-dependent colour and its backward.
#pragma once

#include "portable.h"

namespace gsr {

// Real SH constants (utils/sh_utils.py convention).
constexpr float SH_C0 = 0.28209479177387814f;
constexpr float SH_C1 = 0.4886025119029199f;
constexpr float SH_C2_0 = 1.0925484305920792f, SH_C2_1 = -1.0925484305920792f,
                SH_C2_2 = 0.31539156525252005f, SH_C2_3 = -1.0925484305920792f,
                SH_C2_4 = 0.5462742152960396f;
constexpr float SH_C3_0 = -0.5900435899266435f, SH_C3_1 = 2.890611442640554f,
                SH_C3_2 = -0.4570457994644658f, SH_C3_3 = 0.3731763325901154f,
                SH_C3_4 = -0.4570457994644658f, SH_C3_5 = 1.445305721320277f,
                SH_C3_6 = -0.5900435899266435f;

// Basis values b[k] and their derivatives along x, y, z for a unit direction.
GS_HD void sh_basis(int deg, float x, float y, float z, float* b, float* bx, float* by,
                         float* bz) {
  b[0] = SH_C0; bx[0] = by[0] = bz[0] = 0.f;
  if (deg < 1) return;
  b[1] = -SH_C1 * y; bx[1] = 0.f;     by[1] = -SH_C1; bz[1] = 0.f;
  b[2] = SH_C1 * z;  bx[2] = 0.f;     by[2] = 0.f;    bz[2] = SH_C1;
  b[3] = -SH_C1 * x; bx[3] = -SH_C1;  by[3] = 0.f;    bz[3] = 0.f;
  if (deg < 2) return;
  const float xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
  b[4] = SH_C2_0 * xy;                bx[4] = SH_C2_0 * y;          by[4] = SH_C2_0 * x;          bz[4] = 0.f;
  b[5] = SH_C2_1 * yz;                bx[5] = 0.f;                  by[5] = SH_C2_1 * z;          bz[5] = SH_C2_1 * y;
  b[6] = SH_C2_2 * (2.f * zz - xx - yy);
  bx[6] = -2.f * SH_C2_2 * x;         by[6] = -2.f * SH_C2_2 * y;   bz[6] = 4.f * SH_C2_2 * z;
  b[7] = SH_C2_3 * xz;                bx[7] = SH_C2_3 * z;          by[7] = 0.f;                  bz[7] = SH_C2_3 * x;
  b[8] = SH_C2_4 * (xx - yy);         bx[8] = 2.f * SH_C2_4 * x;    by[8] = -2.f * SH_C2_4 * y;   bz[8] = 0.f;
  if (deg < 3) return;
  b[9] = SH_C3_0 * y * (3.f * xx - yy);
  bx[9] = SH_C3_0 * 6.f * xy;         by[9] = SH_C3_0 * 3.f * (xx - yy);       bz[9] = 0.f;
  b[10] = SH_C3_1 * xy * z;
  bx[10] = SH_C3_1 * yz;              by[10] = SH_C3_1 * xz;                   bz[10] = SH_C3_1 * xy;
  b[11] = SH_C3_2 * y * (4.f * zz - xx - yy);
  bx[11] = SH_C3_2 * -2.f * xy;       by[11] = SH_C3_2 * (4.f * zz - xx - 3.f * yy);
  bz[11] = SH_C3_2 * 8.f * yz;
  b[12] = SH_C3_3 * z * (2.f * zz - 3.f * xx - 3.f * yy);
  bx[12] = SH_C3_3 * -6.f * xz;       by[12] = SH_C3_3 * -6.f * yz;
  bz[12] = SH_C3_3 * (6.f * zz - 3.f * xx - 3.f * yy);
  b[13] = SH_C3_4 * x * (4.f * zz - xx - yy);
  bx[13] = SH_C3_4 * (4.f * zz - 3.f * xx - yy);  by[13] = SH_C3_4 * -2.f * xy;
  bz[13] = SH_C3_4 * 8.f * xz;
  b[14] = SH_C3_5 * z * (xx - yy);
  bx[14] = SH_C3_5 * 2.f * xz;        by[14] = SH_C3_5 * -2.f * yz;            bz[14] = SH_C3_5 * (xx - yy);
  b[15] = SH_C3_6 * x * (xx - 3.f * yy);
  bx[15] = SH_C3_6 * 3.f * (xx - yy); by[15] = SH_C3_6 * -6.f * xy;            bz[15] = 0.f;
}

}  // namespace gsr
