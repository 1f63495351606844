// CPU rasterizer for the `cpp` backend (docs/RASTERIZER.md).
//
// The per-Gaussian stage (projection, EWA covariance, footprint, SH colour and their backward)
// is the CUDA extension's own host/device code (preprocess_math.h in
// submodules/diff-gaussian-rasterization/cuda_rasterizer), so CPU tests against the PyTorch
// oracle check that code too. The rest is CPU-specific: Gaussians sorted by depth are binned
// into 16x16 tiles, each tile is blended front to back with true early termination, and the
// backward walks each tile back to front, recovering the transmittance by division (as the
// CUDA rasterizer does).
//
// Per-tile loops run Gaussian-outer over the rows of its footprint box clipped to the tile, in
// branch-free groups of 8 pixels that the compiler turns into SIMD: pixels are independent
// while one Gaussian is blended, so masks replace the per-pixel tests. Gradients and metric
// counts are written per (tile, Gaussian) entry, which only that tile's worker touches, then
// summed per Gaussian in a fixed order: results do not depend on the number of threads.
#include <torch/extension.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

#include "preprocess_math.h"

namespace {

using torch::Tensor;
constexpr int TILE = gsr::kTileX;
static_assert(gsr::kTileX == gsr::kTileY, "square tiles");
constexpr int LANES = 8;  // pixels per SIMD group; TILE is a multiple
constexpr int NG = 12;    // per-Gaussian gradient columns of the compositing backward

// 8 pixels of a tile row at once (GCC/Clang vector extensions: AVX2 with -march=native,
// otherwise pairs of SSE registers). Comparisons give lane masks (-1 / 0).
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
static_assert(LANES == 8, "v8f holds LANES pixels");
const v8f kLaneF = {0, 1, 2, 3, 4, 5, 6, 7};
const v8i kLaneI = {0, 1, 2, 3, 4, 5, 6, 7};

inline v8f load8(const float* p) { v8f v; std::memcpy(&v, p, sizeof(v)); return v; }
inline v8i load8(const int32_t* p) { v8i v; std::memcpy(&v, p, sizeof(v)); return v; }
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof(v)); }
inline void store8(int32_t* p, v8i v) { std::memcpy(p, &v, sizeof(v)); }
inline v8f select(v8i m, v8f a, v8f b) { return m ? a : b; }
inline float hsum(v8f v) {
  float s = 0.0f;
  for (int k = 0; k < LANES; ++k) s += v[k];
  return s;
}

