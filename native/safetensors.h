// Safetensors reading (mmap, zero-copy on CPU where possible) and writing (atomic).
//
// Format: 8-byte little-endian header length N, N bytes of JSON header
//   { "__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} }
// then the data buffer; offsets are relative to the start of the buffer (byte 8 + N).
// The reader applies the official safetensors reader's rules (0.8.0, SafeTensors::read_metadata):
// the header is exactly N bytes of JSON (whitespace around the object allowed, nesting at most 127
// deep), shapes and offsets are unsigned 64-bit integers, unknown fields of a tensor entry are
// ignored, "__metadata__" is null or an object of strings, dtype x shape = the byte span, and the
// tensors, ordered by offsets, tile the data buffer exactly: no overlap, no hole, nothing after the
// last one. A file breaking any rule raises excise::Error(ERR_SAFETENSORS_INVALID) naming the file
// (and tensor), before any tensor byte is read. Stricter than the official reader on purpose:
// duplicate JSON keys (the format forbids them) and dtypes excise does not compute with.
#pragma once
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace excise {

struct TensorInfo {
  std::string name;       // may hold any UTF-8, NUL included
  std::string dtypeName;  // as in the file: "F32", "BF16", ...
  at::ScalarType dtype;
  std::vector<uint64_t> dims;  // the shape exactly as the file declares it
  // The same shape for torch. A dimension above INT64_MAX (possible only in an empty tensor) is -1
  // here and torchShape is false: tensor() refuses such a tensor, readSafetensors still returns it.
  std::vector<int64_t> shape;
  bool torchShape = true;
  uint64_t begin = 0;  // byte offsets into the data buffer
  uint64_t end = 0;
};

// One memory-mapped .safetensors file. Tensors returned by tensor() alias the mapping (copy-on-write
// private mapping: in-place edits never reach the file) and keep it alive.
class SafetensorsFile {
 public:
  static std::shared_ptr<SafetensorsFile> Open(const std::string& path);
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;

  // A CPU tensor over the file's bytes (zero-copy when the data is suitably aligned, else a copy).
  at::Tensor tensor(const std::string& name) const;
  // The tensor's bytes exactly as stored (info must come from tensors()).
  const unsigned char* bytes(const TensorInfo& info) const { return static_cast<const unsigned char*>(base_) + dataStart_ + info.begin; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  void* base_ = nullptr;  // mapping of the whole file
  size_t size_ = 0;
  size_t dataStart_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  std::weak_ptr<SafetensorsFile> self_;
};

// All tensors of a checkpoint folder: model.safetensors, or the shards listed by
// model.safetensors.index.json ("weight_map": name -> file). Names are unique across shards.
struct Checkpoint {
  std::vector<std::shared_ptr<SafetensorsFile>> files;
  std::map<std::string, std::pair<SafetensorsFile*, const TensorInfo*>> entries;

  bool has(const std::string& name) const { return entries.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws ERR_TENSOR_MISSING
  at::Tensor tensor(const std::string& name) const;       // CPU, aliases the mapping when possible
};

// Throws ERR_WEIGHTS_MISSING when the folder has no safetensors weights (and says when it only has
// pytorch_model.bin), ERR_SAFETENSORS_INVALID on a bad index or shard.
Checkpoint OpenCheckpoint(const std::string& dir);

// Writes tensors (any device; copied to CPU contiguous) to `path` atomically: a temporary file in
// the same folder, fsync, then rename. Tensors are laid out like the safetensors library does
// (sorted by dtype then name, 8-byte aligned header).
void WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata);

// dtype name <-> ScalarType. Supported: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL.
at::ScalarType DtypeFromName(const std::string& name, bool* ok);
const char* DtypeName(at::ScalarType t);  // throws ERR_INVALID_DTYPE for unsupported types

}  // namespace excise
