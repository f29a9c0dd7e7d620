// Recording and replaying max-pool winners (core/pool_decisions.h): a replayed pooling takes
// the recorded indices even where comparing would pick another input, its derivatives are
// those of max pooling with those winners (finite differences, to second order), and a replay
// that does not fit the calls it meets is an error naming the call.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/pool_decisions.h"
#include "tests/support/gradcheck.h"

namespace fragile::test {
namespace {

constexpr DType F64 = DType::Float64;

Pool2dParams two_by_two() {
  Pool2dParams p;
  p.kernel = {2, 2};
  p.stride = {2, 2};
  return p;
}

Tensor plane(const std::vector<double>& v, DType dtype = F64) {
  return Tensor::from_vector(v, {1, 1, 2, 4}, dtype);
}

std::vector<MaxPoolDecision> record_pooling(const Tensor& x) {
  RecordMaxPoolDecisions rec;
  (void)max_pool2d(x, two_by_two());
  return rec.decisions();
}

void expect_error_containing(const std::function<void()>& f, const std::string& part) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

TEST(MaxPoolDecisions, RecordKeepsEveryCallsInputAndWinnersInOrder) {
  const Tensor a = plane({1, 2, 8, 7, 3, 4, 6, 5});
  const Tensor b = plane({9, 0, 0, 0, 0, 0, 0, 1});
  RecordMaxPoolDecisions rec;
  (void)max_pool2d(a, two_by_two());
  (void)max_pool2d_with_indices(b, two_by_two());
  ASSERT_EQ(rec.decisions().size(), 2u);
  EXPECT_EQ(rec.decisions()[0].indices.to_vector(), (std::vector<double>{5, 2}));
  EXPECT_EQ(rec.decisions()[0].input.to_vector(), a.to_vector());
  EXPECT_EQ(rec.decisions()[1].indices.to_vector(), (std::vector<double>{0, 7}));
}

TEST(MaxPoolDecisions, ReplayTakesTheRecordedWinnersNotTheLargest) {
  const auto decisions = record_pooling(plane({1, 2, 8, 7, 3, 4, 6, 5}));  // winners 5, 2
  const Tensor other = plane({9, 0, 0, 0, 0, 0.5, 0, 1});  // would win: 0, 7
  ReplayMaxPoolDecisions replay(decisions);
  const PoolResult r = max_pool2d_with_indices(other, two_by_two());
  EXPECT_EQ(r.indices.to_vector(), (std::vector<double>{5, 2}));
  EXPECT_EQ(r.values.to_vector(), (std::vector<double>{0.5, 0}));
  EXPECT_EQ(replay.replayed(), 1u);
}

TEST(MaxPoolDecisions, WithoutAScopePoolingComparesAsUsual) {
  const Tensor other = plane({9, 0, 0, 0, 0, 0.5, 0, 1});
  EXPECT_EQ(max_pool2d(other, two_by_two()).to_vector(), (std::vector<double>{9, 1}));
}

// A float64 run's winners replayed in float32: the use the scopes exist for.
TEST(MaxPoolDecisions, WinnersRecordedInFloat64ReplayInFloat32) {
  const auto decisions = record_pooling(plane({1, 2, 8, 7, 3, 4, 6, 5}));
  ReplayMaxPoolDecisions replay(decisions);
  const Tensor y = max_pool2d(plane({1, 2, 8, 7, 3, 4, 6, 5}, DType::Float32), two_by_two());
  EXPECT_EQ(y.dtype(), DType::Float32);
  EXPECT_EQ(y.to_vector(), (std::vector<double>{4, 8}));
}

// Replayed pooling routes gradients to the recorded winners, to second order: checked by
// finite differences on f(x) = pool(x * x) with winners that are not the maxima of x * x.
TEST(MaxPoolDecisions, ReplayedPoolingIsDifferentiableToSecondOrder) {
  const auto decisions = record_pooling(plane({1, 2, 8, 7, 3, 4, 6, 5}));
  const TensorFn fn = [&](const std::vector<Tensor>& in) {
    ReplayMaxPoolDecisions replay(decisions);
    return max_pool2d(mul(in[0], in[0]), two_by_two());
  };
  Tensor x = plane({0.3, -1.2, 0.7, 2.0, -0.4, 0.9, 1.5, -0.8});
  x.set_requires_grad(true);
  EXPECT_TRUE(gradcheck(fn, {x}));
  EXPECT_TRUE(gradgradcheck(fn, {x}));
  // d/dx sum(pool(x^2)) = 2 x at the winners (5 and 2), zero elsewhere.
  const Tensor g = grad({sum(fn({x}))}, {x})[0];
  EXPECT_EQ(g.to_vector(), (std::vector<double>{0, 0, 1.4, 0, 0, 1.8, 0, 0}));
}

TEST(MaxPoolDecisions, ReplayThatDoesNotFitIsAnErrorNamingTheCall) {
  const auto decisions = record_pooling(plane({1, 2, 8, 7, 3, 4, 6, 5}));
  {
    ReplayMaxPoolDecisions replay(decisions);
    (void)max_pool2d(plane({1, 2, 3, 4, 5, 6, 7, 8}), two_by_two());
    expect_error_containing([] { (void)max_pool2d(plane({1, 2, 3, 4, 5, 6, 7, 8}), two_by_two()); },
                            "max-pool call 2 has no recorded decision (1 were recorded)");
  }
  {
    ReplayMaxPoolDecisions replay(decisions);
    const Tensor wide = Tensor::zeros({1, 1, 2, 6}, F64);
    expect_error_containing([&] { (void)max_pool2d(wide, two_by_two()); },
                            "call 1 pools [1,1,2,6] to [1,1,1,3], the recorded call "
                            "pooled [1,1,2,4] to [1,1,1,2]");
  }
}

TEST(MaxPoolDecisions, ReplayWithAnotherWindowOfTheSameShapeIsAnError) {
  Pool2dParams three = two_by_two();  // [1,1,2,4] -> [1,1,1,2] too, with a 2x3 window
  three.kernel = {2, 3};
  three.padding = {0, 1};
  const auto decisions = record_pooling(plane({1, 2, 8, 7, 3, 4, 6, 5}));
  ReplayMaxPoolDecisions replay(decisions);
  expect_error_containing([&] { (void)max_pool2d(plane({1, 2, 3, 4, 5, 6, 7, 8}), three); },
                          "call 1 pools with kernel 2x3 stride 2x2 padding 0x1, the recorded "
                          "call with kernel 2x2 stride 2x2 padding 0x0");
}

// A recording made while replaying holds the replayed winners: replays chain.
TEST(MaxPoolDecisions, RecordingDuringAReplayKeepsTheReplayedWinners) {
  const auto decisions = record_pooling(plane({1, 2, 8, 7, 3, 4, 6, 5}));
  ReplayMaxPoolDecisions replay(decisions);
  RecordMaxPoolDecisions rec;
  (void)max_pool2d(plane({9, 0, 0, 0, 0, 0.5, 0, 1}), two_by_two());
  ASSERT_EQ(rec.decisions().size(), 1u);
  EXPECT_EQ(rec.decisions()[0].indices.to_vector(), (std::vector<double>{5, 2}));
}

TEST(MaxPoolDecisions, OneScopeOfEachKindPerThread) {
  RecordMaxPoolDecisions rec;
  expect_error_containing([] { RecordMaxPoolDecisions again; }, "another recording is active");
  ReplayMaxPoolDecisions replay({});
  expect_error_containing([] { ReplayMaxPoolDecisions again({}); }, "another replay is active");
}

}  // namespace
}  // namespace fragile::test
