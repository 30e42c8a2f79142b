// A strict RFC 8259 reader and a compact writer. Headers of safetensors files come from untrusted
// downloads, so the reader rejects anything ambiguous (duplicate keys, invalid UTF-8, lone
// surrogates, deep nesting, trailing bytes) rather than guessing.
#include "json.h"

#include <cerrno>
#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <unordered_set>

namespace excise {

namespace {

const char* TypeName(Json::Type t) {
  switch (t) {
    case Json::Type::Null: return "null";
    case Json::Type::Bool: return "a boolean";
    case Json::Type::Number: return "a number";
    case Json::Type::String: return "a string";
    case Json::Type::Array: return "an array";
    case Json::Type::Object: return "an object";
  }
  return "?";
}

[[noreturn]] void WrongType(const char* wanted, Json::Type got) {
  throw std::runtime_error(std::string("JSON: expected ") + wanted + ", found " + TypeName(got));
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}


// Power of ten of the first nonzero digit of a validated JSON number literal (0 for zero).
// Only used to classify out-of-range literals, so saturating arithmetic is enough.
int64_t DecimalMagnitude(const char* p, const char* end) {
  if (*p == '-') ++p;
  int64_t intDigits = 0, firstNonzero = INT64_MIN;  // position counted from the first digit
  int64_t index = 0;
  bool inFraction = false;
  for (; p < end && *p != 'e' && *p != 'E'; ++p) {
    if (*p == '.') {
      inFraction = true;
      continue;
    }
    if (!inFraction) ++intDigits;
    if (*p != '0' && firstNonzero == INT64_MIN) firstNonzero = index;
    ++index;
  }
  if (firstNonzero == INT64_MIN) return 0;
  int64_t exp = 0;
  if (p < end) {
    ++p;
    bool neg = *p == '-';
    if (*p == '+' || *p == '-') ++p;
    for (; p < end; ++p) exp = std::min<int64_t>(exp * 10 + (*p - '0'), int64_t{1} << 40);
    if (neg) exp = -exp;
  }
  return intDigits - 1 - firstNonzero + exp;
}

}  // namespace

// Recursive descent over the input bytes. Every error names the byte offset where it was found.
class JsonParser {
 public:
  JsonParser(const std::string& text, int maxDepth) : s_(text.data()), n_(text.size()), maxDepth_(maxDepth) {}

