#include "nn/graph.h"

#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace fragile::nn {

const char* onnx_type_name(int32_t t) {
  switch (t) {
    case kOnnxFloat: return "float32";
    case kOnnxUint8: return "uint8";
    case kOnnxInt8: return "int8";
    case kOnnxUint16: return "uint16";
    case kOnnxInt16: return "int16";
    case kOnnxInt32: return "int32";
    case kOnnxInt64: return "int64";
    case kOnnxString: return "string";
    case kOnnxBool: return "bool";
    case kOnnxFloat16: return "float16";
    case kOnnxDouble: return "float64";
    case kOnnxUint32: return "uint32";
    case kOnnxUint64: return "uint64";
    case kOnnxBfloat16: return "bfloat16";
    default: return "undefined";
  }
}

Attribute Attribute::of_float(double v) {
  Attribute a;
  a.kind = Kind::Float;
  a.f = v;
  return a;
}
Attribute Attribute::of_int(int64_t v) {
  Attribute a;
  a.kind = Kind::Int;
  a.i = v;
  return a;
}
Attribute Attribute::of_ints(std::vector<int64_t> v) {
  Attribute a;
  a.kind = Kind::Ints;
  a.ints = std::move(v);
  return a;
}
Attribute Attribute::of_string(std::string v) {
  Attribute a;
  a.kind = Kind::String;
  a.s = std::move(v);
  return a;
}

std::string Node::describe() const {
  std::string n = name.empty() ? (outputs.empty() ? std::string("?") : outputs[0]) : name;
  return "node '" + n + "' (" + (domain.empty() || domain == "ai.onnx" ? "" : domain + ".") +
         op_type + ")";
}

const Attribute& Node::get(const std::string& key) const {
  auto it = attrs.find(key);
  FRAGILE_CHECK(it != attrs.end(), describe(), ": missing attribute '", key, "'");
  return it->second;
}

int64_t Node::get_int(const std::string& key, int64_t fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  FRAGILE_CHECK(it->second.kind == Attribute::Kind::Int, describe(), ": attribute '", key,
                "' should be an int");
  return it->second.i;
}

int64_t Node::get_int(const std::string& key) const {
  get(key);  // names the node when missing
  return get_int(key, 0);
}

double Node::get_float(const std::string& key, double fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  if (it->second.kind == Attribute::Kind::Int) return static_cast<double>(it->second.i);
  FRAGILE_CHECK(it->second.kind == Attribute::Kind::Float, describe(), ": attribute '", key,
                "' should be a float");
  return it->second.f;
}

std::string Node::get_string(const std::string& key, const std::string& fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  FRAGILE_CHECK(it->second.kind == Attribute::Kind::String, describe(), ": attribute '", key,
                "' should be a string");
  return it->second.s;
}

std::vector<int64_t> Node::get_ints(const std::string& key, std::vector<int64_t> fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  FRAGILE_CHECK(it->second.kind == Attribute::Kind::Ints, describe(), ": attribute '", key,
                "' should be a list of ints");
  return it->second.ints;
}

std::vector<double> Node::get_floats(const std::string& key, std::vector<double> fallback) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return fallback;
  FRAGILE_CHECK(it->second.kind == Attribute::Kind::Floats, describe(), ": attribute '", key,
                "' should be a list of floats");
  return it->second.floats;
}

std::string ValueInfo::shape_str() const {
  if (!has_shape) return "[?]";
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) os << ',';
    if (dims[i].value >= 0) {
      os << dims[i].value;
    } else {
      os << (dims[i].param.empty() ? "?" : dims[i].param);
    }
  }
  os << ']';
  return os.str();
}

std::vector<const ValueInfo*> Graph::data_inputs() const {
  std::vector<const ValueInfo*> out;
  for (const auto& in : inputs) {
    if (!initializers.count(in.name)) out.push_back(&in);
  }
  return out;
}

int64_t Graph::producer(const std::string& value) const {
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& o : nodes[i].outputs) {
      if (o == value) return static_cast<int64_t>(i);
    }
  }
  return -1;
}

std::vector<bool> Graph::nodes_needed_for(const std::vector<std::string>& outputs,
                                          std::vector<std::string>* sources) const {
  std::unordered_map<std::string, int64_t> producer_of;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& o : nodes[i].outputs) {
      if (!o.empty()) producer_of[o] = static_cast<int64_t>(i);
    }
  }
  std::vector<bool> needed(nodes.size(), false);
  std::vector<std::string> stack(outputs.begin(), outputs.end());
  std::unordered_set<std::string> seen;
  while (!stack.empty()) {
    std::string v = stack.back();
    stack.pop_back();
    if (!seen.insert(v).second) continue;
    auto it = producer_of.find(v);
    if (it == producer_of.end()) {
      if (sources) sources->push_back(v);
      continue;
    }
    needed[it->second] = true;
    for (const auto& in : nodes[it->second].inputs) {
      if (!in.empty()) stack.push_back(in);
    }
  }
  return needed;
}

