// Caching device allocator: cudaMalloc/cudaFree synchronise the device and cost 10-100 us
// each, while a training or attack loop frees and re-requests the same few sizes every
// iteration. Freed blocks go onto a free list keyed by size class; a request of the same
// class takes one back without touching the driver.
//
// Size classes: requests are rounded up to 512 B, then to a quarter of their power of two
// (1024, 1280, 1536, 1792, 2048, 2560, ...): at most 25% slack, few distinct classes.
// Blocks are never split or merged (simple, and good enough when shapes repeat).
//
// Stream safety: every device operation of this engine runs on the one backend stream
// (context.h), which is ordered with the legacy default stream. A block freed on the host
// while queued work still reads it is only reused by work queued *later* on that stream,
// so no events are needed. Anyone adding streams must revisit this.
//
// Graph pools: blocks allocated during a CUDA Graph capture belong to that capture's private
// pool (allocator.h), so they are never handed to work outside the graph while it lives.
//
// Out of memory: the cache is released (cudaFree of every free block) and the allocation is
// retried once before throwing fragile::Error with the cache statistics.
// Never managed memory: plain cudaMalloc only.
#include "kernels/cuda/allocator.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/check.h"
#include "kernels/cuda/context.h"
#if defined(FRAGILE_CUDA_SIM)
#include "kernels/cuda_sim/sim.h"
#endif

namespace fragile::cuda {
namespace {

std::size_t size_class(std::size_t n) {
  constexpr std::size_t kMin = 512;
  if (n <= kMin) return kMin;
  // step = a quarter of the largest power of two below n.
  std::size_t p = std::size_t{1} << (63 - __builtin_clzll(static_cast<unsigned long long>(n - 1)));
  std::size_t step = std::max<std::size_t>(p / 4, kMin);
  return (n + step - 1) / step * step;
}

using FreeLists = std::unordered_map<std::size_t, std::vector<void*>>;  // class -> blocks

class CachingAllocator final : public Allocator {
 public:
  void* allocate(std::size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    const std::size_t cls = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    const bool pooled = active_pool_ != kShared;
    FreeLists& lists = pooled ? pools_.at(active_pool_) : free_;
    auto it = lists.find(cls);
    void* p = nullptr;
    if (it != lists.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      (pooled ? stats_.bytes_reserved_by_graphs : stats_.bytes_cached) -= cls;
#if defined(FRAGILE_CUDA_SIM)
      // The simulator makes a reused block look as a fresh one does (NaN bytes), so that a
      // kernel which leaves part of its output unwritten cannot pass on stale right values.
      if (!capturing()) fragile_sim::poison(p, nbytes);
#endif
    } else {
      p = device_malloc(cls, nbytes);
    }
    live_[p] = {cls, active_pool_};
    stats_.bytes_in_use += cls;
    stats_.peak_bytes_in_use = std::max(stats_.peak_bytes_in_use, stats_.bytes_in_use);
    return p;
  }

  // Never throws: it runs from Storage destructors, possibly during exit.
  void deallocate(void* ptr, std::size_t) override {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return;  // not ours (or a double free): ignoring beats a crash
    const Block b = it->second;
    live_.erase(it);
    stats_.bytes_in_use -= b.cls;
    // While recording, every freed block joins the recording's pool, even one allocated
    // before: the graph may have recorded a read of it, so nobody else may have it while the
    // graph lives. Otherwise a block returns to its pool, or, when that pool was released
    // (or it never had one), to the shared cache.
    const int owner = active_pool_ != kShared ? active_pool_ : b.pool;
    auto pool = owner != kShared ? pools_.find(owner) : pools_.end();
    (pool != pools_.end() ? stats_.bytes_reserved_by_graphs : stats_.bytes_cached) += b.cls;
    (pool != pools_.end() ? pool->second : free_)[b.cls].push_back(ptr);
  }

