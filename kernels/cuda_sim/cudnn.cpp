// cuDNN stand-in (see cudnn_api.h for the contract).
//
// Every failure leaves its reason for cudnnGetLastErrorString, so a failing test names the
// argument at fault. What real cuDNN would silently get wrong on a GPU (host pointers, an
// output aliasing an input, a workspace overlapping a tensor) is refused as BAD_PARAM here.
//
// Algorithms: each query offers two, both usable: [0] algo 0, non-deterministic, no
// workspace; [1] algo 1, deterministic, kWorkspace bytes of workspace. A caller that prefers
// determinism therefore has to skip the first entry and provide a workspace; the
// convolution checks both. Other algo values are valid enums the simulator does not
// implement (NOT_SUPPORTED). All algorithms compute the same result, accumulating in double
// in one fixed order, and the closure scribbles over the workspace as a real kernel would,
// so a workspace that is still in use elsewhere shows up as corrupted data.
#include "kernels/cuda_sim/cudnn_api.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/cuda_sim/stream.h"

struct FragileSimCudnn {
  cudaStream_t stream = nullptr;
};
struct FragileSimCudnnTensor {
  bool set = false;
  cudnnDataType_t dt = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
};
struct FragileSimCudnnFilter {
  bool set = false;
  cudnnDataType_t dt = CUDNN_DATA_FLOAT;
  int k = 0, c = 0, h = 0, w = 0;
};
struct FragileSimCudnnConv {
  bool set = false;  // by cudnnSetConvolution2dDescriptor; group count and math type default
  int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  int groups = 1;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

using fragile_sim::CudnnMode;
constexpr size_t kWorkspace = 4096;  // what the deterministic algorithm (1) needs

std::atomic<CudnnMode> g_mode{CudnnMode::Supported};
std::atomic<int64_t> g_calls{0};
thread_local std::string t_last_error;

cudnnStatus_t fail(cudnnStatus_t st, std::string why) {
  t_last_error = std::move(why);
  return st;
}
std::string cat(const char* fn, const std::string& why) { return std::string(fn) + ": " + why; }
std::string dims(int64_t a, int64_t b, int64_t c, int64_t d) {
  // Appends rather than chains operator+ (GCC 12 warns, wrongly, about the chained form).
  std::string s = "[";
  for (int64_t v : {a, b, c}) s.append(std::to_string(v)).append(",");
  return s.append(std::to_string(d)).append("]");
}
const char* type_name(cudnnDataType_t t) {
  switch (t) {
    case CUDNN_DATA_FLOAT: return "FLOAT";
    case CUDNN_DATA_DOUBLE: return "DOUBLE";
    case CUDNN_DATA_HALF: return "HALF";
    case CUDNN_DATA_INT8: return "INT8";
    case CUDNN_DATA_INT32: return "INT32";
    case CUDNN_DATA_BFLOAT16: return "BFLOAT16";
  }
  return "?";
}
// FLOAT and DOUBLE are computed; the other declared types are real but not simulated.
cudnnStatus_t check_type(const char* fn, cudnnDataType_t t) {
  if (t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_DOUBLE) return CUDNN_STATUS_SUCCESS;
  if (std::strcmp(type_name(t), "?") != 0)
    return fail(CUDNN_STATUS_NOT_SUPPORTED,
                cat(fn, std::string("the simulator computes FLOAT and DOUBLE only, not ") +
                            type_name(t)));
  return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "unknown data type " + std::to_string(int(t))));
}
cudnnStatus_t check_format(const char* fn, cudnnTensorFormat_t f) {
  if (f == CUDNN_TENSOR_NCHW) return CUDNN_STATUS_SUCCESS;
  if (f == CUDNN_TENSOR_NHWC)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, cat(fn, "the simulator supports NCHW only"));
  return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "unknown format " + std::to_string(int(f))));
}

