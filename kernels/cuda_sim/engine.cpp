// The execution engine of the host simulator: runs a grid of simulated threads on the calling
// OS thread, one block at a time.
//
// A block whose threads meet at __syncthreads or exchange values through warp shuffles needs
// its threads to run interleaved: each simulated thread is then a fiber (fiber_context.h) with
// its own stack, and the scheduler below resumes the fibers in thread order until each one
// finishes or stops at a barrier, then releases the barriers every thread concerned has
// reached. Threads stopped at barriers that can never all be released (some at __syncthreads,
// others at a shuffle or finished) are a deadlock on a GPU: here an error naming the block.
//
// Fibers run warp by warp: a warp runs (its shuffles released as its lanes reach them) until
// every lane waits at __syncthreads or has returned, then the next warp runs. So a warp reads
// another warp's shared-memory writes only across a __syncthreads, as on a GPU. Blocks, warps
// and the threads of barrier-free blocks run in ascending order on one launch and descending
// on the next, so that code relying on an execution order it is not promised (a missing
// barrier, blocks reading each other's output) gives different answers on different launches.
//
// Most kernels use neither: the first block a kernel runs shows whether it does, and blocks of
// kernels that did not are run as a plain loop over the threads (cheaper still than a fiber
// switch, which costs a few nanoseconds on x86-64 and about a microsecond through ucontext). A kernel that reaches a barrier only in a later block fails loudly instead of
// being run wrongly.
#include <sys/mman.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cuda_sim/device.h"
#include "kernels/cuda_sim/fiber_context.h"
#include "kernels/cuda_sim/launch.h"
#include "kernels/cuda_sim/sim.h"
#include "kernels/cuda_sim/stream.h"

