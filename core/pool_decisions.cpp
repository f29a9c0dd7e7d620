#include "core/pool_decisions.h"

#include <string>
#include <utility>

#include "core/error.h"
#include "core/shape.h"

namespace fragile {
namespace {
thread_local RecordMaxPoolDecisions* t_recorder = nullptr;
thread_local ReplayMaxPoolDecisions* t_replayer = nullptr;
}  // namespace

RecordMaxPoolDecisions::RecordMaxPoolDecisions() {
  FRAGILE_CHECK(t_recorder == nullptr,
                "RecordMaxPoolDecisions: another recording is active on this thread");
  t_recorder = this;
}
RecordMaxPoolDecisions::~RecordMaxPoolDecisions() {
  if (t_recorder == this) t_recorder = nullptr;
}

void RecordMaxPoolDecisions::add(const Tensor& input, const Tensor& indices,
                                 const Pool2dParams& params) {
  decisions_.push_back({input.detach(), indices, params});
}

ReplayMaxPoolDecisions::ReplayMaxPoolDecisions(std::vector<MaxPoolDecision> decisions)
    : decisions_(std::move(decisions)) {
  FRAGILE_CHECK(t_replayer == nullptr,
                "ReplayMaxPoolDecisions: another replay is active on this thread");
  t_replayer = this;
}
ReplayMaxPoolDecisions::~ReplayMaxPoolDecisions() {
  if (t_replayer == this) t_replayer = nullptr;
}

namespace {
bool same_window(const Pool2dParams& a, const Pool2dParams& b) {
  return a.kernel == b.kernel && a.stride == b.stride && a.padding == b.padding &&
         a.ceil_mode == b.ceil_mode;
}
std::string window_str(const Pool2dParams& p) {
  return "kernel " + std::to_string(p.kernel[0]) + "x" + std::to_string(p.kernel[1]) +
         " stride " + std::to_string(p.stride[0]) + "x" + std::to_string(p.stride[1]) +
         " padding " + std::to_string(p.padding[0]) + "x" + std::to_string(p.padding[1]) +
         (p.ceil_mode ? " ceil" : "");
}
}  // namespace

Tensor ReplayMaxPoolDecisions::next(const Tensor& input, const Pool2dParams& params,
                                    const Shape& output_shape) {
  const size_t call = next_ + 1;
  FRAGILE_CHECK(next_ < decisions_.size(), "replaying max-pool decisions: max-pool call ",
                call, " has no recorded decision (", decisions_.size(), " were recorded)");
  const MaxPoolDecision& d = decisions_[next_];
  FRAGILE_CHECK(d.input.shape() == input.shape() && d.indices.shape() == output_shape,
                "replaying max-pool decisions: call ", call, " pools ",
                shape_str(input.shape()), " to ", shape_str(output_shape),
                ", the recorded call pooled ", shape_str(d.input.shape()), " to ",
                shape_str(d.indices.shape()));
  FRAGILE_CHECK(same_window(d.params, params), "replaying max-pool decisions: call ", call,
                " pools with ", window_str(params), ", the recorded call with ",
                window_str(d.params));
  FRAGILE_CHECK(d.indices.device() == input.device(), "replaying max-pool decisions: call ",
                call, " is on ", device_name(input.device()), ", the recorded one was on ",
                device_name(d.indices.device()));
  ++next_;
  return d.indices;
}

namespace detail {
RecordMaxPoolDecisions* active_max_pool_recorder() { return t_recorder; }
ReplayMaxPoolDecisions* active_max_pool_replayer() { return t_replayer; }
}  // namespace detail

}  // namespace fragile
