// StorageObserver (core/tensor.h): what CUDA Graph capture relies on to keep alive every
// buffer a recorded kernel touches.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "core/ops.h"
#include "core/tensor.h"

namespace fragile {
namespace {

bool saw(const std::vector<std::weak_ptr<Storage>>& seen, const Tensor& t) {
  return std::any_of(seen.begin(), seen.end(), [&](const std::weak_ptr<Storage>& w) {
    return !w.owner_before(t.storage()) && !t.storage().owner_before(w);
  });
}

TEST(StorageObserver, NotesEveryBufferAKernelIsHanded) {
  const Tensor a = Tensor::full({4}, 2.0), b = Tensor::full({4}, 3.0);
  const Tensor unrelated = Tensor::zeros({4});
  std::vector<std::weak_ptr<Storage>> seen;
  Tensor c;
  {
    StorageObserver observe(&seen);
    c = mul(a, b);
  }
  EXPECT_TRUE(saw(seen, a));
  EXPECT_TRUE(saw(seen, b));
  EXPECT_TRUE(saw(seen, c));
  EXPECT_FALSE(saw(seen, unrelated));
  // Only while the observer lives, and weakly: nothing is kept alive by it.
  const size_t n = seen.size();
  (void)add(a, b);
  EXPECT_EQ(seen.size(), n);
  const std::weak_ptr<Storage> weak = c.storage();
  c = Tensor();
  EXPECT_TRUE(weak.expired());
}

TEST(StorageObserver, DoesNotNest) {
  std::vector<std::weak_ptr<Storage>> seen, again;
  StorageObserver observe(&seen);
  EXPECT_THROW(StorageObserver inner(&again), Error);
}

}  // namespace
}  // namespace fragile