namespace fragile_sim {
namespace {

constexpr int kWarp = 32;
constexpr std::size_t kStackBytes = 64 * 1024;  // the kernels' frames are a few hundred bytes
constexpr std::size_t kGuardBytes = 4096;        // PROT_NONE below each stack: overflow faults

[[noreturn]] void fail(const std::source_location& where, const std::string& what) {
  std::ostringstream os;
  os << "CUDA simulator: kernel launched at " << where.file_name() << ":" << where.line() << ": "
     << what;
  throw std::runtime_error(os.str());
}

std::string block_name(const dim3& b) {
  std::ostringstream os;
  os << "block (" << b.x << "," << b.y << "," << b.z << ")";
  return os.str();
}

enum class State { Ready, AtSyncthreads, AtShuffle, Done };

struct Fiber {
  FiberContext context;
  uint3 thread;
  State state = State::Ready;
  std::source_location barrier;  // the __syncthreads it waits at
  std::exception_ptr error;
  // The pending shuffle: this lane's value and request; the result once released.
  unsigned mask = 0;
  Shuffle kind = Shuffle::Down;
  int arg = 0, width = kWarp;
  std::uint64_t value = 0, result = 0;
};

// The block being run with fibers on this OS thread (null: plain loop, no barriers allowed).
struct BlockRun {
  FiberContext scheduler;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  const std::function<void()>* thread = nullptr;
  bool used_barriers = false;
};
thread_local BlockRun* g_block = nullptr;

// A fiber stack with a guard page below it (stacks grow down), kept between blocks.
struct Stack {
  char* base = nullptr;  // the guard page; the stack is the kStackBytes after it
  Stack() {
    void* p = mmap(nullptr, kGuardBytes + kStackBytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("CUDA simulator: no memory for fiber stacks");
    base = static_cast<char*>(p);
    mprotect(base, kGuardBytes, PROT_NONE);
  }
  ~Stack() { munmap(base, kGuardBytes + kStackBytes); }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  char* stack() const { return base + kGuardBytes; }
};
thread_local std::vector<std::unique_ptr<Stack>> g_stacks;

// Counts blocks run on this OS thread: shared arrays are poisoned once per block.
thread_local uint64_t g_block_serial = 0;
thread_local std::unordered_map<void*, uint64_t> g_poisoned;  // array -> block serial

// Alternates between launches (see the file comment).
std::atomic<uint64_t> g_launches{0};

struct Counters {
  std::mutex mu;
  std::unordered_map<const void*, bool> uses_barriers;  // kernel -> known answer
  Stats stats;
};
Counters& counters() {
  static Counters* c = new Counters();
  return *c;
}

// A fiber's whole life. It never returns (there is no frame to return to): once done it
// switches to the scheduler, which never resumes it.
[[noreturn]] void fiber_main() {
  BlockRun& run = *g_block;
  Fiber& self = *run.current;
  try {
    (*run.thread)();
  } catch (...) {
    self.error = std::current_exception();
  }
  self.state = State::Done;
  switch_fiber(self.context, run.scheduler);
  __builtin_unreachable();
}

void yield_to_scheduler(Fiber& self) { switch_fiber(self.context, g_block->scheduler); }

std::uint64_t shuffle_result(const std::vector<Fiber*>& lanes, int lane) {
  const Fiber& f = *lanes[lane];
  const int w = f.width;
  const int base = lane / w * w;  // first lane of this lane's segment
  int src = lane;
  switch (f.kind) {
    case Shuffle::Down:
      src = lane % w + f.arg < w ? lane + f.arg : lane;
      break;
    case Shuffle::Up:
      src = lane % w - f.arg >= 0 ? lane - f.arg : lane;
      break;
    case Shuffle::Xor:
      src = lane ^ f.arg;
      if (src / w > lane / w) src = lane;  // later segments are out of reach
      break;
    case Shuffle::Index:
      src = base + ((f.arg % w) + w) % w;
      break;
  }
  // Inside the lane's segment but not in the mask: undefined on a GPU, all-ones bits (NaN)
  // here, so that a kernel depending on it fails.
  if (lanes[src] == nullptr) return ~std::uint64_t{0};
  return lanes[src]->value;
}

std::string hex(unsigned v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

// Releases a shuffle of warp `w` once every lane its mask names has reached it (the lanes a
// mask leaves out may be elsewhere). Returns whether it released one. A mask that names a
// lane which has returned or does not exist, or lanes that wait with different masks for
// each other, are errors: on a GPU the shuffle would hang or read garbage.
bool release_shuffle(BlockRun& run, int w, const std::string& block) {
  const int n = static_cast<int>(run.fibers.size());
  const int first = w * kWarp, last = std::min(n, first + kWarp);
  std::vector<Fiber*> lanes(kWarp, nullptr);  // lanes waiting at a shuffle
  for (int t = first; t < last; ++t)
    if (run.fibers[t].state == State::AtShuffle) lanes[t - first] = &run.fibers[t];
  const std::string warp = block + ", warp " + std::to_string(w);
  for (int l = 0; l < kWarp; ++l) {
    if (lanes[l] == nullptr) continue;
    const unsigned mask = lanes[l]->mask;
    if (!(mask >> l & 1u))
      throw std::runtime_error(warp + ": lane " + std::to_string(l) + " shuffles with mask " +
                               hex(mask) + ", which leaves it out");
    const int width = lanes[l]->width;
    if (width <= 0 || width > kWarp || (width & (width - 1)) != 0)
      throw std::runtime_error(warp + ": shuffle width " + std::to_string(width) +
                               " is not a power of two up to 32");
    bool complete = true;
    for (int m = 0; m < kWarp; ++m) {
      if (!(mask >> m & 1u)) continue;
      if (first + m >= last)
        throw std::runtime_error(warp + ": shuffle mask " + hex(mask) + " names lane " +
                                 std::to_string(m) + ", which does not exist (partial warp)");
      const Fiber& other = run.fibers[first + m];
      if (other.state == State::Done)
        throw std::runtime_error(warp + ": shuffle mask " + hex(mask) + " names lane " +
                                 std::to_string(m) + ", which has already returned");
      if (other.state != State::AtShuffle) {
        complete = false;
        continue;
      }
      if (other.mask != mask)
        throw std::runtime_error(warp + ": lanes " + std::to_string(l) + " and " +
                                 std::to_string(m) + " wait for each other with masks " +
                                 hex(mask) + " and " + hex(other.mask));
    }
    if (!complete) continue;
    std::vector<Fiber*> group(kWarp, nullptr);
    for (int m = 0; m < kWarp; ++m)
      if (mask >> m & 1u) group[m] = lanes[m];
    for (int m = 0; m < kWarp; ++m)
      if (group[m]) group[m]->result = shuffle_result(group, m);
    for (Fiber* f : group)
      if (f) f->state = State::Ready;
    return true;
  }
  return false;
}

void set_thread(const uint3& t) { threadIdx = t; }

std::string site(const std::source_location& w) {
  return std::string(w.file_name()) + ":" + std::to_string(w.line());
}

// Runs the ready lanes of warp `w`, and releases its shuffles, until none of its lanes can
// move: each waits at __syncthreads or has returned. Returns whether anything ran.
bool run_warp(BlockRun& run, int w, const std::string& name) {
  const int n = static_cast<int>(run.fibers.size());
  const int first = w * kWarp, last = std::min(n, first + kWarp);
  bool progressed = false;
  for (;;) {
    bool ran = false;
    for (int t = first; t < last; ++t) {
      Fiber& f = run.fibers[t];
      if (f.state != State::Ready) continue;
      run.current = &f;
      set_thread(f.thread);
      switch_fiber(run.scheduler, f.context);
      ran = true;
      if (f.error) std::rethrow_exception(f.error);
    }
    const bool released = release_shuffle(run, w, name);
    if (!ran && !released) return progressed;
    progressed = true;
  }
}

// Runs one block with a fiber per thread. Returns whether any thread used a barrier.
bool run_block_with_fibers(const std::function<void()>& thread, const dim3& block,
                           bool reverse) {
  BlockRun run;
  run.thread = &thread;
  const int n = static_cast<int>(block.x * block.y * block.z);
  run.fibers.resize(n);
  while (static_cast<int>(g_stacks.size()) < n) g_stacks.push_back(std::make_unique<Stack>());
  for (int i = 0; i < n; ++i) {
    Fiber& f = run.fibers[i];
    f.thread = uint3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
    start_fiber(f.context, g_stacks[i]->stack(), kStackBytes, fiber_main, run.scheduler);
  }
  BlockRun* outer = g_block;
  g_block = &run;
  struct Restore {
    BlockRun* outer;
    ~Restore() { g_block = outer; }
  } restore{outer};
  const std::string name = block_name(blockIdx);
  const int warps = (n + kWarp - 1) / kWarp;

  for (;;) {
    bool progressed = false;
    for (int i = 0; i < warps; ++i) progressed |= run_warp(run, reverse ? warps - 1 - i : i, name);
    int live = 0, at_sync = 0, at_shuffle = 0;
    const Fiber* waiting = nullptr;
    for (const Fiber& f : run.fibers) {
      live += f.state != State::Done;
      at_shuffle += f.state == State::AtShuffle;
      if (f.state != State::AtSyncthreads) continue;
      ++at_sync;
      if (waiting == nullptr) {
        waiting = &f;
      } else if (f.barrier.line() != waiting->barrier.line() ||
                 f.barrier.column() != waiting->barrier.column() ||
                 std::strcmp(f.barrier.file_name(), waiting->barrier.file_name()) != 0) {
        throw std::runtime_error(name + ": threads wait at different __syncthreads (" +
                                 site(waiting->barrier) + " and " + site(f.barrier) + ")");
      }
    }
    if (live == 0) break;
    if (at_sync == live) {
      for (Fiber& f : run.fibers)
        if (f.state == State::AtSyncthreads) f.state = State::Ready;
      continue;
    }
    if (progressed) continue;
    throw std::runtime_error(name + ": deadlock: of " + std::to_string(n) + " threads, " +
                             std::to_string(at_sync) + " wait at __syncthreads, " +
                             std::to_string(at_shuffle) + " at a warp shuffle, " +
                             std::to_string(n - live) + " have returned");
  }
  return run.used_barriers;
}

void run_block_in_order(const std::function<void()>& thread, const dim3& block, bool reverse) {
  const uint64_t n = uint64_t(block.x) * block.y * block.z;
  for (uint64_t k = 0; k < n; ++k) {
    const uint64_t i = reverse ? n - 1 - k : k;
    set_thread(uint3(unsigned(i % block.x), unsigned(i / block.x % block.y),
                     unsigned(i / (uint64_t(block.x) * block.y))));
    thread();
  }
}

void run_now(const void* kernel, const std::source_location& where, dim3 grid, dim3 block,
             const std::function<void()>& thread) {
  Counters& c = counters();
  int known = -1;  // -1 unknown, 0 no barriers, 1 barriers
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.uses_barriers.find(kernel);
    if (it != c.uses_barriers.end()) known = it->second;
  }
  // One launch at a time per process: shared arrays are function statics.
  static std::mutex one_launch_at_a_time;
  std::lock_guard<std::mutex> launch_lock(one_launch_at_a_time);
  const bool reverse = g_launches.fetch_add(1) % 2 == 1;
  const dim3 saved_grid = gridDim, saved_block = blockDim;
  BlockRun* const saved_run = g_block;
  g_block = nullptr;  // a barrier in a plain block must not reach an enclosing fiber block
  gridDim = grid;
  blockDim = block;
  int64_t fiber_blocks = 0, plain_blocks = 0;
  try {
    const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
    for (uint64_t k = 0; k < blocks; ++k) {
      const uint64_t b = reverse ? blocks - 1 - k : k;
      blockIdx = uint3(unsigned(b % grid.x), unsigned(b / grid.x % grid.y),
                       unsigned(b / (uint64_t(grid.x) * grid.y)));
      ++g_block_serial;
      if (known == 0) {
        try {
          run_block_in_order(thread, block, reverse);
        } catch (const BarrierOutsideFibers&) {
          fail(where, block_name(blockIdx) +
                          ": reached __syncthreads or a shuffle, which its first block "
                          "never did; the simulator ran it as a barrier-free kernel");
        }
        ++plain_blocks;
      } else {
        const bool used = run_block_with_fibers(thread, block, reverse);
        ++fiber_blocks;
        if (known == -1) {
          known = used ? 1 : 0;
          std::lock_guard<std::mutex> lock(c.mu);
          c.uses_barriers[kernel] = used;
        }
      }
    }
  } catch (const std::runtime_error& e) {
    gridDim = saved_grid;
    blockDim = saved_block;
    g_block = saved_run;
    if (std::string(e.what()).rfind("CUDA simulator:", 0) == 0) throw;
    fail(where, e.what());
  }
  gridDim = saved_grid;
  blockDim = saved_block;
  g_block = saved_run;
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.launches += 1;
  c.stats.fiber_blocks += fiber_blocks;
  c.stats.plain_blocks += plain_blocks;
  c.stats.threads += (fiber_blocks + plain_blocks) * int64_t(block.x) * block.y * block.z;
}

}  // namespace

void poison_shared(void* array, std::size_t bytes) {
  uint64_t& last = g_poisoned[array];
  if (last == g_block_serial) return;
  last = g_block_serial;
  std::memset(array, 0xff, bytes);
}

void sync_block(const std::source_location& where) {
  if (g_block == nullptr) throw BarrierOutsideFibers();
  g_block->used_barriers = true;
  Fiber& self = *g_block->current;
  self.barrier = where;
  self.state = State::AtSyncthreads;
  yield_to_scheduler(self);
}

std::uint64_t shuffle(unsigned mask, std::uint64_t bits, Shuffle kind, int arg, int width) {
  if (g_block == nullptr) throw BarrierOutsideFibers();
  g_block->used_barriers = true;
  Fiber& self = *g_block->current;
  self.mask = mask;
  self.value = bits;
  self.kind = kind;
  self.arg = arg;
  self.width = width;
  self.state = State::AtShuffle;
  yield_to_scheduler(self);
  return self.result;
}

void run_grid(const void* kernel, const std::source_location& where, dim3 grid, dim3 block,
              cudaStream_t stream, std::function<void()> thread) {
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535 ||
      threads == 0 || threads > 1024 || block.z > 64) {
    std::ostringstream os;
    os << "invalid configuration: grid (" << grid.x << "," << grid.y << "," << grid.z
       << "), block (" << block.x << "," << block.y << "," << block.z << ")";
    record_launch_error(cudaErrorInvalidConfiguration, os.str());
    return;
  }
  const cudaError_t st = enqueue(
      stream,
      [kernel, where, grid, block, thread = std::move(thread)] {
        run_now(kernel, where, grid, block, thread);
      },
      "kernel launch");
  if (st != cudaSuccess) record_launch_error(st, "kernel launch on an invalidated capture");
}

void check_device_argument(const void* p, int index, const std::source_location& where) {
  if (p != nullptr && !is_device_pointer(p))
    fail(where, "argument " + std::to_string(index) +
                    " is a pointer outside device memory (a host pointer would fault on a GPU)");
}

Stats stats() {
  Counters& c = counters();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.stats;
}

}  // namespace fragile_sim
