#include "core/accumulation.h"

namespace fragile {
namespace {
thread_local Float32Sums g_float32_sums = Float32Sums::Float32;
}  // namespace

Float32Sums float32_sums() { return g_float32_sums; }
void set_float32_sums(Float32Sums sums) { g_float32_sums = sums; }
const char* float32_sums_name(Float32Sums sums) {
  return sums == Float32Sums::Float64 ? "float64" : "float32";
}

Float32SumsScope::Float32SumsScope(Float32Sums sums) : prev_(g_float32_sums) {
  g_float32_sums = sums;
}
Float32SumsScope::~Float32SumsScope() { g_float32_sums = prev_; }

}  // namespace fragile