// exp(x) for x <= 0 on 8 lanes without calls: 2^(x log2 e), a degree-6 polynomial for the
// fraction (least-squares fit, relative error 2e-9, so within a few float ulps like expf).
inline v8f exp_neg(v8f x) {
  x = select(x < -87.0f, (v8f){} - 87.0f, x);
  const v8f t = x * 1.44269504088896341f;
  v8i ti = __builtin_convertvector(t, v8i);  // truncates toward 0; t <= 0, so step down
  ti += (__builtin_convertvector(ti, v8f) > t);  // mask -1 where truncation rounded up
  const v8f f = t - __builtin_convertvector(ti, v8f);
  v8f p = f * 2.1690609e-4f + 1.2443082e-3f;
  p = p * f + 9.6784728e-3f;
  p = p * f + 5.5483524e-2f;
  p = p * f + 2.4022980e-1f;
  p = p * f + 6.9314700e-1f;
  p = p * f + 1.0f;
  const v8i bits = (ti + 127) << 23;
  v8f scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// What the tile loops read of one Gaussian (gathered per tile for locality).
struct Splat {
  float4 pos, conic;
  uint2 box;
  float r, g, b;
};

inline int box_x0(const uint2& b) { return int(b.x & 0xffff); }
inline int box_x1(const uint2& b) { return int(b.x >> 16); }
inline int box_y0(const uint2& b) { return int(b.y & 0xffff); }
inline int box_y1(const uint2& b) { return int(b.y >> 16); }

// A Gaussian's footprint box clipped to a tile, and the 8-pixel groups it spans.
struct Clip {
  int x0, x1, y0, y1, gx0, gx1;
};
inline Clip clip(const Splat& g, int tx0, int ty0, int tw, int th) {
  Clip c;
  c.x0 = std::max(box_x0(g.box), tx0);
  c.x1 = std::min(box_x1(g.box), tx0 + tw - 1);
  c.y0 = std::max(box_y0(g.box), ty0);
  c.y1 = std::min(box_y1(g.box), ty0 + th - 1);
  c.gx0 = (c.x0 - tx0) / LANES;
  c.gx1 = (c.x1 - tx0) / LANES;
  return c;
}

// One Gaussian on 8 pixels of row y (first pixel x = pxb): offsets, falloff G, clamped alpha,
// and the support and alpha tests of the contract (the forward and backward must agree).
struct Group {
  v8f dx, G, oG, alpha;
  v8i in_set;
};
inline Group eval_group(const Splat& g, const Clip& c, int pxb, float dy) {
  Group r;
  r.dx = g.pos.x - ((float)pxb + kLaneF);
  const v8i px = pxb + kLaneI;
  const v8f q = g.conic.x * r.dx * r.dx + 2.0f * g.conic.y * r.dx * dy + g.conic.z * dy * dy;
  r.G = exp_neg(-0.5f * q);
  r.oG = g.pos.z * r.G;
  r.alpha = select(r.oG < gsr::kAlphaMax, r.oG, (v8f){} + gsr::kAlphaMax);
  r.in_set = (px >= c.x0) & (px <= c.x1) & (q >= 0.0f) & (q <= g.conic.w) &
             (r.alpha >= gsr::kAlphaMin);
  return r;
}

struct Binning {
  int tiles_x = 0, tiles_y = 0;
  std::vector<int64_t> tile_off;   // entries of tile t: [tile_off[t], tile_off[t+1])
  std::vector<int32_t> entry_gid;  // Gaussian of each entry, depth order inside a tile
  std::vector<int64_t> g_off;      // entries of Gaussian m: g_entry[g_off[m] .. g_off[m+1])
  std::vector<int64_t> g_entry;
};

// Sequential on purpose: entries inside a tile keep the depth order of `order`.
Binning bin(const uint2* box, const int64_t* order, int64_t K, int64_t P, int H, int W) {
  Binning b;
  b.tiles_x = (W + TILE - 1) / TILE;
  b.tiles_y = (H + TILE - 1) / TILE;
  const int64_t T = (int64_t)b.tiles_x * b.tiles_y;
  b.tile_off.assign(T + 1, 0);
  b.g_off.assign(P + 1, 0);
  for (int64_t k = 0; k < K; ++k) {
    const uint2 bx = box[order[k]];
    const int tx0 = box_x0(bx) / TILE, tx1 = box_x1(bx) / TILE;
    const int ty0 = box_y0(bx) / TILE, ty1 = box_y1(bx) / TILE;
    for (int ty = ty0; ty <= ty1; ++ty)
      for (int tx = tx0; tx <= tx1; ++tx) b.tile_off[(int64_t)ty * b.tiles_x + tx + 1]++;
    b.g_off[order[k] + 1] = (int64_t)(tx1 - tx0 + 1) * (ty1 - ty0 + 1);
  }
  for (int64_t t = 0; t < T; ++t) b.tile_off[t + 1] += b.tile_off[t];
  for (int64_t m = 0; m < P; ++m) b.g_off[m + 1] += b.g_off[m];
  const int64_t E = b.tile_off[T];
  b.entry_gid.resize(E);
  b.g_entry.resize(E);
  std::vector<int64_t> cursor(b.tile_off.begin(), b.tile_off.end() - 1);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t m = order[k];
    const uint2 bx = box[m];
    int64_t j = b.g_off[m];
    for (int ty = box_y0(bx) / TILE; ty <= box_y1(bx) / TILE; ++ty)
      for (int tx = box_x0(bx) / TILE; tx <= box_x1(bx) / TILE; ++tx) {
        const int64_t e = cursor[(int64_t)ty * b.tiles_x + tx]++;
        b.entry_gid[e] = (int32_t)m;
        b.g_entry[j++] = e;
      }
  }
  return b;
}

