#include "nn/onnx_io.h"

#include <google/protobuf/stubs/logging.h>
#include <onnx/onnx_pb.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"
#include "nn/file_io.h"
#include "nn/transforms.h"

namespace fragile::nn {
namespace {

namespace fs = std::filesystem;

// Largest tensor accepted (elements): far above any real model, low enough that a corrupt dims
// field cannot make us try to allocate exabytes.
constexpr int64_t kMaxElements = int64_t{1} << 36;

// Element size in bytes of an ONNX type stored as raw_data; 0 for unsupported types.
size_t raw_size(int32_t t) {
  switch (t) {
    case kOnnxFloat: case kOnnxInt32: case kOnnxUint32: return 4;
    case kOnnxDouble: case kOnnxInt64: case kOnnxUint64: return 8;
    case kOnnxInt16: case kOnnxUint16: case kOnnxFloat16: case kOnnxBfloat16: return 2;
    case kOnnxInt8: case kOnnxUint8: case kOnnxBool: return 1;
    default: return 0;
  }
}

float half_to_float(uint16_t h) {
  uint32_t sign = (h >> 15) & 1, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0) {
    v = std::ldexp(static_cast<float>(mant), -24);
  } else if (exp == 31) {
    v = mant ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    v = std::ldexp(static_cast<float>(mant | 0x400), static_cast<int>(exp) - 25);
  }
  return sign ? -v : v;
}

float bfloat_to_float(uint16_t b) {
  uint32_t bits = static_cast<uint32_t>(b) << 16;
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

// Decodes `n` little-endian elements of ONNX type `t` from `bytes` into the engine tensor `out`
// (float32 for float/half types, float64 for double, int64 for every integer type).
void decode_raw(const char* bytes, int32_t t, int64_t n, Tensor& out) {
  if (n == 0) return;  // an empty tensor has no buffer to copy into
  auto load = [&](auto tag, int64_t i) {
    using T = decltype(tag);
    T v;
    std::memcpy(&v, bytes + i * sizeof(T), sizeof(T));
    return v;
  };
  switch (t) {
    case kOnnxFloat: std::memcpy(out.data<float>(), bytes, n * 4); return;
    case kOnnxDouble: std::memcpy(out.data<double>(), bytes, n * 8); return;
    case kOnnxInt64: std::memcpy(out.data<int64_t>(), bytes, n * 8); return;
    case kOnnxFloat16:
      for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = half_to_float(load(uint16_t{}, i));
      return;
    case kOnnxBfloat16:
      for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = bfloat_to_float(load(uint16_t{}, i));
      return;
    default: break;
  }
  int64_t* d = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    switch (t) {
      case kOnnxInt32: d[i] = load(int32_t{}, i); break;
      case kOnnxUint32: d[i] = load(uint32_t{}, i); break;
      case kOnnxUint64: d[i] = static_cast<int64_t>(load(uint64_t{}, i)); break;
      case kOnnxInt16: d[i] = load(int16_t{}, i); break;
      case kOnnxUint16: d[i] = load(uint16_t{}, i); break;
      case kOnnxInt8: d[i] = load(int8_t{}, i); break;
      case kOnnxUint8: d[i] = load(uint8_t{}, i); break;
      case kOnnxBool: d[i] = load(uint8_t{}, i) != 0; break;
      default: FRAGILE_FAIL("unsupported element type ", onnx_type_name(t));
    }
  }
}

DType engine_dtype(int32_t t) {
  switch (t) {
    case kOnnxFloat: case kOnnxFloat16: case kOnnxBfloat16: return DType::Float32;
    case kOnnxDouble: return DType::Float64;
    default: return DType::Int64;
  }
}

TensorValue decode_tensor(const onnx::TensorProto& tp, const fs::path& base_dir,
                          const std::string& label);

// A NaN weight is corruption (no exporter writes one on purpose) and would only show up later
// as NaN scores; infinities stay allowed (Clip bounds, masks).
void check_no_nan(const TensorValue& tv, const std::string& label) {
  const Tensor& v = tv.value;
  if (v.dtype() == DType::Int64 || v.numel() == 0) return;
  FRAGILE_DISPATCH_FLOAT(v.dtype(), "check_no_nan", [&] {
    const scalar_t* p = v.data<scalar_t>();
    for (int64_t i = 0; i < v.numel(); ++i) {
      FRAGILE_CHECK(!std::isnan(p[i]), label, ": holds NaN at element ", i, " of ", v.numel(),
                    " (corrupt weights)");
    }
  });
}

TensorValue tensor_from_proto(const onnx::TensorProto& tp, const fs::path& base_dir,
                              const std::string& what) {
  return decode_tensor(tp, base_dir, what + " '" + tp.name() + "'");
}

TensorValue decode_tensor(const onnx::TensorProto& tp, const fs::path& base_dir,
                          const std::string& label) {
  const int32_t t = tp.data_type();
  FRAGILE_CHECK(raw_size(t) != 0, label, ": unsupported element type ",
                onnx_type_name(t), " (", t, ")");
  Shape shape;
  int64_t n = 1;
  for (int64_t d : tp.dims()) {
    FRAGILE_CHECK(d >= 0, label, ": negative dimension ", d);
    shape.push_back(d);
    FRAGILE_CHECK(d == 0 || n <= kMaxElements / d, label, ": too many elements");
    n *= d;
  }
  FRAGILE_CHECK(!tp.has_segment(), label, ": segmented tensors are not supported");
  TensorValue tv;
  tv.onnx_type = t;
  tv.value = Tensor::empty(shape, engine_dtype(t));
  const size_t esize = raw_size(t);
  const size_t nbytes = static_cast<size_t>(n) * esize;

  if (tp.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : tp.external_data()) {
      try {
        if (kv.key() == "location") location = kv.value();
        if (kv.key() == "offset") offset = std::stoll(kv.value());
        if (kv.key() == "length") length = std::stoll(kv.value());
      } catch (const std::exception&) {
        FRAGILE_FAIL(label, ": bad external_data entry ", kv.key(), "='", kv.value(), "'");
      }
    }
    FRAGILE_CHECK(!location.empty(), label, ": external data without a location");
    fs::path rel(location);
    FRAGILE_CHECK(rel.is_relative(), label, ": external data location must be relative: ",
                  location);
    for (const auto& part : rel) {
      FRAGILE_CHECK(part != "..", label, ": external data location leaves the model folder: ",
                    location);
    }
    const fs::path file = base_dir / rel;
    std::ifstream f(file, std::ios::binary);
    FRAGILE_CHECK(f.good(), label, ": cannot open external data file '", file.string(), "'");
    f.seekg(0, std::ios::end);
    const int64_t fsize = static_cast<int64_t>(f.tellg());
    if (length < 0) length = fsize - offset;
    FRAGILE_CHECK(offset >= 0 && length >= 0 && offset <= fsize && length <= fsize - offset,
                  label, ": external data range [", offset, ", ", offset + length,
                  ") is outside '", file.string(), "' (", fsize, " bytes)");
    FRAGILE_CHECK(static_cast<size_t>(length) == nbytes, label, ": external data has ", length,
                  " bytes, expected ", nbytes, " for shape ", shape_str(shape));
    std::string buf(nbytes, '\0');
    f.seekg(offset);
    f.read(buf.data(), static_cast<std::streamsize>(nbytes));
    FRAGILE_CHECK(f.good() || nbytes == 0, label, ": error reading '", file.string(), "'");
    decode_raw(buf.data(), t, n, tv.value);
    return tv;
  }

