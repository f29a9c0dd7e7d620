// Geometry shared by the CUDA pooling kernels (max_pool2d.cu, avg_pool2d.cu).
// Plain C++ header; the struct is passed to kernels by value.
//
// Shapes (NCHW): x [N, C, H, W] ("full"), y / grad / indices [N, C, Ho, Wo] ("pooled");
// a "plane" is one (n, c) image. Window (oh, ow) covers input rows [oh*sh - ph, + KH) clipped
// to the input, columns likewise; Ho, Wo come from pool_out_size (PyTorch's formula).
#pragma once
#include <cstdint>

#include "core/backend.h"
#include "core/error.h"

namespace fragile::cuda {

struct PoolGeom {
  int64_t planes;  // N * C
  int64_t H, W, Ho, Wo;
  int64_t KH, KW, sh, sw, ph, pw;
};

// full [N, C, H, W] and pooled [N, C, Ho, Wo] must agree with the window parameters.
inline PoolGeom make_pool_geom(const Shape& full, const Shape& pooled, const Pool2dParams& p,
                               const char* what) {
  FRAGILE_CHECK(full.size() == 4 && pooled.size() == 4, what,
                ": expected 4-d input and output, got ", shape_str(full), " and ",
                shape_str(pooled));
  PoolGeom g{};
  g.planes = full[0] * full[1];
  g.H = full[2];
  g.W = full[3];
  g.KH = p.kernel[0];
  g.KW = p.kernel[1];
  g.sh = p.stride[0];
  g.sw = p.stride[1];
  g.ph = p.padding[0];
  g.pw = p.padding[1];
  g.Ho = pool_out_size(g.H, g.KH, g.sh, g.ph, p.ceil_mode);
  g.Wo = pool_out_size(g.W, g.KW, g.sw, g.pw, p.ceil_mode);
  FRAGILE_CHECK(pooled[0] == full[0] && pooled[1] == full[1] && pooled[2] == g.Ho &&
                    pooled[3] == g.Wo,
                what, ": pooled shape ", shape_str(pooled), " does not match input ",
                shape_str(full), " (expected [", full[0], ", ", full[1], ", ", g.Ho, ", ", g.Wo,
                "])");
  return g;
}

}  // namespace fragile::cuda
