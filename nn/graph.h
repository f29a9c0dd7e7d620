// The graph IR of an imported model: ONNX's structure (nodes naming their input and output
// values, initializers, typed graph inputs/outputs, metadata) without protobuf in the interface.
//
// Tensors held here are engine Tensors: float initializers keep their file dtype (float32 or
// float64); integer ones (shapes, pads, class indices) are int64. `onnx_type` remembers the
// original ONNX element type so a model can be written back faithfully.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace fragile::nn {

// ONNX TensorProto.DataType codes used here.
enum OnnxType : int32_t {
  kOnnxUndefined = 0,
  kOnnxFloat = 1,
  kOnnxUint8 = 2,
  kOnnxInt8 = 3,
  kOnnxUint16 = 4,
  kOnnxInt16 = 5,
  kOnnxInt32 = 6,
  kOnnxInt64 = 7,
  kOnnxString = 8,
  kOnnxBool = 9,
  kOnnxFloat16 = 10,
  kOnnxDouble = 11,
  kOnnxUint32 = 12,
  kOnnxUint64 = 13,
  kOnnxBfloat16 = 16,
};
const char* onnx_type_name(int32_t t);

// A constant tensor: its engine value and the ONNX element type it came from.
struct TensorValue {
  Tensor value;
  int32_t onnx_type = kOnnxFloat;
};

struct Attribute {
  enum class Kind { Float, Int, String, Tensor, Floats, Ints, Strings, Unsupported };
  Kind kind = Kind::Unsupported;
  double f = 0.0;
  int64_t i = 0;
  std::string s;
  TensorValue t;
  std::vector<double> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::string unsupported_type;  // e.g. "GRAPH", for messages

  static Attribute of_float(double v);
  static Attribute of_int(int64_t v);
  static Attribute of_ints(std::vector<int64_t> v);
  static Attribute of_string(std::string v);
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;                // "" or "ai.onnx" is the default domain
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::map<std::string, Attribute> attrs;

  bool has(const std::string& key) const { return attrs.count(key) != 0; }
  // Typed attribute access; throws naming the node when the type is wrong.
  int64_t get_int(const std::string& key, int64_t fallback) const;
  int64_t get_int(const std::string& key) const;  // a required int: throws when missing
  double get_float(const std::string& key, double fallback) const;
  std::string get_string(const std::string& key, const std::string& fallback) const;
  std::vector<int64_t> get_ints(const std::string& key, std::vector<int64_t> fallback) const;
  std::vector<double> get_floats(const std::string& key, std::vector<double> fallback) const;
  const Attribute& get(const std::string& key) const;  // throws when missing
  // Input i when present and non-empty.
  bool has_input(size_t i) const { return i < inputs.size() && !inputs[i].empty(); }
  // "node 'conv1' (Conv)" for messages.
  std::string describe() const;
};

// A graph input or output: name, element type, shape. A dim is a value >= 0, or unknown (-1)
// with an optional symbolic name ("N").
struct Dim {
  int64_t value = -1;
  std::string param;
};
struct ValueInfo {
  std::string name;
  int32_t elem_type = kOnnxFloat;
  bool has_shape = false;
  std::vector<Dim> dims;
  std::string shape_str() const;  // "[N,3,227,227]"
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;  // topologically sorted after load
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::map<std::string, TensorValue> initializers;

  // Graph inputs that are not also initializers (models older than IR 4 list both).
  std::vector<const ValueInfo*> data_inputs() const;
  // Index of the node producing `value`, or -1 (graph input, initializer, or unknown).
  int64_t producer(const std::string& value) const;
  // Mask over `nodes`: those the values `outputs` depend on. Values reached that no node
  // produces (graph inputs, initializers, or names the graph lacks) go to `sources`.
  std::vector<bool> nodes_needed_for(const std::vector<std::string>& outputs,
                                     std::vector<std::string>* sources = nullptr) const;
  // Indices of the nodes that read `value`.
  std::vector<int64_t> consumers(const std::string& value) const;
  bool is_graph_output(const std::string& value) const;
  // Reorders `nodes` topologically; throws naming the node whose input is never produced.
  void topological_sort();
  // Drops initializers no node reads (and that are not graph outputs).
  void prune_initializers();
  // A value name not used anywhere in the graph, starting with `hint`.
  std::string unique_name(const std::string& hint) const;
};

struct OpsetId {
  std::string domain;
  int64_t version = 0;
};

struct Model {
  Graph graph;
  int64_t ir_version = 8;
  std::vector<OpsetId> opsets;
  std::string producer_name;
  std::string producer_version;
  std::string domain;
  int64_t model_version = 0;
  std::string doc_string;
  std::vector<std::pair<std::string, std::string>> metadata;
  std::filesystem::path source;  // file it was loaded from (labels and external data are beside it)

  // The default-domain ("" / "ai.onnx") opset version; 0 when the model declares none.
  int64_t opset() const;
  std::optional<std::string> meta(const std::string& key) const;
  void set_meta(const std::string& key, const std::string& value);
};

}  // namespace fragile::nn