  if (tp.has_raw_data()) {
    FRAGILE_CHECK(tp.float_data_size() + tp.double_data_size() + tp.int32_data_size() +
                          tp.int64_data_size() + tp.uint64_data_size() ==
                      0,
                  label, ": has both raw_data and typed data fields (which one holds it?)");
    FRAGILE_CHECK(tp.raw_data().size() == nbytes, label, ": raw_data has ",
                  tp.raw_data().size(), " bytes, expected ", nbytes, " for shape ",
                  shape_str(shape), " of ", onnx_type_name(t));
    decode_raw(tp.raw_data().data(), t, n, tv.value);
    return tv;
  }

  // Typed fields.
  auto check_count = [&](int64_t have, const char* field) {
    FRAGILE_CHECK(have == n, label, ": ", field, " has ", have, " values, expected ", n,
                  " for shape ", shape_str(shape));
  };
  switch (t) {
    case kOnnxFloat: {
      check_count(tp.float_data_size(), "float_data");
      std::copy(tp.float_data().begin(), tp.float_data().end(), tv.value.data<float>());
      break;
    }
    case kOnnxDouble: {
      check_count(tp.double_data_size(), "double_data");
      std::copy(tp.double_data().begin(), tp.double_data().end(), tv.value.data<double>());
      break;
    }
    case kOnnxInt64: {
      check_count(tp.int64_data_size(), "int64_data");
      std::copy(tp.int64_data().begin(), tp.int64_data().end(), tv.value.data<int64_t>());
      break;
    }
    case kOnnxUint32: case kOnnxUint64: {
      check_count(tp.uint64_data_size(), "uint64_data");
      int64_t* d = tv.value.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) d[i] = static_cast<int64_t>(tp.uint64_data(i));
      break;
    }
    case kOnnxFloat16: case kOnnxBfloat16: {
      check_count(tp.int32_data_size(), "int32_data");
      float* d = tv.value.data<float>();
      for (int64_t i = 0; i < n; ++i) {
        auto bits = static_cast<uint16_t>(tp.int32_data(i));
        d[i] = t == kOnnxFloat16 ? half_to_float(bits) : bfloat_to_float(bits);
      }
      break;
    }
    default: {  // int32, int16, int8, uint16, uint8, bool
      check_count(tp.int32_data_size(), "int32_data");
      int64_t* d = tv.value.data<int64_t>();
      for (int64_t i = 0; i < n; ++i) d[i] = tp.int32_data(i);
      break;
    }
  }
  return tv;
}