float to_tf32(float f) {  // round-to-nearest-even to TF32's 10-bit mantissa
  if (!std::isfinite(f)) return f;
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0xFFFu + ((u >> 13) & 1u);
  return std::bit_cast<float>(u & 0xFFFFE000u);
}

enum class Kind { Forward, BackwardData, BackwardFilter };

// A validated problem: x [N, C, H, W], w [K, C/G, KH, KW], y [N, K, Ho, Wo].
struct Geom {
  int64_t N, C, H, W, K, KH, KW, Ho, Wo, G, ph, pw, u, v, dh, dw;
  bool flip;  // CUDNN_CONVOLUTION: the filter is applied rotated by 180 degrees
  bool tf32;  // float data without CUDNN_FMA_MATH (see cudnn_api.h)
  cudnnDataType_t dt;
  int64_t x_count() const { return N * C * H * W; }
  int64_t w_count() const { return K * (C / G) * KH * KW; }
  int64_t y_count() const { return N * K * Ho * Wo; }
};

// Operand names as the three calls call them (x/w/y of the forward problem).
struct Names {
  const char *x, *w, *y;
};
Names names(Kind k) {
  if (k == Kind::Forward) return {"x", "w", "y"};
  if (k == Kind::BackwardData) return {"dx", "w", "dy"};
  return {"x", "dw", "dy"};
}

cudnnStatus_t check(const char* fn, Kind kind, cudnnHandle_t h, const FragileSimCudnnTensor* x,
                    const FragileSimCudnnFilter* w, const FragileSimCudnnConv* c,
                    const FragileSimCudnnTensor* y, Geom* g) {
  const Names nm = names(kind);
  const auto bad = [&](const std::string& why) {
    return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, why));
  };
  if (!h) return bad("null handle");
  if (!x || !w || !c || !y) return bad("null descriptor");
  if (!x->set || !w->set || !c->set || !y->set) return bad("a descriptor was never set");
  if (x->dt != w->dt || x->dt != y->dt)
    return bad(std::string("data types differ: ") + nm.x + " " + type_name(x->dt) + ", " +
               nm.w + " " + type_name(w->dt) + ", " + nm.y + " " + type_name(y->dt));
  if (c->compute != x->dt)
    return bad(std::string("compute type ") + type_name(c->compute) + " for " +
               type_name(x->dt) + " data (expected " + type_name(x->dt) + ")");
  const int G = c->groups;
  if (x->c != w->c * G)
    return bad(std::string(nm.x) + " has " + std::to_string(x->c) + " channels, expected " +
               nm.w + ".c * groups = " + std::to_string(w->c) + " * " + std::to_string(G));
  if (w->k % G != 0)
    return bad(std::string(nm.w) + ".k = " + std::to_string(w->k) +
               " is not a multiple of groups = " + std::to_string(G));
  const int64_t span_h = int64_t(c->dil_h) * (w->h - 1) + 1;  // dilated filter extent
  const int64_t span_w = int64_t(c->dil_w) * (w->w - 1) + 1;
  const int64_t in_h = x->h + 2LL * c->pad_h, in_w = x->w + 2LL * c->pad_w;
  if (span_h > in_h || span_w > in_w)
    return bad("dilated filter " + std::to_string(span_h) + "x" + std::to_string(span_w) +
               " exceeds padded input " + std::to_string(in_h) + "x" + std::to_string(in_w));
  const int64_t Ho = (in_h - span_h) / c->u + 1, Wo = (in_w - span_w) / c->v + 1;
  if (y->n != x->n || y->c != w->k || y->h != Ho || y->w != Wo)
    return bad(std::string(nm.y) + " is " + dims(y->n, y->c, y->h, y->w) + ", expected " +
               dims(x->n, w->k, Ho, Wo));
  *g = Geom{x->n,     x->c,     x->h,     x->w,     w->k,     w->h,
            w->w,     Ho,       Wo,       G,        c->pad_h, c->pad_w,
            c->u,     c->v,     c->dil_h, c->dil_w, c->mode == CUDNN_CONVOLUTION,
            x->dt == CUDNN_DATA_FLOAT && c->math != CUDNN_FMA_MATH, x->dt};
  return CUDNN_STATUS_SUCCESS;
}

