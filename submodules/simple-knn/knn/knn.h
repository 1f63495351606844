// Mean squared distance to the 3 nearest neighbours, on a uniform grid (exact search).
// Plain C++ interface: the torch glue includes it, knn.cu implements it.
#pragma once

#include <cstddef>
#include <functional>

namespace sknn {

// Grows a caller-owned device scratch buffer to at least `bytes`; returns its address.
using BufferFn = std::function<char*(size_t)>;

// points: (n,3) float32 on the device; lo/hi: host bounding box of the finite points;
// out: (n,) device. A point with fewer than 3 others averages over those it has (0 if alone);
// a non-finite point gets NaN.
// Throws std::runtime_error on a CUDA error.
void mean_dist3(int device, int n, const float* points, const float lo[3], const float hi[3],
                BufferFn scratch, float* out);

}  // namespace sknn
