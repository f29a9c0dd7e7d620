#include "core/allocator.h"

#include <cstdlib>
#include <new>

#include "core/error.h"

namespace fragile {
namespace {

class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    std::size_t rounded = (nbytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) FRAGILE_FAIL("out of host memory allocating ", nbytes, " bytes");
    return p;
  }
  void deallocate(void* ptr, std::size_t) override { std::free(ptr); }
};

Allocator* g_allocators[2] = {nullptr, nullptr};

}  // namespace

Allocator& cpu_allocator() {
  static CpuAllocator a;
  return a;
}

Allocator& allocator_for(Device device) {
  Allocator* a = g_allocators[static_cast<int>(device)];
  if (a) return *a;
  if (device == Device::CPU) return cpu_allocator();
  FRAGILE_FAIL("no allocator for device '", device_name(device),
               "': this build has no CUDA backend or it was not initialised");
}

Allocator* set_allocator(Device device, Allocator* allocator) {
  Allocator* prev = g_allocators[static_cast<int>(device)];
  g_allocators[static_cast<int>(device)] = allocator;
  return prev;
}

}  // namespace fragile