std::vector<int64_t> Graph::consumers(const std::string& value) const {
  std::vector<int64_t> out;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& in : nodes[i].inputs) {
      if (in == value) {
        out.push_back(static_cast<int64_t>(i));
        break;
      }
    }
  }
  return out;
}

bool Graph::is_graph_output(const std::string& value) const {
  for (const auto& o : outputs) {
    if (o.name == value) return true;
  }
  return false;
}

void Graph::topological_sort() {
  // Kahn's algorithm, stable: among ready nodes the earliest in file order goes first, so an
  // already sorted graph keeps its order.
  std::unordered_map<std::string, int64_t> producer_of;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& o : nodes[i].outputs) {
      if (o.empty()) continue;
      FRAGILE_CHECK(!producer_of.count(o), nodes[i].describe(), ": value '", o,
                    "' is produced twice");
      FRAGILE_CHECK(!initializers.count(o), nodes[i].describe(), ": output '", o,
                    "' has the name of an initializer");
      producer_of[o] = static_cast<int64_t>(i);
    }
  }
  std::unordered_set<std::string> available;
  for (const auto& in : inputs) available.insert(in.name);
  for (const auto& [name, _] : initializers) available.insert(name);

  std::vector<int64_t> missing(nodes.size(), 0);
  std::vector<std::vector<int64_t>> dependents(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    std::set<int64_t> deps;
    for (const auto& in : nodes[i].inputs) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer_of.find(in);
      FRAGILE_CHECK(it != producer_of.end(), nodes[i].describe(), ": input '", in,
                    "' is not a graph input, an initializer, or any node's output");
      deps.insert(it->second);
    }
    missing[i] = static_cast<int64_t>(deps.size());
    for (int64_t d : deps) dependents[d].push_back(static_cast<int64_t>(i));
  }
  std::set<int64_t> ready;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (missing[i] == 0) ready.insert(static_cast<int64_t>(i));
  }
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  while (!ready.empty()) {
    int64_t i = *ready.begin();
    ready.erase(ready.begin());
    for (int64_t d : dependents[i]) {
      if (--missing[d] == 0) ready.insert(d);
    }
    sorted.push_back(std::move(nodes[i]));
  }
  if (sorted.size() != nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (missing[i] > 0) FRAGILE_FAIL(nodes[i].describe(), ": the graph has a cycle");
    }
  }
  nodes = std::move(sorted);
  for (const auto& o : outputs) {
    FRAGILE_CHECK(available.count(o.name) || producer_of.count(o.name), "graph output '", o.name,
                  "' is never produced");
  }
}

void Graph::prune_initializers() {
  std::unordered_set<std::string> used;
  for (const auto& n : nodes) {
    for (const auto& in : n.inputs) used.insert(in);
  }
  for (const auto& o : outputs) used.insert(o.name);
  for (auto it = initializers.begin(); it != initializers.end();) {
    if (!used.count(it->first)) {
      // Old-style models also list initializers as graph inputs: drop those entries too.
      const std::string name = it->first;
      std::erase_if(inputs, [&](const ValueInfo& v) { return v.name == name; });
      it = initializers.erase(it);
    } else {
      ++it;
    }
  }
}

std::string Graph::unique_name(const std::string& hint) const {
  std::unordered_set<std::string> used;
  for (const auto& n : nodes) {
    used.insert(n.name);
    for (const auto& v : n.inputs) used.insert(v);
    for (const auto& v : n.outputs) used.insert(v);
  }
  for (const auto& v : inputs) used.insert(v.name);
  for (const auto& v : outputs) used.insert(v.name);
  for (const auto& [k, _] : initializers) used.insert(k);
  if (!used.count(hint)) return hint;
  for (int64_t i = 1;; ++i) {
    std::string c = hint + "_" + std::to_string(i);
    if (!used.count(c)) return c;
  }
}

int64_t Model::opset() const {
  for (const auto& o : opsets) {
    if (o.domain.empty() || o.domain == "ai.onnx") return o.version;
  }
  return 0;
}

std::optional<std::string> Model::meta(const std::string& key) const {
  for (const auto& [k, v] : metadata) {
    if (k == key) return v;
  }
  return std::nullopt;
}

void Model::set_meta(const std::string& key, const std::string& value) {
  for (auto& [k, v] : metadata) {
    if (k == key) {
      v = value;
      return;
    }
  }
  metadata.emplace_back(key, value);
}

}  // namespace fragile::nn