Attribute attribute_from_proto(const onnx::AttributeProto& ap, const fs::path& base_dir,
                               const std::string& node_desc) {
  using AP = onnx::AttributeProto;
  Attribute a;
  int type = ap.type();
  if (type == AP::UNDEFINED) {  // IR < 3: infer the kind from the field that is set
    if (ap.has_f()) type = AP::FLOAT;
    else if (ap.has_i()) type = AP::INT;
    else if (ap.has_s()) type = AP::STRING;
    else if (ap.has_t()) type = AP::TENSOR;
    else if (ap.floats_size()) type = AP::FLOATS;
    else if (ap.ints_size()) type = AP::INTS;
    else if (ap.strings_size()) type = AP::STRINGS;
  }
  switch (type) {
    case AP::FLOAT: a.kind = Attribute::Kind::Float; a.f = ap.f(); break;
    case AP::INT: a.kind = Attribute::Kind::Int; a.i = ap.i(); break;
    case AP::STRING: a.kind = Attribute::Kind::String; a.s = ap.s(); break;
    case AP::TENSOR:
      a.kind = Attribute::Kind::Tensor;
      a.t = tensor_from_proto(ap.t(), base_dir, node_desc + " attribute '" + ap.name() + "'");
      break;
    case AP::FLOATS:
      a.kind = Attribute::Kind::Floats;
      a.floats.assign(ap.floats().begin(), ap.floats().end());
      break;
    case AP::INTS:
      a.kind = Attribute::Kind::Ints;
      a.ints.assign(ap.ints().begin(), ap.ints().end());
      break;
    case AP::STRINGS:
      a.kind = Attribute::Kind::Strings;
      a.strings.assign(ap.strings().begin(), ap.strings().end());
      break;
    default:
      a.kind = Attribute::Kind::Unsupported;
      a.unsupported_type = AP::AttributeType_Name(static_cast<AP::AttributeType>(type));
      if (a.unsupported_type.empty()) a.unsupported_type = std::to_string(type);
      break;
  }
  return a;
}

ValueInfo value_info_from_proto(const onnx::ValueInfoProto& vp) {
  ValueInfo v;
  v.name = vp.name();
  if (vp.has_type() && vp.type().has_tensor_type()) {
    const auto& tt = vp.type().tensor_type();
    v.elem_type = tt.elem_type();
    if (tt.has_shape()) {
      v.has_shape = true;
      for (const auto& d : tt.shape().dim()) {
        Dim dim;
        if (d.has_dim_value()) dim.value = d.dim_value();
        if (d.has_dim_param()) dim.param = d.dim_param();
        v.dims.push_back(dim);
      }
    }
  }
  return v;
}

// ---- writing ---------------------------------------------------------------------------------

