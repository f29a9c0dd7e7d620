// Pluggable allocators. Storage asks the allocator registered for its device; the CUDA backend
// installs a caching allocator for Device::CUDA, tests may install counting allocators.
#pragma once
#include <cstddef>

#include "core/device.h"

namespace fragile {

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t nbytes) = 0;
  virtual void deallocate(void* ptr, std::size_t nbytes) = 0;
};

// 64-byte aligned host memory (one cache line; enough for AVX-512 loads).
Allocator& cpu_allocator();

// The allocator used for new storage on `device`. Never null for CPU; for CUDA it is set by the
// CUDA backend, and asking for it in a CPU-only build throws.
Allocator& allocator_for(Device device);
// Replaces the allocator for a device; returns the previous one (null if none). Not thread-safe
// with concurrent allocation: install allocators at start-up.
Allocator* set_allocator(Device device, Allocator* allocator);

}  // namespace fragile