  Json ParseDocument() {
    SkipWhitespace();
    Json v = ParseValue(0);
    SkipWhitespace();
    if (pos_ != n_) Fail("unexpected data after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const { FailAt(what, pos_); }
  [[noreturn]] void FailAt(const std::string& what, size_t at) const {
    throw std::runtime_error("JSON: " + what + " at byte " + std::to_string(at));
  }

  bool AtEnd() const { return pos_ >= n_; }
  unsigned char Peek() const { return static_cast<unsigned char>(s_[pos_]); }

  void SkipWhitespace() {
    while (pos_ < n_ && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }

  void Expect(char c) {
    if (AtEnd() || s_[pos_] != c) Fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  void ExpectWord(const char* word) {
    size_t len = std::strlen(word);
    if (n_ - pos_ < len || std::memcmp(s_ + pos_, word, len) != 0) Fail("invalid literal");
    pos_ += len;
  }

  Json ParseValue(int depth) {
    if (AtEnd()) Fail("unexpected end of input");
    Json v;
    switch (s_[pos_]) {
      case '{': return ParseObject(depth + 1);
      case '[': return ParseArray(depth + 1);
      case '"':
        v.type_ = Json::Type::String;
        v.str_ = ParseString();
        return v;
      case 't':
        ExpectWord("true");
        return Json::Bool(true);
      case 'f':
        ExpectWord("false");
        return Json::Bool(false);
      case 'n':
        ExpectWord("null");
        return Json();
      default:
        if (s_[pos_] == '-' || (s_[pos_] >= '0' && s_[pos_] <= '9')) return ParseNumber();
        Fail("unexpected character");
    }
  }

  Json ParseObject(int depth) {
    if (depth > maxDepth_) Fail("nesting deeper than " + std::to_string(maxDepth_));
    Expect('{');
    Json v;
    v.type_ = Json::Type::Object;
    std::unordered_set<std::string> seen;
    SkipWhitespace();
    if (!AtEnd() && s_[pos_] == '}') {
      ++pos_;
      return v;
    }
    for (;;) {
      SkipWhitespace();
      if (AtEnd() || s_[pos_] != '"') Fail("expected a string key");
      size_t keyAt = pos_;
      std::string key = ParseString();
      if (!seen.insert(key).second) FailAt("duplicate key \"" + key + "\"", keyAt);
      SkipWhitespace();
      Expect(':');
      SkipWhitespace();
      Json member = ParseValue(depth);
      v.obj_.emplace_back(std::move(key), std::move(member));
      SkipWhitespace();
      if (AtEnd()) Fail("unexpected end of input in an object");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      Expect('}');
      return v;
    }
  }

  Json ParseArray(int depth) {
    if (depth > maxDepth_) Fail("nesting deeper than " + std::to_string(maxDepth_));
    Expect('[');
    Json v;
    v.type_ = Json::Type::Array;
    SkipWhitespace();
    if (!AtEnd() && s_[pos_] == ']') {
      ++pos_;
      return v;
    }
    for (;;) {
      SkipWhitespace();
      v.arr_.push_back(ParseValue(depth));
      SkipWhitespace();
      if (AtEnd()) Fail("unexpected end of input in an array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      Expect(']');
      return v;
    }
  }

  uint32_t ParseHex4() {
    if (n_ - pos_ < 4) Fail("truncated \\u escape");
    uint32_t cp = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      cp <<= 4;
      if (c >= '0' && c <= '9') cp |= c - '0';
      else if (c >= 'a' && c <= 'f') cp |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') cp |= c - 'A' + 10;
      else FailAt("invalid hex digit in \\u escape", pos_ - 1);
    }
    return cp;
  }

  // Validates one UTF-8 sequence starting at pos_ (a lead byte >= 0x80) and copies it to out.
  // Rejects overlong forms, surrogates and code points above U+10FFFF, as RFC 3629 requires.
  void CopyUtf8Sequence(std::string& out) {
    size_t start = pos_;
    unsigned char b0 = Peek();
    int len;
    uint32_t cp;
    if (b0 >= 0xC2 && b0 <= 0xDF) { len = 2; cp = b0 & 0x1F; }
    else if (b0 >= 0xE0 && b0 <= 0xEF) { len = 3; cp = b0 & 0x0F; }
    else if (b0 >= 0xF0 && b0 <= 0xF4) { len = 4; cp = b0 & 0x07; }
    else FailAt("invalid UTF-8", start);
    if (n_ - pos_ < static_cast<size_t>(len)) FailAt("invalid UTF-8 (truncated sequence)", start);
    for (int i = 1; i < len; ++i) {
      unsigned char b = static_cast<unsigned char>(s_[pos_ + i]);
      if ((b & 0xC0) != 0x80) FailAt("invalid UTF-8", start);
      cp = (cp << 6) | (b & 0x3F);
    }
    bool overlong = (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) FailAt("invalid UTF-8", start);
    out.append(s_ + pos_, len);
    pos_ += len;
  }

  std::string ParseString() {
    Expect('"');
    std::string out;
    for (;;) {
      if (AtEnd()) Fail("unterminated string");
      unsigned char c = Peek();
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) Fail("control character in a string (must be escaped)");
      if (c >= 0x80) {
        CopyUtf8Sequence(out);
        continue;
      }
      if (c != '\\') {
        out += static_cast<char>(c);
        ++pos_;
        continue;
      }
      size_t escAt = pos_;
      ++pos_;
      if (AtEnd()) Fail("unterminated string");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = ParseHex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) FailAt("lone low surrogate in \\u escape", escAt);
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            // A high surrogate must be followed by an escaped low surrogate; together they encode
            // one code point above U+FFFF.
            if (n_ - pos_ < 2 || s_[pos_] != '\\' || s_[pos_ + 1] != 'u') FailAt("lone high surrogate in \\u escape", escAt);
            pos_ += 2;
            uint32_t lo = ParseHex4();
            if (lo < 0xDC00 || lo > 0xDFFF) FailAt("high surrogate not followed by a low surrogate", escAt);
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default:
          FailAt("invalid escape sequence", escAt);
      }
    }
  }

  Json ParseNumber() {
    // Grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    size_t start = pos_;
    auto digit = [&]() { return !AtEnd() && s_[pos_] >= '0' && s_[pos_] <= '9'; };
    if (s_[pos_] == '-') ++pos_;
    if (!digit()) Fail("invalid number");
    if (s_[pos_] == '0') {
      ++pos_;
      if (digit()) FailAt("leading zero in a number", start);
    } else {
      while (digit()) ++pos_;
    }
    bool integral = true;
    if (!AtEnd() && s_[pos_] == '.') {
      integral = false;
      ++pos_;
      if (!digit()) Fail("invalid number (digit expected after '.')");
      while (digit()) ++pos_;
    }
    if (!AtEnd() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      integral = false;
      ++pos_;
      if (!AtEnd() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (!digit()) Fail("invalid number (digit expected in exponent)");
      while (digit()) ++pos_;
    }
    const char* first = s_ + start;
    const char* last = s_ + pos_;

    Json v;
    v.type_ = Json::Type::Number;
    // from_chars is locale-independent (strtod would honour LC_NUMERIC) and rounds correctly.
    // A literal too large for a double yields result_out_of_range; JSON has no infinity, so reject.
    auto d = std::from_chars(first, last, v.num_);
    if (d.ec == std::errc::result_out_of_range) {
      // Underflow (1e-400) is harmless: the value is zero. Overflow has no JSON representation.
      // The decimal magnitude (power of ten of the first nonzero digit) tells them apart.
      if (DecimalMagnitude(first, last) >= 0) FailAt("number out of range", start);
      v.num_ = (*first == '-') ? -0.0 : 0.0;
    } else if (d.ec != std::errc() || d.ptr != last) {
      FailAt("invalid number", start);
    }
    if (integral) {
      // Keep the exact value when it fits: safetensors offsets and dimensions can exceed 2^53.
      int64_t i = 0;
      auto r = std::from_chars(first, last, i);
      if (r.ec == std::errc() && r.ptr == last) {
        v.int_ = i;
        v.intValid_ = true;
      }
      uint64_t u = 0;
      auto ru = std::from_chars(first, last, u);  // rejects any '-', "-0" included (a float for serde_json)
      if (ru.ec == std::errc() && ru.ptr == last) {
        v.uint_ = u;
        v.uintValid_ = true;
      }
    }
    return v;
  }

  const char* s_;
  size_t n_;
  int maxDepth_;
  size_t pos_ = 0;
};

Json Json::Parse(const std::string& text, int maxDepth) { return JsonParser(text, maxDepth).ParseDocument(); }

bool Json::asBool() const {
  if (type_ != Type::Bool) WrongType("a boolean", type_);
  return bool_;
}

double Json::asDouble() const {
  if (type_ != Type::Number) WrongType("a number", type_);
  return num_;
}

int64_t Json::asInt() const {
  if (!isInteger()) WrongType("an integer", type_);
  return int_;
}

uint64_t Json::asUint() const {
  if (!isUnsigned()) WrongType("a non-negative integer", type_);
  return uint_;
}

const std::string& Json::asString() const {
  if (type_ != Type::String) WrongType("a string", type_);
  return str_;
}

const std::vector<Json>& Json::asArray() const {
  if (type_ != Type::Array) WrongType("an array", type_);
  return arr_;
}

const std::vector<std::pair<std::string, Json>>& Json::asObject() const {
  if (type_ != Type::Object) WrongType("an object", type_);
  return obj_;
}

const Json* Json::find(const std::string& key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& [k, v] : obj_) {
    if (k == key) return &v;
  }
  return nullptr;
}

Json Json::Bool(bool v) {
  Json j;
  j.type_ = Type::Bool;
  j.bool_ = v;
  return j;
}

Json Json::Number(double v) {
  Json j;
  j.type_ = Type::Number;
  j.num_ = v;
  return j;
}

Json Json::Integer(int64_t v) {
  Json j;
  j.type_ = Type::Number;
  j.num_ = static_cast<double>(v);
  j.int_ = v;
  j.intValid_ = true;
  j.uint_ = static_cast<uint64_t>(v);
  j.uintValid_ = v >= 0;
  return j;
}

Json Json::String(std::string v) {
  Json j;
  j.type_ = Type::String;
  j.str_ = std::move(v);
  return j;
}

Json Json::Array(std::vector<Json> v) {
  Json j;
  j.type_ = Type::Array;
  j.arr_ = std::move(v);
  return j;
}

Json Json::Object(std::vector<std::pair<std::string, Json>> v) {
  Json j;
  j.type_ = Type::Object;
  j.obj_ = std::move(v);
  return j;
}

namespace {

void DumpString(std::string& out, const std::string& s) {
  static const char* kHex = "0123456789abcdef";
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xF];
        } else {
          out += static_cast<char>(c);  // UTF-8 passes through unchanged
        }
    }
  }
  out += '"';
}

