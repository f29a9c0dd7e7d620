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

class CachingAllocator final : public Allocator {
 public:
  void* allocate(std::size_t nbytes) override {
    if (nbytes == 0) return nullptr;
    const std::size_t cls = size_class(nbytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(cls);
    void* p = nullptr;
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= cls;
    } else {
      p = device_malloc(cls, nbytes);
    }
    live_[p] = cls;
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
    const std::size_t cls = it->second;
    live_.erase(it);
    stats_.bytes_in_use -= cls;
    stats_.bytes_cached += cls;
    free_[cls].push_back(ptr);
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
    if (st == cudaErrorMemoryAllocation) {
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
    for (auto& [cls, blocks] : free_) {
      for (void* p : blocks) (void)cudaFree(p);  // cudaFree waits for the device first
      stats_.bytes_cached -= cls * blocks.size();
      blocks.clear();
    }
    free_.clear();
  }

  std::mutex mu_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;  // size class -> free blocks
  std::unordered_map<void*, std::size_t> live_;               // block -> size class
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

void empty_cache() { instance().empty_cache(); }
CacheStats cache_stats() { return instance().stats(); }

}  // namespace fragile::cuda
