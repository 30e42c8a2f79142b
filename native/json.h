// A small JSON reader, enough for config.json, safetensors headers and index files.
// Numbers keep both a double and (when integral and in range) an exact int64, since safetensors
// offsets need all 64 bits.
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
  static Json Parse(const std::string& text);  // throws std::runtime_error with a position on bad input

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::Null; }
  bool isBool() const { return type_ == Type::Bool; }
  bool isNumber() const { return type_ == Type::Number; }
  bool isInteger() const { return type_ == Type::Number && intValid_; }
  bool isString() const { return type_ == Type::String; }
  bool isArray() const { return type_ == Type::Array; }
  bool isObject() const { return type_ == Type::Object; }

  bool asBool() const;
  double asDouble() const;
  int64_t asInt() const;  // only when isInteger()
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
  std::string str_;
  std::vector<Json> arr_;
  std::vector<std::pair<std::string, Json>> obj_;
  friend class JsonParser;
};

}  // namespace excise