// The workspace `algo` needs, or NOT_SUPPORTED / BAD_PARAM for algorithms not offered.
cudnnStatus_t workspace_for(const char* fn, int algo, int algo_count, size_t* bytes) {
  if (algo < 0 || algo >= algo_count)
    return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "invalid algo " + std::to_string(algo)));
  if (algo > 1)
    return fail(CUDNN_STATUS_NOT_SUPPORTED,
                cat(fn, "algo " + std::to_string(algo) + " is not implemented by the simulator"));
  *bytes = algo == 1 ? kWorkspace : 0;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t no_algorithm(const char* fn) {
  return fail(CUDNN_STATUS_NOT_SUPPORTED, cat(fn, "no algorithm (fragile_sim::CudnnMode)"));
}

template <class Perf, class Algo>
cudnnStatus_t query(const char* fn, Kind kind, cudnnHandle_t h, const FragileSimCudnnTensor* x,
                    const FragileSimCudnnFilter* w, const FragileSimCudnnConv* c,
                    const FragileSimCudnnTensor* y, int requested, int* returned, Perf* perf) {
  Geom g;
  if (const cudnnStatus_t st = check(fn, kind, h, x, w, c, y, &g); st != CUDNN_STATUS_SUCCESS)
    return st;
  if (requested < 1 || !returned || !perf)
    return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "requestedAlgoCount < 1 or null output"));
  if (g_mode.load() == CudnnMode::NoAlgorithm) return no_algorithm(fn);
  const Perf offered[2] = {
      {Algo(0), CUDNN_STATUS_SUCCESS, 1.0f, 0, CUDNN_NON_DETERMINISTIC, c->math, {}},
      {Algo(1), CUDNN_STATUS_SUCCESS, 2.0f, kWorkspace, CUDNN_DETERMINISTIC, c->math, {}}};
  *returned = std::min(requested, 2);
  std::copy(offered, offered + *returned, perf);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t workspace_query(const char* fn, Kind kind, cudnnHandle_t h,
                              const FragileSimCudnnTensor* x, const FragileSimCudnnFilter* w,
                              const FragileSimCudnnConv* c, const FragileSimCudnnTensor* y,
                              int algo, int algo_count, size_t* bytes) {
  Geom g;
  if (const cudnnStatus_t st = check(fn, kind, h, x, w, c, y, &g); st != CUDNN_STATUS_SUCCESS)
    return st;
  if (!bytes) return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "null sizeInBytes"));
  if (g_mode.load() == CudnnMode::NoAlgorithm) return no_algorithm(fn);
  return workspace_for(fn, algo, algo_count, bytes);
}

// The output positions o in [0, n_out) whose input position o * stride + offset lies in
// [0, n_in): [lo, hi). Bounds computed once per filter tap keep the inner loops branch-free.
struct Span {
  int64_t lo, hi;
};
Span valid_span(int64_t n_out, int64_t n_in, int64_t stride, int64_t offset) {
  auto ceil_div = [](int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); };
  auto floor_div = [](int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); };
  const int64_t lo = std::max<int64_t>(0, ceil_div(-offset, stride));
  const int64_t hi = std::min<int64_t>(n_out, floor_div(n_in - 1 - offset, stride) + 1);
  return {lo, std::max(lo, hi)};
}

