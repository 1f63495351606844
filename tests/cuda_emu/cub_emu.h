// Emulated cub::DeviceRadixSort::SortPairs and cub::DeviceScan (sums): the same results as CUB
// (stable LSD radix sort on key bits [begin_bit, end_bit), exact integer prefix sums) and the
// same two-phase temporary-storage protocol: a null d_temp_storage only reports the bytes
// needed; a real call needs at least that much and uses it as its scratch space, so a buffer
// carved too small is caught by AddressSanitizer like on a GPU it would corrupt memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "cuda_emu.h"

namespace cub {
namespace emu_detail {

inline size_t align_up(size_t n) { return (n + 255) & ~size_t(255); }

// Unsigned bit pattern that orders like the key (CUB's twiddling for signed and float keys).
template <typename K>
inline uint64_t ordered_bits(K k) {
  if constexpr (std::is_floating_point<K>::value) {
    using U = std::conditional_t<sizeof(K) == 4, uint32_t, uint64_t>;
    U u;
    std::memcpy(&u, &k, sizeof u);
    const U sign = U(1) << (8 * sizeof(U) - 1);
    return uint64_t((u & sign) ? ~u : (u | sign));
  } else if constexpr (std::is_signed<K>::value) {
    using U = std::make_unsigned_t<K>;
    return uint64_t(U(k) ^ (U(1) << (8 * sizeof(U) - 1)));
  } else {
    return uint64_t(k);
  }
}

}  // namespace emu_detail

struct DeviceRadixSort {
  template <typename K, typename V>
  static cudaError_t SortPairs(void* d_temp_storage, size_t& temp_storage_bytes,
                               const K* d_keys_in, K* d_keys_out, const V* d_values_in,
                               V* d_values_out, int num_items, int begin_bit = 0,
                               int end_bit = int(sizeof(K) * 8), cudaStream_t = nullptr,
                               bool = false) {
    static_assert(std::is_arithmetic<K>::value, "radix sort of arithmetic keys only");
    const size_t n = num_items > 0 ? size_t(num_items) : 0;
    const size_t need = emu_detail::align_up(n * sizeof(K)) + emu_detail::align_up(n * sizeof(V)) + 256;
    if (d_temp_storage == nullptr) {
      temp_storage_bytes = need;
      return cudaSuccess;
    }
    if (temp_storage_bytes < need || begin_bit < 0 || end_bit > int(sizeof(K) * 8) ||
        begin_bit > end_bit || num_items < 0)
      return cudaErrorInvalidValue;
    if (n == 0) return cudaSuccess;
    K* keys_alt = static_cast<K*>(d_temp_storage);
    V* vals_alt = reinterpret_cast<V*>(static_cast<char*>(d_temp_storage) +
                                       emu_detail::align_up(n * sizeof(K)));
    std::memmove(d_keys_out, d_keys_in, n * sizeof(K));
    std::memmove(d_values_out, d_values_in, n * sizeof(V));
    K* ks = d_keys_out;
    V* vs = d_values_out;
    K* kd = keys_alt;
    V* vd = vals_alt;
    for (int bit = begin_bit; bit < end_bit; bit += 8) {  // stable counting sort per digit
      const int width = end_bit - bit < 8 ? end_bit - bit : 8;
      const uint64_t digit_mask = (uint64_t(1) << width) - 1;
      size_t count[257] = {0};
      for (size_t i = 0; i < n; ++i) ++count[((emu_detail::ordered_bits(ks[i]) >> bit) & digit_mask) + 1];
      for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
      for (size_t i = 0; i < n; ++i) {
        const size_t at = count[(emu_detail::ordered_bits(ks[i]) >> bit) & digit_mask]++;
        kd[at] = ks[i];
        vd[at] = vs[i];
      }
      std::swap(ks, kd);
      std::swap(vs, vd);
    }
    if (ks != d_keys_out) {
      std::memcpy(d_keys_out, ks, n * sizeof(K));
      std::memcpy(d_values_out, vs, n * sizeof(V));
    }
    return cudaSuccess;
  }
};

struct DeviceScan {
  template <typename In, typename Out>
  static cudaError_t InclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes, In d_in,
                                  Out d_out, int num_items, cudaStream_t = nullptr, bool = false) {
    return scan(d_temp_storage, temp_storage_bytes, d_in, d_out, num_items, true);
  }
  template <typename In, typename Out>
  static cudaError_t ExclusiveSum(void* d_temp_storage, size_t& temp_storage_bytes, In d_in,
                                  Out d_out, int num_items, cudaStream_t = nullptr, bool = false) {
    return scan(d_temp_storage, temp_storage_bytes, d_in, d_out, num_items, false);
  }

 private:
  template <typename In, typename Out>
  static cudaError_t scan(void* d_temp_storage, size_t& temp_storage_bytes, In d_in, Out d_out,
                          int num_items, bool inclusive) {
    // CUB's accumulator is the input value type: unsigned sums wrap the same way.
    using T = std::decay_t<decltype(d_in[0])>;
    if (d_temp_storage == nullptr) {
      temp_storage_bytes = 256;
      return cudaSuccess;
    }
    if (temp_storage_bytes < 256 || num_items < 0) return cudaErrorInvalidValue;
    std::memset(d_temp_storage, 0, 256);  // touch it: a too-small carve is an ASan error
    T acc = T(0);
    for (int i = 0; i < num_items; ++i) {
      const T v = d_in[i];  // read before the write: in-place scans are allowed
      if (inclusive) {
        acc = T(acc + v);
        d_out[i] = acc;
      } else {
        d_out[i] = acc;
        acc = T(acc + v);
      }
    }
    return cudaSuccess;
  }
};

}  // namespace cub
