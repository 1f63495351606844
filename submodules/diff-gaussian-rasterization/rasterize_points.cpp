// Torch glue for the rasterizer: validates tensors, owns the buffers, exposes _C.
#include <torch/extension.h>

#include <tuple>
#include <vector>

#include "cuda_rasterizer/rasterizer.h"

namespace {

using torch::Tensor;

void check_input(const Tensor& t, const char* name) {
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// An optional per-Gaussian input: a defined, non-empty tensor, or nullptr.
const float* optional_ptr(const Tensor& t, const char* name) {
  if (!t.defined() || t.numel() == 0) return nullptr;
  check_input(t, name);
  return t.data_ptr<float>();
}

// Buffer callback: grows a uint8 tensor in place.
gsr::BufferFn grower(Tensor& t) {
  return [&t](size_t n) {
    t.resize_({static_cast<int64_t>(n)});
    return reinterpret_cast<char*>(t.data_ptr());
  };
}

gsr::Camera make_camera(const Tensor& bg, const Tensor& viewmatrix, const Tensor& projmatrix,
                        const Tensor& campos, double tanfovx, double tanfovy, int64_t H,
                        int64_t W, double scale_modifier, double mult,
                        const std::vector<double>& frustum, bool antialiasing) {
  check_input(bg, "bg");
  check_input(viewmatrix, "viewmatrix");
  check_input(projmatrix, "projmatrix");
  check_input(campos, "campos");
  TORCH_CHECK(bg.numel() == 3 && campos.numel() == 3, "bg and campos must have 3 elements");
  TORCH_CHECK(viewmatrix.numel() == 16 && projmatrix.numel() == 16, "matrices must be 4x4");
  TORCH_CHECK(H > 0 && W > 0 && H < 65536 && W < 65536, "image size must be in [1, 65535]");
  gsr::Camera cam;
  cam.width = static_cast<int>(W);
  cam.height = static_cast<int>(H);
  cam.tanfovx = static_cast<float>(tanfovx);
  cam.tanfovy = static_cast<float>(tanfovy);
  cam.viewmatrix = viewmatrix.data_ptr<float>();
  cam.projmatrix = projmatrix.data_ptr<float>();
  cam.campos = campos.data_ptr<float>();
  cam.bg = bg.data_ptr<float>();
  cam.scale_modifier = static_cast<float>(scale_modifier);
  cam.mult = static_cast<float>(mult);
  TORCH_CHECK(frustum.size() == 4, "frustum must hold 4 limits (left, right, top, bottom)");
  for (int k = 0; k < 4; ++k) cam.frustum[k] = static_cast<float>(frustum[k]);
  cam.antialiasing = antialiasing;
  return cam;
}

gsr::Gaussians make_gaussians(const Tensor& means3D, const Tensor& opacities, const Tensor& shs,
                              int64_t sh_degree, const Tensor& colors_precomp,
                              const Tensor& scales, const Tensor& rotations,
                              const Tensor& cov3D_precomp) {
  check_input(means3D, "means3D");
  check_input(opacities, "opacities");
  const int64_t P = means3D.size(0);
  TORCH_CHECK(means3D.dim() == 2 && means3D.size(1) == 3, "means3D must be (N,3)");
  TORCH_CHECK(opacities.numel() == P, "opacities must be (N,1)");
  TORCH_CHECK(sh_degree >= 0 && sh_degree <= 3, "sh_degree must be in 0..3");
  gsr::Gaussians g;
  g.count = static_cast<int>(P);
  g.means3D = means3D.data_ptr<float>();
  g.opacities = opacities.data_ptr<float>();
  g.sh_degree = static_cast<int>(sh_degree);
  g.shs = optional_ptr(shs, "shs");
  g.colors_precomp = optional_ptr(colors_precomp, "colors_precomp");
  g.scales = optional_ptr(scales, "scales");
  g.rotations = optional_ptr(rotations, "rotations");
  g.cov3D_precomp = optional_ptr(cov3D_precomp, "cov3D_precomp");
  if (P == 0) return g;
  TORCH_CHECK((g.shs == nullptr) != (g.colors_precomp == nullptr),
              "pass exactly one of shs / colors_precomp");
  if (g.shs) {
    TORCH_CHECK(shs.dim() == 3 && shs.size(0) == P && shs.size(2) == 3, "shs must be (N,K,3)");
    g.sh_coeffs = static_cast<int>(shs.size(1));
    TORCH_CHECK(g.sh_coeffs >= (sh_degree + 1) * (sh_degree + 1), "shs has too few coefficients");
  } else {
    TORCH_CHECK(colors_precomp.numel() == 3 * P, "colors_precomp must be (N,3)");
  }
  if (g.cov3D_precomp) {
    TORCH_CHECK(cov3D_precomp.numel() == 6 * P, "cov3D_precomp must be (N,6)");
    g.scales = g.rotations = nullptr;
  } else {
    TORCH_CHECK(g.scales && g.rotations, "pass scales and rotations, or cov3D_precomp");
    TORCH_CHECK(scales.numel() == 3 * P && rotations.numel() == 4 * P,
                "scales must be (N,3) and rotations (N,4)");
  }
  return g;
}

std::tuple<int64_t, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
rasterize_forward(const Tensor& bg, const Tensor& means3D, const Tensor& colors_precomp,
                  const Tensor& opacities, const Tensor& scales, const Tensor& rotations,
                  double scale_modifier, const Tensor& cov3D_precomp, const Tensor& viewmatrix,
                  const Tensor& projmatrix, double tanfovx, double tanfovy, int64_t H, int64_t W,
                  const Tensor& shs, int64_t sh_degree, const Tensor& campos, double mult,
                  const std::vector<double>& frustum, const Tensor& metric_map,
                  bool antialiasing, bool debug) {
  const gsr::Camera cam = make_camera(bg, viewmatrix, projmatrix, campos, tanfovx, tanfovy, H,
                                      W, scale_modifier, mult, frustum, antialiasing);
  const gsr::Gaussians g = make_gaussians(means3D, opacities, shs, sh_degree, colors_precomp,
                                          scales, rotations, cov3D_precomp);
  const auto fopt = means3D.options();
  const auto iopt = fopt.dtype(torch::kInt32);
  const auto bopt = fopt.dtype(torch::kUInt8);
  const int64_t P = means3D.size(0);

  const uint8_t* metric = nullptr;
  if (metric_map.defined() && metric_map.numel() > 0) {
    TORCH_CHECK(metric_map.is_cuda() && metric_map.scalar_type() == torch::kUInt8 &&
                    metric_map.is_contiguous() && metric_map.numel() == H * W,
                "metric_map must be a contiguous (H,W) uint8 CUDA tensor");
    metric = metric_map.data_ptr<uint8_t>();
  }

  Tensor color = torch::empty({3, H, W}, fopt);
  Tensor depth = torch::empty({1, H, W}, fopt);
  Tensor alpha = torch::empty({1, H, W}, fopt);
  Tensor invdepth = torch::empty({1, H, W}, fopt);
  Tensor radii = torch::zeros({P}, iopt);
  Tensor counts = torch::zeros({P}, iopt);
  Tensor geom = torch::empty({0}, bopt);
  Tensor binning = torch::empty({0}, bopt);
  Tensor image = torch::empty({0}, bopt);

  gsr::ForwardOutputs out;
  out.color = color.data_ptr<float>();
  out.depth = depth.data_ptr<float>();
  out.alpha = alpha.data_ptr<float>();
  out.invdepth = invdepth.data_ptr<float>();
  out.radii = radii.data_ptr<int>();
  out.metric_counts = counts.data_ptr<int>();
  const int rendered = gsr::forward(means3D.get_device(), cam, g, metric, grower(geom),
                                    grower(binning), grower(image), out, debug);
  return {rendered, color, radii, depth, alpha, counts, invdepth, geom, binning, image};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
rasterize_backward(const Tensor& bg, const Tensor& means3D, const Tensor& radii,
                   const Tensor& colors_precomp, const Tensor& opacities, const Tensor& scales,
                   const Tensor& rotations, double scale_modifier, const Tensor& cov3D_precomp,
                   const Tensor& viewmatrix, const Tensor& projmatrix, double tanfovx,
                   double tanfovy, const Tensor& dL_dcolor, const Tensor& dL_ddepth,
                   const Tensor& dL_dalpha, const Tensor& dL_dinvdepth, const Tensor& shs,
                   int64_t sh_degree, const Tensor& campos, double mult,
                   const std::vector<double>& frustum, Tensor geom, int64_t num_rendered,
                   Tensor binning, Tensor image, bool antialiasing, bool debug) {
  const int64_t H = dL_dcolor.size(1), W = dL_dcolor.size(2);
  const gsr::Camera cam = make_camera(bg, viewmatrix, projmatrix, campos, tanfovx, tanfovy, H,
                                      W, scale_modifier, mult, frustum, antialiasing);
  const gsr::Gaussians g = make_gaussians(means3D, opacities, shs, sh_degree, colors_precomp,
                                          scales, rotations, cov3D_precomp);
  check_input(dL_dcolor, "dL_dcolor");
  check_input(dL_ddepth, "dL_ddepth");
  check_input(dL_dalpha, "dL_dalpha");
  check_input(dL_dinvdepth, "dL_dinvdepth");
  TORCH_CHECK(radii.is_cuda() && radii.scalar_type() == torch::kInt32, "radii must be int32 CUDA");
  const int64_t P = means3D.size(0);
  const auto fopt = means3D.options();
  const int64_t K = g.shs ? shs.size(1) : 0;

  Tensor d_means2D = torch::zeros({P, 4}, fopt);
  Tensor d_conic = torch::zeros({P, 3}, fopt);
  Tensor d_depth = torch::zeros({P}, fopt);
  Tensor d_opacities = torch::zeros({P, 1}, fopt);
  Tensor d_colors = torch::zeros({P, 3}, fopt);
  Tensor d_means3D = torch::zeros({P, 3}, fopt);
  Tensor d_cov3D = torch::zeros({P, 6}, fopt);
  Tensor d_shs = torch::zeros({P, K, 3}, fopt);
  Tensor d_scales = torch::zeros({P, 3}, fopt);
  Tensor d_rotations = torch::zeros({P, 4}, fopt);

  gsr::Gradients grads;
  grads.means2D = d_means2D.data_ptr<float>();
  grads.conic = d_conic.data_ptr<float>();
  grads.depth = d_depth.data_ptr<float>();
  grads.opacities = d_opacities.data_ptr<float>();
  grads.colors = d_colors.data_ptr<float>();
  grads.means3D = d_means3D.data_ptr<float>();
  grads.cov3D = d_cov3D.data_ptr<float>();
  grads.shs = d_shs.data_ptr<float>();
  grads.scales = d_scales.data_ptr<float>();
  grads.rotations = d_rotations.data_ptr<float>();
  if (P > 0) {
    gsr::backward(means3D.get_device(), cam, g, static_cast<int>(num_rendered),
                  reinterpret_cast<char*>(geom.data_ptr()),
                  reinterpret_cast<char*>(binning.data_ptr()),
                  reinterpret_cast<char*>(image.data_ptr()), radii.data_ptr<int>(),
                  dL_dcolor.data_ptr<float>(), dL_ddepth.data_ptr<float>(),
                  dL_dalpha.data_ptr<float>(), dL_dinvdepth.data_ptr<float>(), grads, debug);
  }
  return {d_means2D, d_colors, d_opacities, d_means3D, d_cov3D, d_shs, d_scales, d_rotations};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Tile-based differentiable Gaussian rasterizer (docs/RASTERIZER.md)";
  m.def("rasterize_gaussians", &rasterize_forward, "Forward pass");
  m.def("rasterize_gaussians_backward", &rasterize_backward, "Backward pass");
}