// dest = alpha * op + beta * dest, op by kind, accumulated in double. Loops run over
// (image, output channel, input channel, filter tap, output row) with the output column
// innermost, so that the simulator's convolutions of whole models take seconds, not minutes.
template <class T>
void compute(Kind kind, const Geom& g, double alpha, double beta, const T* x, const T* w,
             const T* y, T* dest) {
  const auto widen = [&](const T* p, int64_t n) {
    std::vector<double> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_same_v<T, float>)
        v[size_t(i)] = g.tf32 ? to_tf32(p[i]) : p[i];
      else
        v[size_t(i)] = p[i];
    }
    return v;
  };
  const int64_t Cg = g.C / g.G, Kg = g.K / g.G;
  const std::vector<double> wv = widen(w, g.w_count());
  const std::vector<double> xv = kind == Kind::BackwardData ? std::vector<double>{}
                                                            : widen(x, g.x_count());
  const std::vector<double> yv = kind == Kind::Forward ? std::vector<double>{}
                                                       : widen(y, g.y_count());
  const int64_t count =
      kind == Kind::Forward ? g.y_count() : kind == Kind::BackwardData ? g.x_count() : g.w_count();
  std::vector<double> acc(size_t(count), 0.0);
  // One (image, output channel, input channel) triple: every filter tap, every output row.
  const auto accumulate = [&](int64_t n, int64_t k, int64_t c) {
    const int64_t cx = (k / Kg) * Cg + c;  // input channel: c within k's group
    const int64_t x_plane = (n * g.C + cx) * g.H * g.W;
    const int64_t y_plane = (n * g.K + k) * g.Ho * g.Wo;
    for (int64_t r = 0; r < g.KH; ++r) {
      const Span rows = valid_span(g.Ho, g.H, g.u, r * g.dh - g.ph);
      for (int64_t s = 0; s < g.KW; ++s) {
        const Span cols = valid_span(g.Wo, g.W, g.v, s * g.dw - g.pw);
        const int64_t wi = ((k * Cg + c) * g.KH + (g.flip ? g.KH - 1 - r : r)) * g.KW +
                           (g.flip ? g.KW - 1 - s : s);
        const double wt = wv[size_t(wi)];
        double tap = 0.0;  // backward filter: the tap's gradient
        for (int64_t oh = rows.lo; oh < rows.hi; ++oh) {
          const int64_t xrow = x_plane + (oh * g.u - g.ph + r * g.dh) * g.W - g.pw + s * g.dw;
          const int64_t yrow = y_plane + oh * g.Wo;
          // Indices, not pointers: xrow + ow * v is inside x only for ow in `cols`.
          if (kind == Kind::Forward) {
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
              acc[size_t(yrow + ow)] += wt * xv[size_t(xrow + ow * g.v)];
          } else if (kind == Kind::BackwardData) {
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
              acc[size_t(xrow + ow * g.v)] += wt * yv[size_t(yrow + ow)];
          } else {
            for (int64_t ow = cols.lo; ow < cols.hi; ++ow)
              tap += xv[size_t(xrow + ow * g.v)] * yv[size_t(yrow + ow)];
          }
        }
        if (kind == Kind::BackwardFilter) acc[size_t(wi)] += tap;
      }
    }
  };
  // Parallel over what each kind writes disjointly: output planes (n, k) for the forward,
  // input planes (n, input channel) for backward data, filters k for backward filter. The
  // summation order inside each stays fixed, so results do not depend on the thread count.
  if (kind == Kind::Forward) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t nk = 0; nk < g.N * g.K; ++nk)
      for (int64_t c = 0; c < Cg; ++c) accumulate(nk / g.K, nk % g.K, c);
  } else if (kind == Kind::BackwardData) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
      const int64_t n = nc / g.C, cx = nc % g.C, grp = cx / Cg;
      for (int64_t k = grp * Kg; k < (grp + 1) * Kg; ++k) accumulate(n, k, cx % Cg);
    }
  } else {
#pragma omp parallel for schedule(dynamic)
    for (int64_t k = 0; k < g.K; ++k)
      for (int64_t n = 0; n < g.N; ++n)
        for (int64_t c = 0; c < Cg; ++c) accumulate(n, k, c);
  }
  // beta == 0: dest is write-only, so NaN or garbage already there cannot propagate.
  for (int64_t i = 0; i < count; ++i)
    dest[i] = static_cast<T>(beta != 0.0 ? alpha * acc[i] + beta * dest[i] : alpha * acc[i]);
}

