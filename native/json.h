// A small JSON reader, enough for config.json, safetensors headers and index files.
// Numbers keep a double and, when the literal is an integer, its exact value as int64 and/or uint64
// (safetensors offsets and dimensions are unsigned 64-bit). A literal with a fraction or exponent
// is never an integer; "-0" is an int64 but not unsigned (serde_json, the official safetensors
// reader's parser, reads it as a float).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace excise {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;
  // Throws std::runtime_error with a position on bad input. maxDepth bounds nested arrays/objects
  // (the document's own braces count as 1).
  static Json Parse(const std::string& text, int maxDepth = 256);

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::Null; }
  bool isBool() const { return type_ == Type::Bool; }
  bool isNumber() const { return type_ == Type::Number; }
  bool isInteger() const { return type_ == Type::Number && intValid_; }  // fits int64
  bool isUnsigned() const { return type_ == Type::Number && uintValid_; }  // a non-negative integer that fits uint64
  bool isString() const { return type_ == Type::String; }
  bool isArray() const { return type_ == Type::Array; }
  bool isObject() const { return type_ == Type::Object; }

  bool asBool() const;
  double asDouble() const;
  int64_t asInt() const;    // only when isInteger()
  uint64_t asUint() const;  // only when isUnsigned()
  const std::string& asString() const;
  const std::vector<Json>& asArray() const;
  // Object members in document order (safetensors cares about neither order nor duplicates, but
  // duplicate keys are rejected by the parser).
  const std::vector<std::pair<std::string, Json>>& asObject() const;

  // Object lookup; nullptr when absent (or when this is not an object).
  const Json* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }

  // Serializes compactly (used to write safetensors headers and excise metadata).
  std::string dump() const;

  // Builders.
  static Json Null() { return Json(); }
  static Json Bool(bool v);
  static Json Number(double v);
  static Json Integer(int64_t v);
  static Json String(std::string v);
  static Json Array(std::vector<Json> v);
  static Json Object(std::vector<std::pair<std::string, Json>> v);

 private:
  Type type_ = Type::Null;
  bool bool_ = false;
  double num_ = 0;
  int64_t int_ = 0;
  bool intValid_ = false;
  uint64_t uint_ = 0;
  bool uintValid_ = false;
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
  friend class JsonParser;
};

}  // namespace excise