// Runs fn(tile) over all tiles on torch's intra-op threads, handing tiles out dynamically
// (tile costs vary a lot; a static split would leave threads idle).
template <typename F>
void for_each_tile(int64_t n_tiles, const F& fn) {
  std::atomic<int64_t> next(0);
  const int64_t workers = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), n_tiles));
  at::parallel_for(0, workers, 1, [&](int64_t, int64_t) {
    for (int64_t t = next++; t < n_tiles; t = next++) fn(t);
  });
}

// Views of the preprocessing results (owned by tensors that travel from forward to backward).
struct Geom {
  Tensor pos, conic, box, rgb, clamped;
  gsr::GeomState state() const {
    gsr::GeomState s{};
    s.pos = reinterpret_cast<float4*>(pos.data_ptr<float>());
    s.conic = reinterpret_cast<float4*>(conic.data_ptr<float>());
    s.box = reinterpret_cast<uint2*>(box.data_ptr<int32_t>());
    s.rgb = rgb.data_ptr<float>();
    s.clamped = clamped.data_ptr<uint8_t>();
    return s;
  }
};

void gather(const gsr::GeomState& geom, const float* colors, const Binning& b, int64_t t,
            std::vector<Splat>& out) {
  const int64_t s = b.tile_off[t], e = b.tile_off[t + 1];
  out.resize(e - s);
  for (int64_t i = s; i < e; ++i) {
    const int64_t m = b.entry_gid[i];
    out[i - s] = Splat{geom.pos[m], geom.conic[m], geom.box[m], colors[3 * m], colors[3 * m + 1],
                       colors[3 * m + 2]};
  }
}

void check_cpu(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

const float* optional_ptr(const Tensor& t, const char* name) {
  if (!t.defined() || t.numel() == 0) return nullptr;
  check_cpu(t, name);
  return t.data_ptr<float>();
}

struct Call {
  gsr::Camera cam;
  gsr::Gaussians g;
  gsr::Frame f;
};

Call make_call(const Tensor& means3D, const Tensor& opacities, const Tensor& shs, int64_t sh_degree,
               const Tensor& colors_precomp, const Tensor& scales, const Tensor& rotations,
               const Tensor& cov3D_precomp, const Tensor& bg, const Tensor& viewmatrix,
               const Tensor& projmatrix, const Tensor& campos, double tanfovx, double tanfovy,
               int64_t H, int64_t W, double scale_modifier, double mult,
               const std::vector<double>& frustum, bool antialiasing) {
  check_cpu(means3D, "means3D");
  check_cpu(opacities, "opacities");
  check_cpu(bg, "bg");
  check_cpu(viewmatrix, "viewmatrix");
  check_cpu(projmatrix, "projmatrix");
  check_cpu(campos, "campos");
  TORCH_CHECK(H > 0 && W > 0 && H < 65536 && W < 65536, "image size must be in [1, 65535]");
  TORCH_CHECK(sh_degree >= 0 && sh_degree <= 3, "sh_degree must be in 0..3");
  Call c;
  c.cam.width = (int)W;
  c.cam.height = (int)H;
  c.cam.tanfovx = (float)tanfovx;
  c.cam.tanfovy = (float)tanfovy;
  c.cam.viewmatrix = viewmatrix.data_ptr<float>();
  c.cam.projmatrix = projmatrix.data_ptr<float>();
  c.cam.campos = campos.data_ptr<float>();
  c.cam.bg = bg.data_ptr<float>();
  c.cam.scale_modifier = (float)scale_modifier;
  c.cam.mult = (float)mult;
  TORCH_CHECK(frustum.size() == 4, "frustum must hold 4 limits");
  for (int k = 0; k < 4; ++k) c.cam.frustum[k] = (float)frustum[k];
  c.cam.antialiasing = antialiasing;
  c.g.count = (int)means3D.size(0);
  c.g.means3D = means3D.data_ptr<float>();
  c.g.opacities = opacities.data_ptr<float>();
  c.g.sh_degree = (int)sh_degree;
  c.g.shs = optional_ptr(shs, "shs");
  c.g.sh_coeffs = c.g.shs ? (int)shs.size(1) : 0;
  c.g.colors_precomp = optional_ptr(colors_precomp, "colors_precomp");
  c.g.scales = optional_ptr(scales, "scales");
  c.g.rotations = optional_ptr(rotations, "rotations");
  c.g.cov3D_precomp = optional_ptr(cov3D_precomp, "cov3D_precomp");
  TORCH_CHECK(c.g.shs == nullptr || (sh_degree + 1) * (sh_degree + 1) <= c.g.sh_coeffs,
              "shs has fewer coefficients than sh_degree needs");
  c.f = gsr::make_frame(c.cam);
  return c;
}

// Binning travels from forward to backward as tensors.
std::vector<Tensor> binning_tensors(Binning& b) {
  auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  auto to_t = [&](std::vector<int64_t>& v) {
    return torch::from_blob(v.data(), {(int64_t)v.size()}, i64).clone();
  };
  auto gid = torch::from_blob(b.entry_gid.data(), {(int64_t)b.entry_gid.size()},
                              torch::TensorOptions().dtype(torch::kInt32)).clone();
  return {to_t(b.tile_off), gid, to_t(b.g_off), to_t(b.g_entry)};
}

Binning binning_from(const std::vector<Tensor>& t, int H, int W) {
  Binning b;
  b.tiles_x = (W + TILE - 1) / TILE;
  b.tiles_y = (H + TILE - 1) / TILE;
  auto copy64 = [](const Tensor& x) {
    const int64_t* p = x.data_ptr<int64_t>();
    return std::vector<int64_t>(p, p + x.numel());
  };
  b.tile_off = copy64(t[0]);
  const int32_t* g = t[1].data_ptr<int32_t>();
  b.entry_gid.assign(g, g + t[1].numel());
  b.g_off = copy64(t[2]);
  b.g_entry = copy64(t[3]);
  return b;
}

}  // namespace