bool overlap(const void* a, size_t an, const void* b, size_t bn) {
  const char *pa = static_cast<const char*>(a), *pb = static_cast<const char*>(b);
  return pa < pb + bn && pb < pa + an;
}

// The three convolutions; x, w, y are the forward problem's operands, dest one of them.
cudnnStatus_t execute(const char* fn, Kind kind, cudnnHandle_t h, const void* alpha,
                      const FragileSimCudnnTensor* xd, const void* x,
                      const FragileSimCudnnFilter* wd, const void* w,
                      const FragileSimCudnnConv* cd, int algo, int algo_count, void* ws,
                      size_t ws_bytes, const void* beta, const FragileSimCudnnTensor* yd,
                      const void* y) {
  Geom g;
  if (const cudnnStatus_t st = check(fn, kind, h, xd, wd, cd, yd, &g); st != CUDNN_STATUS_SUCCESS)
    return st;
  const auto bad = [&](const std::string& why) {
    return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, why));
  };
  if (!alpha || !beta) return bad("null alpha or beta");
  size_t need = 0;
  if (const cudnnStatus_t st = workspace_for(fn, algo, algo_count, &need);
      st != CUDNN_STATUS_SUCCESS)
    return st;
  const Names nm = names(kind);
  const size_t elem = g.dt == CUDNN_DATA_DOUBLE ? sizeof(double) : sizeof(float);
  struct Operand {
    const char* name;
    const void* p;
    size_t bytes;
  };
  const Operand ops[3] = {{nm.x, x, size_t(g.x_count()) * elem},
                          {nm.w, w, size_t(g.w_count()) * elem},
                          {nm.y, y, size_t(g.y_count()) * elem}};
  for (const Operand& o : ops)
    if (!o.p || !fragile_sim::is_device_pointer(o.p, o.bytes))
      return bad(std::string(o.name) + " is not " + std::to_string(o.bytes) +
                 " bytes of device memory");
  const int di = kind == Kind::Forward ? 2 : kind == Kind::BackwardData ? 0 : 1;
  for (int i = 0; i < 3; ++i)
    if (i != di && overlap(ops[di].p, ops[di].bytes, ops[i].p, ops[i].bytes))
      return bad(std::string(ops[di].name) + " overlaps " + ops[i].name +
                 " (not computed in place)");
  if (ws_bytes < need)
    return bad("workspace of " + std::to_string(ws_bytes) + " bytes, algo " +
               std::to_string(algo) + " needs " + std::to_string(need));
  if (ws_bytes > 0) {
    if (!ws || !fragile_sim::is_device_pointer(ws, ws_bytes))
      return bad("workspace is not " + std::to_string(ws_bytes) + " bytes of device memory");
    for (const Operand& o : ops)
      if (overlap(ws, ws_bytes, o.p, o.bytes))
        return bad(std::string("workspace overlaps ") + o.name);
  }
  if (g_mode.load() == CudnnMode::RefuseAtExecution)
    return fail(CUDNN_STATUS_NOT_SUPPORTED, cat(fn, "refused (fragile_sim::CudnnMode)"));

  // Scalars are read now, in the data type (cuDNN's rule for float and double data).
  const bool dbl = g.dt == CUDNN_DATA_DOUBLE;
  const double a = dbl ? *static_cast<const double*>(alpha) : *static_cast<const float*>(alpha);
  const double b = dbl ? *static_cast<const double*>(beta) : *static_cast<const float*>(beta);
  void* dest = const_cast<void*>(ops[di].p);
  auto work = [=] {
    if (need && fragile_sim::is_device_pointer(ws, need)) std::memset(ws, 0xFF, need);
    if (dbl)
      compute(kind, g, a, b, static_cast<const double*>(x), static_cast<const double*>(w),
              static_cast<const double*>(y), static_cast<double*>(dest));
    else
      compute(kind, g, a, b, static_cast<const float*>(x), static_cast<const float*>(w),
              static_cast<const float*>(y), static_cast<float*>(dest));
    g_calls.fetch_add(1);
  };
  if (fragile_sim::enqueue(h->stream, work, fn) != cudaSuccess)
    return fail(CUDNN_STATUS_EXECUTION_FAILED, cat(fn, "the stream rejected the work"));
  return CUDNN_STATUS_SUCCESS;
}

}  // namespace