void DumpValue(std::string& out, const Json& v) {
  switch (v.type()) {
    case Json::Type::Null: out += "null"; break;
    case Json::Type::Bool: out += v.asBool() ? "true" : "false"; break;
    case Json::Type::Number: {
      char buf[32];
      std::to_chars_result r;
      if (v.isInteger()) {
        r = std::to_chars(buf, buf + sizeof buf, v.asInt());
      } else {
        double d = v.asDouble();
        if (!std::isfinite(d)) throw std::runtime_error("JSON: cannot serialize a non-finite number (NaN or infinity)");
        // Shortest representation that reads back to the same double; locale-independent.
        r = std::to_chars(buf, buf + sizeof buf, d);
      }
      if (r.ec != std::errc()) throw std::runtime_error("JSON: cannot format a number");
      out.append(buf, r.ptr);
      break;
    }
    case Json::Type::String: DumpString(out, v.asString()); break;
    case Json::Type::Array: {
      out += '[';
      bool first = true;
      for (const Json& e : v.asArray()) {
        if (!first) out += ',';
        first = false;
        DumpValue(out, e);
      }
      out += ']';
      break;
    }
    case Json::Type::Object: {
      out += '{';
      bool first = true;
      for (const auto& [k, e] : v.asObject()) {
        if (!first) out += ',';
        first = false;
        DumpString(out, k);
        out += ':';
        DumpValue(out, e);
      }
      out += '}';
      break;
    }
  }
}

}  // namespace

std::string Json::dump() const {
  std::string out;
  DumpValue(out, *this);
  return out;
}

}  // namespace excise