// Returns color (3,H,W), depth (1,H,W), alpha (1,H,W), radii (P, int32), metric counts
// (P, int32), inverse depth (1,H,W), then what backward needs: geometry (pos, conic, box, rgb, clamped), final
// transmittance (H*W, float64), per-pixel contributor bound (H*W, int32: entries of its tile
// up to the last one blended) and the four binning tensors.
std::vector<Tensor> forward(Tensor means3D, Tensor opacities, Tensor shs, int64_t sh_degree,
                            Tensor colors_precomp, Tensor scales, Tensor rotations,
                            Tensor cov3D_precomp, Tensor bg, Tensor viewmatrix, Tensor projmatrix,
                            Tensor campos, double tanfovx, double tanfovy, int64_t H, int64_t W,
                            double scale_modifier, double mult, std::vector<double> frustum,
                            bool antialiasing, Tensor metric) {
  const Call c = make_call(means3D, opacities, shs, sh_degree, colors_precomp, scales, rotations,
                           cov3D_precomp, bg, viewmatrix, projmatrix, campos, tanfovx, tanfovy,
                           H, W, scale_modifier, mult, frustum, antialiasing);
  const int64_t P = c.g.count;
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto i32 = torch::TensorOptions().dtype(torch::kInt32);
  Geom geom{torch::zeros({P, 4}, f32), torch::zeros({P, 4}, f32), torch::zeros({P, 2}, i32),
            torch::zeros({P, 3}, f32), torch::zeros({P}, torch::TensorOptions().dtype(torch::kUInt8))};
  const gsr::GeomState gs = geom.state();
  std::vector<uint32_t> tiles_touched(P);
  auto radii = torch::zeros({P}, i32);
  int* rp = radii.data_ptr<int32_t>();
  {
    gsr::GeomState st = gs;
    st.tiles_touched = tiles_touched.data();
    at::parallel_for(0, P, 1024, [&](int64_t a, int64_t e) {
      for (int64_t i = a; i < e; ++i) gsr::preprocess_one((int)i, c.f, c.g, st, rp);
    });
  }
  // Front-to-back order of the visible Gaussians; the stable sort breaks depth ties by index.
  auto visible = torch::nonzero(radii > 0).squeeze(1);
  auto order = visible.index_select(0, torch::argsort(
      geom.pos.select(1, 3).index_select(0, visible), /*stable=*/true)).contiguous();
  Binning b = bin(gs.box, order.data_ptr<int64_t>(), order.numel(), P, (int)H, (int)W);
  const int64_t n_tiles = (int64_t)b.tiles_x * b.tiles_y;
  const int64_t E = b.tile_off[n_tiles];
  const float* colors = c.g.colors_precomp ? c.g.colors_precomp : gs.rgb;

  auto out_color = torch::empty({3, H, W}, f32);
  auto out_depth = torch::empty({1, H, W}, f32);
  auto out_alpha = torch::empty({1, H, W}, f32);
  auto out_invdepth = torch::empty({1, H, W}, f32);
  auto t_final = torch::empty({H * W}, torch::TensorOptions().dtype(torch::kFloat64));
  auto n_contrib = torch::zeros({H * W}, i32);
  const bool use_metric = metric.defined() && metric.numel() > 0;
  TORCH_CHECK(!use_metric || (metric.numel() == H * W && metric.scalar_type() == torch::kBool &&
                              metric.is_contiguous()), "metric_map must be a (H,W) bool mask");
  std::vector<int32_t> entry_count(use_metric ? E : 0, 0);
  const bool* mm = use_metric ? metric.data_ptr<bool>() : nullptr;
  const float* bgp = bg.data_ptr<float>();
  float* oc = out_color.data_ptr<float>();
  float* od = out_depth.data_ptr<float>();
  float* oa = out_alpha.data_ptr<float>();
  float* oi = out_invdepth.data_ptr<float>();
  double* tf = t_final.data_ptr<double>();
  int32_t* nc = n_contrib.data_ptr<int32_t>();

  for_each_tile(n_tiles, [&](int64_t t) {
    thread_local std::vector<Splat> sp;
    gather(gs, colors, b, t, sp);
    const int tx0 = (int)(t % b.tiles_x) * TILE, ty0 = (int)(t / b.tiles_x) * TILE;
    const int tw = std::min<int>(TILE, (int)W - tx0), th = std::min<int>(TILE, (int)H - ty0);
    alignas(32) float T[TILE * TILE], cr[TILE * TILE] = {}, cg[TILE * TILE] = {},
        cb[TILE * TILE] = {}, cd[TILE * TILE] = {}, ci[TILE * TILE] = {}, hot[TILE * TILE] = {};
    alignas(32) int32_t last[TILE * TILE] = {}, live[TILE * TILE];
    std::fill(T, T + TILE * TILE, 1.0f);
    for (int p = 0; p < TILE * TILE; ++p) {
      const int px = tx0 + p % TILE, py = ty0 + p / TILE;
      live[p] = px < W && py < H;
      if (mm && live[p]) hot[p] = mm[(int64_t)py * W + px] ? 1.0f : 0.0f;
    }
    int n_live = tw * th;
    const int64_t s = b.tile_off[t];
    for (int j = 0; j < (int)sp.size() && n_live > 0; ++j) {
      const Splat& g = sp[j];
      const Clip c = clip(g, tx0, ty0, tw, th);
      const int32_t stamp = j + 1;
      const float inv_z = 1.0f / g.pos.w;
      v8f hits = {};
      v8i ended = {};
      for (int py = c.y0; py <= c.y1; ++py) {
        const float dy = g.pos.y - (float)py;
        for (int gx = c.gx0; gx <= c.gx1; ++gx) {
          const int p = (py - ty0) * TILE + gx * LANES;
          const Group e = eval_group(g, c, tx0 + gx * LANES, dy);
          const v8f alpha = e.alpha;
          const v8i lv = load8(live + p);
          const v8i valid = (lv != 0) & e.in_set;
          const v8f Tp = load8(T + p);
          const v8f Tn = Tp * (1.0f - alpha);
          const v8i term = valid & (Tn < gsr::kTMin);  // this and all later: not composited
          const v8i use = valid & ~term;
          const v8f w = select(use, alpha * Tp, (v8f){});
          store8(cr + p, load8(cr + p) + w * g.r);
          store8(cg + p, load8(cg + p) + w * g.g);
          store8(cb + p, load8(cb + p) + w * g.b);
          store8(cd + p, load8(cd + p) + w * g.pos.w);
          store8(ci + p, load8(ci + p) + w * inv_z);
          store8(T + p, select(use, Tn, Tp));
          store8(last + p, use ? (v8i){} + stamp : load8(last + p));
          store8(live + p, term ? (v8i){} : lv);
          ended -= term;
          hits += select(use, load8(hot + p), (v8f){});
        }
      }
      int32_t n_ended = 0;
      for (int k = 0; k < LANES; ++k) n_ended += ended[k];
      n_live -= n_ended;
      if (mm) entry_count[s + j] = (int32_t)hsum(hits);
    }
    for (int py = ty0; py < ty0 + th; ++py)
      for (int px = tx0; px < tx0 + tw; ++px) {
        const int p = (py - ty0) * TILE + (px - tx0);
        const int64_t pix = (int64_t)py * W + px;
        oc[pix] = cr[p] + T[p] * bgp[0];
        oc[H * W + pix] = cg[p] + T[p] * bgp[1];
        oc[2 * H * W + pix] = cb[p] + T[p] * bgp[2];
        od[pix] = cd[p];
        oi[pix] = ci[p];
        oa[pix] = 1.0f - T[p];
        tf[pix] = T[p];
        nc[pix] = last[p];
      }
  });

  auto counts = torch::zeros({P}, i32);
  if (use_metric) {
    int32_t* cp = counts.data_ptr<int32_t>();
    at::parallel_for(0, P, 4096, [&](int64_t a, int64_t e) {
      for (int64_t m = a; m < e; ++m)
        for (int64_t k = b.g_off[m]; k < b.g_off[m + 1]; ++k) cp[m] += entry_count[b.g_entry[k]];
    });
  }
  std::vector<Tensor> res = {out_color, out_depth, out_alpha, radii, counts, out_invdepth,
                             geom.pos, geom.conic, geom.box, geom.rgb, geom.clamped, t_final,
                             n_contrib};
  for (auto& x : binning_tensors(b)) res.push_back(x);
  return res;
}