namespace fragile_sim {
CudnnMode set_cudnn_mode(CudnnMode mode) { return g_mode.exchange(mode); }
int64_t cudnn_calls() { return g_calls.load(); }
}  // namespace fragile_sim

const char* cudnnGetErrorString(cudnnStatus_t status) {
  switch (status) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED: return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_BAD_PARAM_NULL_POINTER: return "CUDNN_STATUS_BAD_PARAM_NULL_POINTER";
    case CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH: return "CUDNN_STATUS_BAD_PARAM_SHAPE_MISMATCH";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    case CUDNN_STATUS_NOT_SUPPORTED_SHAPE: return "CUDNN_STATUS_NOT_SUPPORTED_SHAPE";
    case CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE: return "CUDNN_STATUS_NOT_SUPPORTED_DATA_TYPE";
    case CUDNN_STATUS_NOT_SUPPORTED_LAYOUT: return "CUDNN_STATUS_NOT_SUPPORTED_LAYOUT";
    case CUDNN_STATUS_INTERNAL_ERROR: return "CUDNN_STATUS_INTERNAL_ERROR";
    case CUDNN_STATUS_EXECUTION_FAILED: return "CUDNN_STATUS_EXECUTION_FAILED";
  }
  return "CUDNN_UNKNOWN_STATUS_FOUND";
}

void cudnnGetLastErrorString(char* message, size_t max_size) {
  if (!message || max_size == 0) return;
  const size_t n = std::min(max_size - 1, t_last_error.size());
  std::memcpy(message, t_last_error.data(), n);
  message[n] = '\0';
  t_last_error.clear();
}

cudnnStatus_t cudnnCreate(cudnnHandle_t* handle) {
  if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreate: null handle pointer");
  *handle = new FragileSimCudnn();
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnDestroy(cudnnHandle_t handle) {
  if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnDestroy: null handle");
  delete handle;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t streamId) {
  if (!handle) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnSetStream: null handle");
  handle->stream = streamId;
  return CUDNN_STATUS_SUCCESS;
}

// Creation and destruction. Destroying a null descriptor is a no-op, as in cuDNN.
#define FRAGILE_SIM_DESCRIPTOR(Name, Type)                                               \
  cudnnStatus_t cudnnCreate##Name##Descriptor(Type** d) {                                \
    if (!d) return fail(CUDNN_STATUS_BAD_PARAM, "cudnnCreate" #Name "Descriptor: null"); \
    *d = new Type();                                                                     \
    return CUDNN_STATUS_SUCCESS;                                                         \
  }                                                                                      \
  cudnnStatus_t cudnnDestroy##Name##Descriptor(Type* d) {                                \
    delete d;                                                                            \
    return CUDNN_STATUS_SUCCESS;                                                         \
  }
FRAGILE_SIM_DESCRIPTOR(Tensor, FragileSimCudnnTensor)
FRAGILE_SIM_DESCRIPTOR(Filter, FragileSimCudnnFilter)
FRAGILE_SIM_DESCRIPTOR(Convolution, FragileSimCudnnConv)
#undef FRAGILE_SIM_DESCRIPTOR