void tensor_to_proto(const TensorValue& tv, const std::string& name, onnx::TensorProto* tp) {
  tp->set_name(name);
  const Tensor& v = tv.value;
  for (int64_t d : v.shape()) tp->add_dims(d);
  // Floats go out as float32 unless they came in as float64 (half types were widened on load
  // and are written as float32); integers go out in their original integer type.
  int32_t t = tv.onnx_type;
  if (is_floating(v.dtype())) {
    t = tv.onnx_type == kOnnxDouble ? kOnnxDouble : kOnnxFloat;
  } else if (engine_dtype(t) != DType::Int64) {
    t = kOnnxInt64;
  }
  tp->set_data_type(t);
  const int64_t n = v.numel();
  std::string raw(static_cast<size_t>(n) * raw_size(t), '\0');
  char* out = raw.data();
  if (t == kOnnxFloat || t == kOnnxDouble) {
    Tensor c = v.to(t == kOnnxFloat ? DType::Float32 : DType::Float64).clone_data();
    std::memcpy(out, c.raw_data(), raw.size());
  } else {
    FRAGILE_CHECK(v.dtype() == DType::Int64, "initializer '", name, "': expected int64 values");
    std::vector<int64_t> vals = v.to_int64_vector();
    for (int64_t i = 0; i < n; ++i) {
      auto store = [&](auto x) { std::memcpy(out + i * sizeof(x), &x, sizeof(x)); };
      switch (t) {
        case kOnnxInt64: store(vals[i]); break;
        case kOnnxUint64: store(static_cast<uint64_t>(vals[i])); break;
        case kOnnxInt32: store(static_cast<int32_t>(vals[i])); break;
        case kOnnxUint32: store(static_cast<uint32_t>(vals[i])); break;
        case kOnnxInt16: store(static_cast<int16_t>(vals[i])); break;
        case kOnnxUint16: store(static_cast<uint16_t>(vals[i])); break;
        case kOnnxInt8: store(static_cast<int8_t>(vals[i])); break;
        case kOnnxUint8: store(static_cast<uint8_t>(vals[i])); break;
        case kOnnxBool: store(static_cast<uint8_t>(vals[i] != 0)); break;
        default: FRAGILE_FAIL("initializer '", name, "': cannot write ", onnx_type_name(t));
      }
    }
  }
  tp->set_raw_data(std::move(raw));
}

void attribute_to_proto(const std::string& key, const Attribute& a, const Node& node,
                        onnx::AttributeProto* ap) {
  using AP = onnx::AttributeProto;
  ap->set_name(key);
  switch (a.kind) {
    case Attribute::Kind::Float: ap->set_type(AP::FLOAT); ap->set_f(static_cast<float>(a.f)); break;
    case Attribute::Kind::Int: ap->set_type(AP::INT); ap->set_i(a.i); break;
    case Attribute::Kind::String: ap->set_type(AP::STRING); ap->set_s(a.s); break;
    case Attribute::Kind::Tensor:
      ap->set_type(AP::TENSOR);
      tensor_to_proto(a.t, "", ap->mutable_t());
      break;
    case Attribute::Kind::Floats:
      ap->set_type(AP::FLOATS);
      for (double f : a.floats) ap->add_floats(static_cast<float>(f));
      break;
    case Attribute::Kind::Ints:
      ap->set_type(AP::INTS);
      for (int64_t i : a.ints) ap->add_ints(i);
      break;
    case Attribute::Kind::Strings:
      ap->set_type(AP::STRINGS);
      for (const auto& s : a.strings) ap->add_strings(s);
      break;
    case Attribute::Kind::Unsupported:
      FRAGILE_FAIL(node.describe(), ": cannot write attribute '", key, "' of type ",
                   a.unsupported_type);
  }
}

void value_info_to_proto(const ValueInfo& v, onnx::ValueInfoProto* vp) {
  vp->set_name(v.name);
  auto* tt = vp->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(v.elem_type);
  if (v.has_shape) {
    auto* shape = tt->mutable_shape();
    for (const auto& d : v.dims) {
      auto* dp = shape->add_dim();
      if (d.value >= 0) dp->set_dim_value(d.value);
      else if (!d.param.empty()) dp->set_dim_param(d.param);
    }
  }
}

void node_to_proto(const Node& n, onnx::NodeProto* np) {
  np->set_name(n.name);
  np->set_op_type(n.op_type);
  if (!n.domain.empty()) np->set_domain(n.domain);
  for (const auto& i : n.inputs) np->add_input(i);
  for (const auto& o : n.outputs) np->add_output(o);
  for (const auto& [k, a] : n.attrs) attribute_to_proto(k, a, n, np->add_attribute());
}

}  // namespace