// Gradients for means3D, means2D (NDC and absolute, (P,4)), opacities, shs, colors_precomp,
// scales, rotations, cov3D_precomp; empty tensors for inputs that were not given.
std::vector<Tensor> backward(Tensor means3D, Tensor opacities, Tensor shs, int64_t sh_degree,
                             Tensor colors_precomp, Tensor scales, Tensor rotations,
                             Tensor cov3D_precomp, Tensor bg, Tensor viewmatrix,
                             Tensor projmatrix, Tensor campos, double tanfovx, double tanfovy,
                             int64_t H, int64_t W, double scale_modifier, double mult,
                             std::vector<double> frustum, bool antialiasing,
                             std::vector<Tensor> saved, Tensor g_color, Tensor g_depth,
                             Tensor g_alpha, Tensor g_invdepth) {
  const Call c = make_call(means3D, opacities, shs, sh_degree, colors_precomp, scales, rotations,
                           cov3D_precomp, bg, viewmatrix, projmatrix, campos, tanfovx, tanfovy,
                           H, W, scale_modifier, mult, frustum, antialiasing);
  const int64_t P = c.g.count;
  // saved: radii, pos, conic, box, rgb, clamped, t_final, n_contrib, 4 binning tensors.
  const Tensor radii = saved[0];
  const Geom geom{saved[1], saved[2], saved[3], saved[4], saved[5]};
  const gsr::GeomState gs = geom.state();
  const Binning b = binning_from({saved[8], saved[9], saved[10], saved[11]}, (int)H, (int)W);
  const float* colors = c.g.colors_precomp ? c.g.colors_precomp : gs.rgb;
  const int64_t n_tiles = (int64_t)b.tiles_x * b.tiles_y;
  const int64_t E = b.tile_off[n_tiles];
  std::vector<float> entry_grad(E * NG, 0.0f);
  for (const auto* t : {&g_color, &g_depth, &g_alpha, &g_invdepth})
    check_cpu(*t, "output gradient");
  const float* gC = g_color.data_ptr<float>();
  const float* gD = g_depth.data_ptr<float>();
  const float* gA = g_alpha.data_ptr<float>();
  const float* gI = g_invdepth.data_ptr<float>();
  const float* bgp = bg.data_ptr<float>();
  const double* tf = saved[6].data_ptr<double>();
  const int32_t* nc = saved[7].data_ptr<int32_t>();

  for_each_tile(n_tiles, [&](int64_t t) {
    thread_local std::vector<Splat> sp;
    gather(gs, colors, b, t, sp);
    const int tx0 = (int)(t % b.tiles_x) * TILE, ty0 = (int)(t / b.tiles_x) * TILE;
    const int tw = std::min<int>(TILE, (int)W - tx0), th = std::min<int>(TILE, (int)H - ty0);
    alignas(32) float T[TILE * TILE] = {}, suffix[TILE * TILE] = {}, tail0[TILE * TILE] = {},
        gr[TILE * TILE] = {}, gg[TILE * TILE] = {}, gb[TILE * TILE] = {}, gd[TILE * TILE] = {},
        gi[TILE * TILE] = {};
    alignas(32) int32_t last[TILE * TILE] = {};
    int max_last = 0;
    for (int py = ty0; py < ty0 + th; ++py)
      for (int px = tx0; px < tx0 + tw; ++px) {
        const int p = (py - ty0) * TILE + (px - tx0);
        const int64_t pix = (int64_t)py * W + px;
        T[p] = (float)tf[pix];
        gr[p] = gC[pix]; gg[p] = gC[H * W + pix]; gb[p] = gC[2 * H * W + pix];
        gd[p] = gD[pix];
        gi[p] = gI[pix];
        // What lies behind every Gaussian of this pixel: background and the alpha output.
        tail0[p] = T[p] * (gr[p] * bgp[0] + gg[p] * bgp[1] + gb[p] * bgp[2] - gA[pix]);
        last[p] = nc[pix];
        max_last = std::max(max_last, (int)last[p]);
      }
    float* eg = entry_grad.data() + b.tile_off[t] * NG;
    for (int j = max_last - 1; j >= 0; --j) {
      const Splat& g = sp[j];
      const Clip c = clip(g, tx0, ty0, tw, th);
      const float ca = g.conic.x, cbb = g.conic.y, cc = g.conic.z;
      const float inv_z = 1.0f / g.pos.w;
      v8f acc[NG] = {};
      for (int py = c.y0; py <= c.y1; ++py) {
        const float dy = g.pos.y - (float)py;
        for (int gx = c.gx0; gx <= c.gx1; ++gx) {
          const int p = (py - ty0) * TILE + gx * LANES;
          const Group e = eval_group(g, c, tx0 + gx * LANES, dy);
          const v8f dx = e.dx, G = e.G, oG = e.oG, alpha = e.alpha;
          const v8i valid = (j < load8(last + p)) & e.in_set;
          const v8f inv = 1.0f / (1.0f - alpha);
          const v8f Tp = load8(T + p);
          const v8f Tj = Tp * inv;  // transmittance in front of this Gaussian
          const v8f w = select(valid, alpha * Tj, (v8f){});
          const v8f r = load8(gr + p), gn = load8(gg + p), bl = load8(gb + p), d = load8(gd + p);
          const v8f di = load8(gi + p);
          const v8f val = g.r * r + g.g * gn + g.b * bl + g.pos.w * d + inv_z * di;
          const v8f sfx = load8(suffix + p);
          const v8f g_alpha = Tj * val - (sfx + load8(tail0 + p)) * inv;
          // Outside the set, or clamped at kAlphaMax: no gradient through alpha.
          const v8f g_a = select(valid & (oG < gsr::kAlphaMax), g_alpha, (v8f){});
          const v8f g_power = g_a * oG;
          const v8f gu = -g_power * (ca * dx + cbb * dy);
          const v8f gv = -g_power * (cc * dy + cbb * dx);
          acc[0] += gu; acc[1] += gv;
          acc[2] += select(gu < 0.0f, -gu, gu); acc[3] += select(gv < 0.0f, -gv, gv);
          acc[4] += -0.5f * g_power * dx * dx;
          acc[5] += -g_power * dx * dy;
          acc[6] += -0.5f * g_power * dy * dy;
          acc[7] += g_a * G;
          acc[8] += w * (d - di * inv_z * inv_z);  // dL/dz: depth and inverse depth (-1/z^2)
          acc[9] += w * r; acc[10] += w * gn; acc[11] += w * bl;
          store8(suffix + p, sfx + w * val);
          store8(T + p, select(valid, Tj, Tp));
        }
      }
      for (int c = 0; c < NG; ++c) eg[j * NG + c] = hsum(acc[c]);
    }
  });

  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  auto like = [&](const Tensor& t) { return t.defined() && t.numel() ? torch::zeros_like(t) : Tensor(); };
  Tensor d_means2D = torch::zeros({P, 4}, f32), d_conic = torch::zeros({P, 3}, f32),
         d_depth = torch::zeros({P}, f32), d_opac = torch::zeros_like(opacities),
         d_colors = torch::zeros({P, 3}, f32), d_means3D = torch::zeros_like(means3D),
         d_cov = like(cov3D_precomp), d_shs = like(shs), d_scales = like(scales),
         d_rot = like(rotations);
  gsr::Gradients d;
  d.means2D = d_means2D.data_ptr<float>();
  d.conic = d_conic.data_ptr<float>();
  d.depth = d_depth.data_ptr<float>();
  d.opacities = d_opac.data_ptr<float>();
  d.colors = d_colors.data_ptr<float>();
  d.means3D = d_means3D.data_ptr<float>();
  d.cov3D = d_cov.defined() ? d_cov.data_ptr<float>() : nullptr;
  d.shs = d_shs.defined() ? d_shs.data_ptr<float>() : nullptr;
  d.scales = d_scales.defined() ? d_scales.data_ptr<float>() : nullptr;
  d.rotations = d_rot.defined() ? d_rot.data_ptr<float>() : nullptr;
  const int* rp = radii.data_ptr<int32_t>();
  at::parallel_for(0, P, 1024, [&](int64_t a, int64_t e) {
    for (int64_t m = a; m < e; ++m) {
      float sum[NG] = {};
      for (int64_t k = b.g_off[m]; k < b.g_off[m + 1]; ++k) {
        const float* src = entry_grad.data() + b.g_entry[k] * NG;
        for (int col = 0; col < NG; ++col) sum[col] += src[col];
      }
      for (int col = 0; col < 4; ++col) d.means2D[4 * m + col] = sum[col];
      for (int col = 0; col < 3; ++col) d.conic[3 * m + col] = sum[4 + col];
      d.opacities[m] = sum[7];
      d.depth[m] = sum[8];  // dL/d(view-space z) from the depth and inverse-depth images
      for (int col = 0; col < 3; ++col) d.colors[3 * m + col] = sum[9 + col];
      // Pixel-space means2D gradients become NDC ones in place; the chain reaches the inputs.
      gsr::preprocess_backward_one((int)m, c.f, c.g, gs, rp, d);
    }
  });
  return {d_means3D, d_means2D, d_opac, d_shs, d_colors, d_scales, d_rot, d_cov};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "CPU Gaussian rasterization (forward)");
  m.def("backward", &backward, "CPU Gaussian rasterization (backward)");
}
