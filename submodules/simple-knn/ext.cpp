// Torch glue for simple_knn._C.distCUDA2.
#include <torch/extension.h>

#include "knn/knn.h"

namespace {

torch::Tensor distCUDA2(const torch::Tensor& points) {
  TORCH_CHECK(points.is_cuda(), "distCUDA2: points must be a CUDA tensor");
  TORCH_CHECK(points.dim() == 2 && points.size(1) == 3, "distCUDA2: points must be (N,3)");
  const torch::Tensor pts = points.to(torch::kFloat32).contiguous();
  const int64_t n = pts.size(0);
  TORCH_CHECK(n < (int64_t(1) << 31), "distCUDA2: too many points");
  torch::Tensor out = torch::zeros({n}, pts.options());
  if (n == 0) return out;

  // Bounding box of the finite points decides the grid (one host sync).
  torch::Tensor finite = pts.isfinite().all(1);
  torch::Tensor fp = finite.all().item<bool>() ? pts : pts.index({finite});
  float lo[3] = {0.f, 0.f, 0.f}, hi[3] = {0.f, 0.f, 0.f};
  if (fp.size(0) > 0) {
    const torch::Tensor lo_t = std::get<0>(fp.min(0)).cpu(), hi_t = std::get<0>(fp.max(0)).cpu();
    for (int k = 0; k < 3; ++k) {
      lo[k] = lo_t[k].item<float>();
      hi[k] = hi_t[k].item<float>();
    }
  }
  torch::Tensor scratch = torch::empty({0}, pts.options().dtype(torch::kUInt8));
  sknn::mean_dist3(pts.get_device(), static_cast<int>(n), pts.data_ptr<float>(), lo, hi,
                   [&scratch](size_t bytes) {
                     scratch.resize_({static_cast<int64_t>(bytes)});
                     return reinterpret_cast<char*>(scratch.data_ptr());
                   },
                   out.data_ptr<float>());
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Nearest-neighbour distances for Gaussian initialisation";
  m.def("distCUDA2", &distCUDA2, "Mean squared distance to the 3 nearest neighbours, (N,3) -> (N,)");
}