Model parse_onnx(const std::string& bytes, const fs::path& base_dir, const std::string& what) {
  onnx::ModelProto mp;
  {
    google::protobuf::LogSilencer silence;  // our one-line error replaces protobuf's log
    FRAGILE_CHECK(mp.ParseFromString(bytes), what,
                  ": not a valid ONNX protobuf (truncated or corrupt file)");
  }
  FRAGILE_CHECK(mp.has_graph() && mp.graph().node_size() > 0, what,
                ": no graph nodes (truncated or not an ONNX model)");
  FRAGILE_CHECK(mp.graph().output_size() > 0, what, ": the graph declares no outputs");

  Model m;
  m.ir_version = mp.ir_version();
  m.producer_name = mp.producer_name();
  m.producer_version = mp.producer_version();
  m.domain = mp.domain();
  m.model_version = mp.model_version();
  m.doc_string = mp.doc_string();
  for (const auto& o : mp.opset_import()) m.opsets.push_back({o.domain(), o.version()});
  if (m.opsets.empty()) m.opsets.push_back({"", 1});  // IR < 3 models: opset 1
  // The ops' semantics are those of opsets 7 to 18 (Pad's axes input is 18's); opset 19 gave
  // AveragePool dilations and Pad a wrap mode, which would be silently misread.
  const int64_t opset = m.opset();
  FRAGILE_CHECK(opset != 0, what,
                ": the model imports no opset of the default ONNX domain (opset_import lists "
                "only other domains)");
  FRAGILE_CHECK(opset >= kMinOpset && opset <= kMaxOpset, what, ": ONNX opset ", opset,
                " is not supported (fragile reads opsets ", kMinOpset, " to ", kMaxOpset,
                "); re-export the model with an opset in that range");
  for (const auto& kv : mp.metadata_props()) m.metadata.emplace_back(kv.key(), kv.value());

  const auto& gp = mp.graph();
  Graph& g = m.graph;
  g.name = gp.name();
  for (const auto& tp : gp.initializer()) {
    FRAGILE_CHECK(!tp.name().empty(), what, ": an initializer has no name");
    FRAGILE_CHECK(!g.initializers.count(tp.name()), what, ": two initializers are named '",
                  tp.name(), "'");
    TensorValue tv = tensor_from_proto(tp, base_dir, "initializer");
    // Weights only: a Constant node may hold NaN on purpose (a fill value).
    check_no_nan(tv, "initializer '" + tp.name() + "'");
    g.initializers[tp.name()] = std::move(tv);
  }
  FRAGILE_CHECK(gp.sparse_initializer_size() == 0, what,
                ": sparse initializers are not supported");
  for (const auto& vp : gp.input()) g.inputs.push_back(value_info_from_proto(vp));
  for (const auto& vp : gp.output()) g.outputs.push_back(value_info_from_proto(vp));
  for (const auto& np : gp.node()) {
    Node n;
    n.name = np.name();
    n.op_type = np.op_type();
    n.domain = np.domain() == "ai.onnx" ? "" : np.domain();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& ap : np.attribute()) {
      n.attrs[ap.name()] = attribute_from_proto(ap, base_dir, n.describe());
    }
    g.nodes.push_back(std::move(n));
  }
  g.topological_sort();
  fuse_softplus_beta(m);
  return m;
}

Model load_onnx(const fs::path& path) {
  std::string bytes = read_file(path, "model file");
  Model m = parse_onnx(bytes, path.parent_path(), "model '" + path.string() + "'");
  m.source = path;
  return m;
}

std::string serialize_onnx(const Model& model) {
  Model m = model;
  expand_softplus_beta(m);  // standard ONNX for other runtimes
  onnx::ModelProto mp;
  mp.set_ir_version(m.ir_version);
  if (!m.producer_name.empty()) mp.set_producer_name(m.producer_name);
  if (!m.producer_version.empty()) mp.set_producer_version(m.producer_version);
  if (!m.domain.empty()) mp.set_domain(m.domain);
  if (m.model_version) mp.set_model_version(m.model_version);
  if (!m.doc_string.empty()) mp.set_doc_string(m.doc_string);
  for (const auto& o : m.opsets) {
    auto* op = mp.add_opset_import();
    op->set_domain(o.domain);
    op->set_version(o.version);
  }
  for (const auto& [k, v] : m.metadata) {
    auto* kv = mp.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  auto* gp = mp.mutable_graph();
  gp->set_name(m.graph.name);
  for (const auto& n : m.graph.nodes) node_to_proto(n, gp->add_node());
  for (const auto& [name, tv] : m.graph.initializers) {
    tensor_to_proto(tv, name, gp->add_initializer());
  }
  for (const auto& v : m.graph.inputs) value_info_to_proto(v, gp->add_input());
  for (const auto& v : m.graph.outputs) value_info_to_proto(v, gp->add_output());
  std::string out;
  FRAGILE_CHECK(mp.SerializeToString(&out), "cannot serialize the model (over 2 GiB?)");
  return out;
}

void save_onnx(const Model& model, const fs::path& path) {
  write_file(path, serialize_onnx(model));
}

}  // namespace fragile::nn
