// The caching device allocator installed for Device::CUDA. Plain C++ header (no CUDA types).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/allocator.h"

namespace fragile::cuda {

// The process-wide caching allocator (never destroyed; see allocator.cu).
Allocator& caching_allocator();

// Installs caching_allocator() for Device::CUDA unless another allocator (e.g. a test's
// counting allocator) is already installed. Idempotent; never touches the device.
void install_caching_allocator();

// Returns every cached (free) block to the driver. Blocks in use are untouched.
void empty_cache();

// Private pools for CUDA Graph capture (graph.cu). A recorded graph keeps using the
// addresses it was recorded with, so every block allocated while capturing must stay out of
// everyone else's hands for as long as the graph lives. Between begin_graph_pool() and
// end_graph_pool() allocations come from, and frees return to, a fresh private pool (reuse
// inside the capture is safe: the graph replays in the order it was recorded); a block
// allocated earlier and freed during the capture joins the pool too. After
// end_graph_pool() the pool's blocks stay reserved; release_graph_pool() hands its free blocks
// to the shared cache, and blocks still in use follow when they are freed. One capture at a
// time.
int begin_graph_pool();
void end_graph_pool();
void release_graph_pool(int pool);

struct CacheStats {
  std::size_t bytes_in_use = 0;     // handed out and not yet returned
  std::size_t bytes_cached = 0;     // free, kept for reuse by anyone
  std::size_t bytes_reserved_by_graphs = 0;  // free, but kept for a recorded graph's pool
  std::size_t peak_bytes_in_use = 0;
  int64_t device_allocations = 0;   // cudaMalloc calls so far (cache misses)
};
CacheStats cache_stats();

}  // namespace fragile::cuda
