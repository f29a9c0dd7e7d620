// Recording and replaying the winners of max pooling.
//
// Max pooling is smooth except where two inputs of a window tie; there its derivative jumps
// (the gradient goes to one input or the other). Near a tie, which side a computation lands
// on is decided by rounding: in a softplus GoogLeNet, a handful of windows have their top two
// inputs within 1e-6 of each other, float32 and float64 pick different winners there, and the
// float32 input gradient moves by 6e-3 of its maximum while being accurate to 1e-5 on either
// side (tests/nn/test_models.cpp). To compare two precisions, or two engines, on the same
// piece of the piecewise-smooth function, record the winners one run takes and replay them
// in the other: a replayed max_pool2d takes the recorded indices instead of comparing, and is
// then exactly max_pool2d_gather(x, indices), with the same derivatives as max_pool2d.
//
// Both scopes are per thread, one of each at a time, and cover max_pool2d and
// max_pool2d_with_indices (not the backward ops, which already take indices). A replay must
// meet the same sequence of poolings as the recording: record and replay the same
// computation (DeepLIFT and guided backprop, for instance, pool several times per forward;
// a plain forward's recording does not fit them, and says so at the first call past it).
#pragma once

#include <cstddef>
#include <vector>

#include "core/backend.h"
#include "core/tensor.h"

namespace fragile {

struct MaxPoolDecision {
  Tensor input;    // the pooled input, detached (kept so that a caller can inspect the ties)
  // int64, the winners: flat h * W + w in the input plane, each inside its own window (as
  // max_pool2d makes them; the backward relies on it: the CPU refuses others, CUDA drops them)
  Tensor indices;
  Pool2dParams params;
};

// Records every max pooling's winners, in call order, while alive (replayed ones included).
class RecordMaxPoolDecisions {
 public:
  RecordMaxPoolDecisions();
  ~RecordMaxPoolDecisions();
  RecordMaxPoolDecisions(const RecordMaxPoolDecisions&) = delete;
  RecordMaxPoolDecisions& operator=(const RecordMaxPoolDecisions&) = delete;

  const std::vector<MaxPoolDecision>& decisions() const { return decisions_; }
  void add(const Tensor& input, const Tensor& indices, const Pool2dParams& params);

 private:
  std::vector<MaxPoolDecision> decisions_;
};

// Makes the max poolings take recorded winners, in call order, while alive. A call whose
// input shape, window or device differs from the recorded one, or one more call than was
// recorded, is an error naming the call.
class ReplayMaxPoolDecisions {
 public:
  explicit ReplayMaxPoolDecisions(std::vector<MaxPoolDecision> decisions);
  ~ReplayMaxPoolDecisions();
  ReplayMaxPoolDecisions(const ReplayMaxPoolDecisions&) = delete;
  ReplayMaxPoolDecisions& operator=(const ReplayMaxPoolDecisions&) = delete;

  // The recorded indices for the next call, pooling `input` with `params` to `output_shape`.
  Tensor next(const Tensor& input, const Pool2dParams& params, const Shape& output_shape);
  size_t replayed() const { return next_; }
  size_t recorded() const { return decisions_.size(); }

 private:
  std::vector<MaxPoolDecision> decisions_;
  size_t next_ = 0;
};

namespace detail {
// The scopes active on this thread (null when none): for the max-pool ops.
RecordMaxPoolDecisions* active_max_pool_recorder();
ReplayMaxPoolDecisions* active_max_pool_replayer();
}  // namespace detail

}  // namespace fragile