  int begin_graph_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    FRAGILE_CHECK(active_pool_ == kShared, "a CUDA Graph capture is already in progress");
    active_pool_ = next_pool_++;
    pools_[active_pool_];
    return active_pool_;
  }

  void end_graph_pool() {
    std::lock_guard<std::mutex> lock(mu_);
    active_pool_ = kShared;
  }

  void release_graph_pool(int pool) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pools_.find(pool);
    if (it == pools_.end()) return;
    for (auto& [cls, blocks] : it->second) {
      auto& shared = free_[cls];
      shared.insert(shared.end(), blocks.begin(), blocks.end());
      stats_.bytes_reserved_by_graphs -= cls * blocks.size();
      stats_.bytes_cached += cls * blocks.size();
    }
    pools_.erase(it);
    if (active_pool_ == pool) active_pool_ = kShared;
  }

  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  CacheStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

 private:
  void* device_malloc(std::size_t cls, std::size_t requested) {
    void* p = nullptr;
    cudaError_t st = cudaMalloc(&p, cls);
    // Retry after releasing the cache, except while a graph is being recorded: freeing then
    // would wait for a stream that is capturing. The capture fails instead, and the caller's
    // eager fallback gets the retry.
    if (st == cudaErrorMemoryAllocation && active_pool_ == kShared) {
      (void)cudaGetLastError();  // clear the sticky-free error state before retrying
      release_cached_locked();
      st = cudaMalloc(&p, cls);
    }
    if (st != cudaSuccess) {
      (void)cudaGetLastError();
      FRAGILE_FAIL("CUDA allocation of ", requested, " bytes (class ", cls,
                   ") failed: ", cudaGetErrorString(st), "; in use ", stats_.bytes_in_use,
                   " bytes, cached ", stats_.bytes_cached, " bytes");
    }
    ++stats_.device_allocations;
    return p;
  }

  void release_cached_locked() {
    // A free block may still be read by queued work (a graph replay writes its pool's blocks
    // until it finishes, and released pools join this cache): wait for the stream first.
    if (cudaStreamSynchronize(stream()) != cudaSuccess) {
      (void)cudaGetLastError();
      return;  // keep the cache rather than free memory the device may still touch
    }
    for (auto& [cls, blocks] : free_) {
      std::vector<void*> kept;
      for (void* p : blocks) {
        if (cudaFree(p) == cudaSuccess) {
          stats_.bytes_cached -= cls;
        } else {
          (void)cudaGetLastError();
          kept.push_back(p);  // still ours: losing track of it would leak it for good
        }
      }
      blocks = std::move(kept);
    }
  }

  static constexpr int kShared = 0;  // the pool id of the shared cache
  struct Block {
    std::size_t cls;
    int pool;
  };

  std::mutex mu_;
  FreeLists free_;                              // the shared cache
  std::unordered_map<int, FreeLists> pools_;    // graph pools still reserved
  std::unordered_map<void*, Block> live_;       // handed-out block -> class and pool
  int active_pool_ = kShared;                   // where allocations come from now
  int next_pool_ = 1;
  CacheStats stats_;
};

CachingAllocator& instance() {
  // Leaked on purpose: Storage objects destroyed during static destruction still call
  // deallocate(), and the CUDA runtime may already be gone then, so nothing is freed at exit.
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

}  // namespace

Allocator& caching_allocator() { return instance(); }

void install_caching_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    Allocator* prev = set_allocator(Device::CUDA, &instance());
    if (prev != nullptr && prev != &instance()) set_allocator(Device::CUDA, prev);
  });
}

int begin_graph_pool() { return instance().begin_graph_pool(); }
void end_graph_pool() { instance().end_graph_pool(); }
void release_graph_pool(int pool) { instance().release_graph_pool(pool); }

void empty_cache() { instance().empty_cache(); }
CacheStats cache_stats() { return instance().stats(); }

}  // namespace fragile::cuda
