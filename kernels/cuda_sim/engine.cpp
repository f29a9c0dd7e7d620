// The execution engine of the host simulator: runs a grid of simulated threads on the calling
// OS thread, one block at a time.
//
// A block whose threads meet at __syncthreads or exchange values through warp shuffles needs
// its threads to run interleaved: each simulated thread is then a fiber (ucontext) with its
// own stack, and the scheduler below resumes the fibers in thread order until each one
// finishes or stops at a barrier, then releases the barriers every thread concerned has
// reached. Threads stopped at barriers that can never all be released (some at __syncthreads,
// others at a shuffle or finished) are a deadlock on a GPU: here an error naming the block.
//
// Most kernels use neither: the first block a kernel runs shows whether it does, and blocks of
// kernels that did not are run as a plain loop over the threads (a fiber switch costs about a
// microsecond). A kernel that reaches a barrier only in a later block fails loudly instead of
// being run wrongly.
#include <ucontext.h>

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
#include "kernels/cuda_sim/launch.h"
#include "kernels/cuda_sim/sim.h"
#include "kernels/cuda_sim/stream.h"

namespace fragile_sim {
namespace {

constexpr int kWarp = 32;
constexpr std::size_t kStackBytes = 64 * 1024;

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
  ucontext_t context;
  uint3 thread;
  State state = State::Ready;
  std::exception_ptr error;
  // The pending shuffle: this lane's value and request; the result once released.
  unsigned mask = 0;
  Shuffle kind = Shuffle::Down;
  int arg = 0, width = kWarp;
  std::uint64_t value = 0, result = 0;
};

// The block being run with fibers on this OS thread (null: plain loop, no barriers allowed).
struct BlockRun {
  ucontext_t scheduler;
  std::vector<Fiber> fibers;
  Fiber* current = nullptr;
  const std::function<void()>* thread = nullptr;
  bool used_barriers = false;
};
thread_local BlockRun* g_block = nullptr;

// Fiber stacks, kept between blocks and launches.
thread_local std::vector<std::unique_ptr<char[]>> g_stacks;

struct Counters {
  std::mutex mu;
  std::unordered_map<const void*, bool> uses_barriers;  // kernel -> known answer
  Stats stats;
};
Counters& counters() {
  static Counters* c = new Counters();
  return *c;
}

void fiber_main() {
  BlockRun& run = *g_block;
  Fiber& self = *run.current;
  try {
    (*run.thread)();
  } catch (...) {
    self.error = std::current_exception();
  }
  self.state = State::Done;
  // Returning resumes uc_link: the scheduler.
}

void yield_to_scheduler(Fiber& self) { swapcontext(&self.context, &g_block->scheduler); }

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
  // A source outside the mask is undefined on a GPU; here it reads the lane's own value.
  if (src < 0 || src >= static_cast<int>(lanes.size()) || lanes[src] == nullptr) src = lane;
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

// A function of its own: getcontext returns twice in principle, which would make the caller's
// loop variables suspect; here nothing is live across it.
[[gnu::noinline]] void init_fiber(Fiber& f, char* stack, ucontext_t* scheduler) {
  getcontext(&f.context);
  f.context.uc_stack.ss_sp = stack;
  f.context.uc_stack.ss_size = kStackBytes;
  f.context.uc_link = scheduler;
  makecontext(&f.context, fiber_main, 0);
}

// Runs one block with a fiber per thread. Returns whether any thread used a barrier.
bool run_block_with_fibers(const std::function<void()>& thread, const dim3& block) {
  BlockRun run;
  run.thread = &thread;
  const int n = static_cast<int>(block.x * block.y * block.z);
  run.fibers.resize(n);
  while (static_cast<int>(g_stacks.size()) < n)
    g_stacks.push_back(std::make_unique<char[]>(kStackBytes));
  for (int i = 0; i < n; ++i) {
    Fiber& f = run.fibers[i];
    f.thread = uint3(i % block.x, i / block.x % block.y, i / (block.x * block.y));
    init_fiber(f, g_stacks[i].get(), &run.scheduler);
  }
  BlockRun* outer = g_block;
  g_block = &run;
  struct Restore {
    BlockRun* outer;
    ~Restore() { g_block = outer; }
  } restore{outer};
  const std::string name = block_name(blockIdx);

  for (;;) {
    bool ran = false;
    for (Fiber& f : run.fibers) {
      if (f.state != State::Ready) continue;
      run.current = &f;
      set_thread(f.thread);
      swapcontext(&run.scheduler, &f.context);
      ran = true;
      if (f.error) std::rethrow_exception(f.error);
    }
    int live = 0, at_sync = 0, at_shuffle = 0;
    for (const Fiber& f : run.fibers) {
      live += f.state != State::Done;
      at_sync += f.state == State::AtSyncthreads;
      at_shuffle += f.state == State::AtShuffle;
    }
    if (live == 0) break;
    if (at_sync == live) {
      for (Fiber& f : run.fibers)
        if (f.state == State::AtSyncthreads) f.state = State::Ready;
      continue;
    }
    bool released = false;
    for (int w = 0; w * kWarp < n; ++w) released |= release_shuffle(run, w, name);
    if (released || ran) continue;
    throw std::runtime_error(name + ": deadlock: of " + std::to_string(n) + " threads, " +
                             std::to_string(at_sync) + " wait at __syncthreads, " +
                             std::to_string(at_shuffle) + " at a warp shuffle, " +
                             std::to_string(n - live) + " have returned");
  }
  return run.used_barriers;
}

void run_block_in_order(const std::function<void()>& thread, const dim3& block) {
  for (unsigned z = 0; z < block.z; ++z)
    for (unsigned y = 0; y < block.y; ++y)
      for (unsigned x = 0; x < block.x; ++x) {
        set_thread(uint3(x, y, z));
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
  const dim3 saved_grid = gridDim, saved_block = blockDim;
  gridDim = grid;
  blockDim = block;
  int64_t fiber_blocks = 0, plain_blocks = 0;
  try {
    for (unsigned bz = 0; bz < grid.z; ++bz)
      for (unsigned by = 0; by < grid.y; ++by)
        for (unsigned bx = 0; bx < grid.x; ++bx) {
          blockIdx = uint3(bx, by, bz);
          if (known == 0) {
            try {
              run_block_in_order(thread, block);
            } catch (const BarrierOutsideFibers&) {
              fail(where, block_name(blockIdx) +
                              ": reached __syncthreads or a shuffle, which its first block "
                              "never did; the simulator ran it as a barrier-free kernel");
            }
            ++plain_blocks;
          } else {
            const bool used = run_block_with_fibers(thread, block);
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
    if (std::string(e.what()).rfind("CUDA simulator:", 0) == 0) throw;
    fail(where, e.what());
  }
  gridDim = saved_grid;
  blockDim = saved_block;
  std::lock_guard<std::mutex> lock(c.mu);
  c.stats.launches += 1;
  c.stats.fiber_blocks += fiber_blocks;
  c.stats.plain_blocks += plain_blocks;
  c.stats.threads += (fiber_blocks + plain_blocks) * int64_t(block.x) * block.y * block.z;
}

}  // namespace

void sync_block() {
  if (g_block == nullptr) throw BarrierOutsideFibers();
  g_block->used_barriers = true;
  Fiber& self = *g_block->current;
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
