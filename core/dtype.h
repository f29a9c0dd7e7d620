// Element types. float32 and float64 carry values and gradients; int64 exists only for
// non-differentiable index tensors (max-pool argmax, class targets).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"

namespace fragile {

enum class DType { Float32, Float64, Int64 };

inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Int64: return 8;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::Float64: return "float64";
    case DType::Int64: return "int64";
  }
  return "?";
}

inline bool is_floating(DType t) { return t == DType::Float32 || t == DType::Float64; }

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::Float64; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::Int64; };

}  // namespace fragile

// Runs the body with `scalar_t` bound to the C++ type of a floating dtype.
#define FRAGILE_DISPATCH_FLOAT(DT, NAME, ...)                                          \
  [&] {                                                                                \
    switch (DT) {                                                                      \
      case ::fragile::DType::Float32: { using scalar_t = float; return __VA_ARGS__(); }  \
      case ::fragile::DType::Float64: { using scalar_t = double; return __VA_ARGS__(); } \
      default:                                                                         \
        FRAGILE_FAIL(NAME, ": expected a float32 or float64 tensor, got ",             \
                     ::fragile::dtype_name(DT));                                       \
    }                                                                                  \
  }()