// Setters leave the descriptor unchanged when they fail.
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t dataType, int n, int c, int h, int w) {
  const char* fn = "cudnnSetTensor4dDescriptor";
  if (!d) return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "null descriptor"));
  if (const cudnnStatus_t st = check_format(fn, format); st != CUDNN_STATUS_SUCCESS) return st;
  if (const cudnnStatus_t st = check_type(fn, dataType); st != CUDNN_STATUS_SUCCESS) return st;
  if (n <= 0 || c <= 0 || h <= 0 || w <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "non-positive extent in " + dims(n, c, h, w)));
  // cuDNN's limit on a tensor's total size: 2 Giga-elements.
  if (static_cast<int64_t>(n) * c * h * w > 0x7fffffff)
    return fail(CUDNN_STATUS_NOT_SUPPORTED,
                cat(fn, "more than 2^31 - 1 elements in " + dims(n, c, h, w)));
  *d = {true, dataType, n, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t dataType,
                                         cudnnTensorFormat_t format, int k, int c, int h, int w) {
  const char* fn = "cudnnSetFilter4dDescriptor";
  if (!d) return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "null descriptor"));
  if (const cudnnStatus_t st = check_format(fn, format); st != CUDNN_STATUS_SUCCESS) return st;
  if (const cudnnStatus_t st = check_type(fn, dataType); st != CUDNN_STATUS_SUCCESS) return st;
  if (k <= 0 || c <= 0 || h <= 0 || w <= 0)
    return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "non-positive extent in " + dims(k, c, h, w)));
  *d = {true, dataType, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t computeType) {
  const char* fn = "cudnnSetConvolution2dDescriptor";
  using std::to_string;
  if (!d) return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "null descriptor"));
  if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1)
    return fail(CUDNN_STATUS_BAD_PARAM,
                cat(fn, "need padding >= 0, stride >= 1, dilation >= 1; got padding " +
                            to_string(pad_h) + "," + to_string(pad_w) + " stride " +
                            to_string(u) + "," + to_string(v) + " dilation " +
                            to_string(dilation_h) + "," + to_string(dilation_w)));
  if (mode != CUDNN_CONVOLUTION && mode != CUDNN_CROSS_CORRELATION)
    return fail(CUDNN_STATUS_BAD_PARAM, cat(fn, "unknown mode " + to_string(int(mode))));
  if (const cudnnStatus_t st = check_type(fn, computeType); st != CUDNN_STATUS_SUCCESS)
    return st;
  d->set = true;
  d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v;
  d->dil_h = dilation_h, d->dil_w = dilation_w, d->mode = mode, d->compute = computeType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groupCount) {
  if (!d || groupCount < 1)
    return fail(CUDNN_STATUS_BAD_PARAM,
                "cudnnSetConvolutionGroupCount: null descriptor or groupCount " +
                    std::to_string(groupCount) + " < 1");
  d->groups = groupCount;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d,
                                          cudnnMathType_t mathType) {
  if (!d || mathType < CUDNN_DEFAULT_MATH || mathType > CUDNN_FMA_MATH)
    return fail(CUDNN_STATUS_BAD_PARAM,
                "cudnnSetConvolutionMathType: null descriptor or unknown math type " +
                    std::to_string(int(mathType)));
  d->math = mathType;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnFilterDescriptor_t filterDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t destDesc, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionFwdAlgoPerf_t* perfResults) {
  return query<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
      "cudnnGetConvolutionForwardAlgorithm_v7", Kind::Forward, handle, srcDesc, filterDesc,
      convDesc, destDesc, requestedAlgoCount, returnedAlgoCount, perfResults);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t filterDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t gradDesc, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionBwdDataAlgoPerf_t* perfResults) {
  return query<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
      "cudnnGetConvolutionBackwardDataAlgorithm_v7", Kind::BackwardData, handle, gradDesc,
      filterDesc, convDesc, diffDesc, requestedAlgoCount, returnedAlgoCount, perfResults);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t srcDesc,
    const cudnnTensorDescriptor_t diffDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, const int requestedAlgoCount,
    int* returnedAlgoCount, cudnnConvolutionBwdFilterAlgoPerf_t* perfResults) {
  return query<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
      "cudnnGetConvolutionBackwardFilterAlgorithm_v7", Kind::BackwardFilter, handle, srcDesc,
      gradDesc, convDesc, diffDesc, requestedAlgoCount, returnedAlgoCount, perfResults);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnFilterDescriptor_t wDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t yDesc, cudnnConvolutionFwdAlgo_t algo, size_t* sizeInBytes) {
  return workspace_query("cudnnGetConvolutionForwardWorkspaceSize", Kind::Forward, handle, xDesc,
                         wDesc, convDesc, yDesc, algo, CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                         sizeInBytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t handle, const cudnnFilterDescriptor_t wDesc,
    const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnTensorDescriptor_t dxDesc, cudnnConvolutionBwdDataAlgo_t algo,
    size_t* sizeInBytes) {
  return workspace_query("cudnnGetConvolutionBackwardDataWorkspaceSize", Kind::BackwardData,
                         handle, dxDesc, wDesc, convDesc, dyDesc, algo,
                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, sizeInBytes);
}
cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t handle, const cudnnTensorDescriptor_t xDesc,
    const cudnnTensorDescriptor_t dyDesc, const cudnnConvolutionDescriptor_t convDesc,
    const cudnnFilterDescriptor_t gradDesc, cudnnConvolutionBwdFilterAlgo_t algo,
    size_t* sizeInBytes) {
  return workspace_query("cudnnGetConvolutionBackwardFilterWorkspaceSize", Kind::BackwardFilter,
                         handle, xDesc, gradDesc, convDesc, dyDesc, algo,
                         CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, sizeInBytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t handle, const void* alpha,
                                      const cudnnTensorDescriptor_t xDesc, const void* x,
                                      const cudnnFilterDescriptor_t wDesc, const void* w,
                                      const cudnnConvolutionDescriptor_t convDesc,
                                      cudnnConvolutionFwdAlgo_t algo, void* workSpace,
                                      size_t workSpaceSizeInBytes, const void* beta,
                                      const cudnnTensorDescriptor_t yDesc, void* y) {
  return execute("cudnnConvolutionForward", Kind::Forward, handle, alpha, xDesc, x, wDesc, w,
                 convDesc, algo, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, workSpace,
                 workSpaceSizeInBytes, beta, yDesc, y);
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t handle, const void* alpha,
                                           const cudnnFilterDescriptor_t wDesc, const void* w,
                                           const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                           const cudnnConvolutionDescriptor_t convDesc,
                                           cudnnConvolutionBwdDataAlgo_t algo, void* workSpace,
                                           size_t workSpaceSizeInBytes, const void* beta,
                                           const cudnnTensorDescriptor_t dxDesc, void* dx) {
  return execute("cudnnConvolutionBackwardData", Kind::BackwardData, handle, alpha, dxDesc, dx,
                 wDesc, w, convDesc, algo, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, workSpace,
                 workSpaceSizeInBytes, beta, dyDesc, dy);
}
cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t handle, const void* alpha,
                                             const cudnnTensorDescriptor_t xDesc, const void* x,
                                             const cudnnTensorDescriptor_t dyDesc, const void* dy,
                                             const cudnnConvolutionDescriptor_t convDesc,
                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                             void* workSpace, size_t workSpaceSizeInBytes,
                                             const void* beta,
                                             const cudnnFilterDescriptor_t dwDesc, void* dw) {
  return execute("cudnnConvolutionBackwardFilter", Kind::BackwardFilter, handle, alpha, xDesc, x,
                 dwDesc, dw, convDesc, algo, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, workSpace,
                 workSpaceSizeInBytes, beta, dyDesc, dy);
}
