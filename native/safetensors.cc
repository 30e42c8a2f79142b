#include "safetensors.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <stdexcept>

#include "errors.h"
#include "files.h"
#include "json.h"

namespace excise {

// The format is little-endian; the mapping is used as-is, so the host must be too.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "excise reads safetensors in place and needs a little-endian host");

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull * 1000 * 1000;  // the safetensors library's own limit

struct DtypeEntry {
  const char* name;
  at::ScalarType type;
  size_t size;
  int writeRank;  // order of the safetensors library's Dtype enum; files list larger ranks first
};

// writeRank follows the declaration order of the safetensors library's Dtype enum (BOOL < U8 < I8
// < I16 < F16 < BF16 < I32 < F32 < F64 < I64), which its writer sorts by, descending.
constexpr DtypeEntry kDtypes[] = {
    {"F64", at::kDouble, 8, 8}, {"F32", at::kFloat, 4, 7}, {"F16", at::kHalf, 2, 4},  {"BF16", at::kBFloat16, 2, 5},
    {"I64", at::kLong, 8, 9},   {"I32", at::kInt, 4, 6},   {"I16", at::kShort, 2, 3}, {"I8", at::kChar, 1, 2},
    {"U8", at::kByte, 1, 1},    {"BOOL", at::kBool, 1, 0},
};

const DtypeEntry* EntryFor(at::ScalarType t) {
  for (const auto& e : kDtypes) {
    if (e.type == t) return &e;
  }
  return nullptr;
}

const char* kSupportedList = "F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL";
// Dtypes of the official format (safetensors 0.8.0) that excise does not compute with.
const std::string kOtherOfficialDtypes[] = {"F4",      "F6_E2M3",     "F6_E3M2",     "F8_E5M2", "F8_E4M3", "F8_E8M0",
                                            "F8_E4M3FNUZ", "F8_E5M2FNUZ", "U16",         "U32",     "U64",     "C64"};
// serde_json's recursion limit, which the official reader's header parse runs under.
constexpr int kMaxHeaderDepth = 127;

std::string Quote(const std::string& s) { return "\"" + s + "\""; }

std::string Errno(int err) { return std::strerror(err); }

bool Exists(const std::string& path, struct stat* st = nullptr) {
  struct stat tmp;
  return ::stat(path.c_str(), st ? st : &tmp) == 0;
}

std::string JoinPath(const std::string& dir, const std::string& name) {
  if (!dir.empty() && dir.back() == '/') return dir + name;
  return dir + "/" + name;
}

std::string ParentDir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// The weights, shards and index: a missing or unusable file is ERR_IO.
constexpr FileCodes kReaderFiles = {code::kIo, code::kIo};
// The shard index is read whole: far above any real one (a few MB for thousands of tensors).
constexpr uint64_t kMaxIndexBytes = 64ull << 20;

// Multiplies dims and the element size, failing on any overflow of 64 bits.
bool ByteSize(const std::vector<int64_t>& shape, size_t elementSize, uint64_t* out) {
  uint64_t n = elementSize;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) return false;
  }
  // Torch indexes elements with int64.
  if (n > static_cast<uint64_t>(INT64_MAX)) return false;
  *out = n;
  return true;
}

}  // namespace

at::ScalarType DtypeFromName(const std::string& name, bool* ok) {
  for (const auto& e : kDtypes) {
    if (name == e.name) {
      if (ok) *ok = true;
      return e.type;
    }
  }
  if (ok) *ok = false;
  return at::ScalarType::Undefined;
}

const char* DtypeName(at::ScalarType t) {
  if (const DtypeEntry* e = EntryFor(t)) return e->name;
  throw Error(code::kInvalidDtype, std::string("dtype ") + c10::toString(t) + " cannot be stored in safetensors by excise (supported: " +
                                       kSupportedList + ")");
}

// ---- Reading --------------------------------------------------------------------------------------

std::shared_ptr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = path;
  file->self_ = file;
  auto invalid = [&](const std::string& what) { return Error(code::kSafetensorsInvalid, "invalid safetensors file " + path + ": " + what); };

  const int fd = OpenRegularFile(path, kReaderFiles);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(code::kIo, "cannot stat " + path + ": " + Errno(err));
  }
  const uint64_t fileSize = static_cast<uint64_t>(st.st_size);
  if (fileSize < 8) {
    ::close(fd);
    throw invalid("the file is " + std::to_string(fileSize) + " bytes, shorter than the 8-byte header length");
  }
  // Note: like any mmap reader, a file truncated by another process while mapped would fault
  // (SIGBUS) on access; safetensors files are treated as immutable once written (we write by rename).
  // MAP_PRIVATE + PROT_WRITE: tensors handed out may be edited in place (pruning does) and those
  // edits stay in this process (copy-on-write), never reaching the file. A read-only descriptor is
  // enough for a private mapping.
  void* base = ::mmap(nullptr, fileSize, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int mapErr = errno;
  ::close(fd);  // the mapping keeps its own reference to the file
  if (base == MAP_FAILED) throw Error(code::kIo, "cannot map " + path + " into memory: " + Errno(mapErr));
  file->base_ = base;  // owned from here on: the destructor unmaps, whatever throws below
  file->size_ = fileSize;
  const auto* bytes = static_cast<const unsigned char*>(base);

  uint64_t headerLen;
  std::memcpy(&headerLen, bytes, 8);  // little-endian host (static_assert above)
  if (headerLen == 0) throw invalid("the header length is 0");
  // Checked before the file size so that a huge declared length is reported as what it is.
  if (headerLen > kMaxHeaderBytes) {
    throw invalid("the header length " + std::to_string(headerLen) + " exceeds the " + std::to_string(kMaxHeaderBytes) +
                  "-byte limit");
  }
  if (headerLen > fileSize - 8) {
    throw invalid("the header length " + std::to_string(headerLen) + " runs past the end of the file (" +
                  std::to_string(fileSize) + " bytes)");
  }
  file->dataStart_ = 8 + headerLen;
  const uint64_t dataSize = fileSize - file->dataStart_;

  // The header is exactly the declared bytes: JSON whitespace may surround the object (writers pad
  // with spaces), anything else (a NUL, a byte of the data) is invalid JSON.
  std::string headerText(reinterpret_cast<const char*>(bytes + 8), headerLen);
  Json header;
  try {
    header = Json::Parse(headerText, kMaxHeaderDepth);
  } catch (const std::exception& e) {
    throw invalid(std::string("the header is not valid JSON (") + e.what() + ")");
  }
  if (!header.isObject()) throw invalid("the header is not a JSON object");

  for (const auto& [name, entry] : header.asObject()) {
    if (name == "__metadata__") {
      if (entry.isNull()) continue;  // the official reader's Option: null is no metadata
      if (!entry.isObject()) throw invalid("__metadata__ is not an object");
      for (const auto& [key, value] : entry.asObject()) {
        if (!value.isString()) throw invalid("__metadata__ value for " + Quote(key) + " is not a string");
        file->metadata_[key] = value.asString();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { return invalid("tensor " + Quote(name) + ": " + what); };
    if (!entry.isObject()) throw bad("the entry is not an object");
    // Other keys are ignored, as the official reader does (writers may add their own).
    const Json* dtype = entry.find("dtype");
    const Json* shape = entry.find("shape");
    const Json* offsets = entry.find("data_offsets");
    if (!dtype) throw bad("missing \"dtype\"");
    if (!shape) throw bad("missing \"shape\"");
    if (!offsets) throw bad("missing \"data_offsets\"");

    TensorInfo info;
    info.name = name;
    if (!dtype->isString()) throw bad("\"dtype\" is not a string");
    info.dtypeName = dtype->asString();
    bool known = false;
    info.dtype = DtypeFromName(info.dtypeName, &known);
    if (!known) {
      const bool official = std::find(std::begin(kOtherOfficialDtypes), std::end(kOtherOfficialDtypes), info.dtypeName) !=
                            std::end(kOtherOfficialDtypes);
      throw bad(std::string(official ? "unsupported dtype " : "unknown dtype ") + Quote(info.dtypeName) + " (excise reads " +
                kSupportedList + ")");
    }
    const uint64_t elementSize = EntryFor(info.dtype)->size;

    if (!shape->isArray()) throw bad("\"shape\" is not an array");
    for (const Json& d : shape->asArray()) {
      if (!d.isUnsigned()) throw bad("\"shape\" must hold integers from 0 to 2^64-1");
      info.dims.push_back(d.asUint());
      const bool fits = d.asUint() <= static_cast<uint64_t>(INT64_MAX);
      info.shape.push_back(fits ? static_cast<int64_t>(d.asUint()) : -1);
      info.torchShape = info.torchShape && fits;
    }
    // As the official reader: the element count, then the bit count, each within 64 bits (so an
    // empty tensor may have huge dimensions after its 0, but not before it).
    uint64_t elements = 1, bits;
    for (uint64_t d : info.dims) {
      if (__builtin_mul_overflow(elements, d, &elements)) throw bad("the shape's element count overflows 64 bits");
    }
    if (__builtin_mul_overflow(elements, elementSize * 8, &bits)) throw bad("the shape's byte size overflows 64 bits");
    const uint64_t expectedBytes = bits / 8;

    if (!offsets->isArray() || offsets->asArray().size() != 2) throw bad("\"data_offsets\" is not a [begin, end] pair");
    const Json& b = offsets->asArray()[0];
    const Json& e = offsets->asArray()[1];
    if (!b.isUnsigned() || !e.isUnsigned()) throw bad("\"data_offsets\" must be integers from 0 to 2^64-1");
    info.begin = b.asUint();
    info.end = e.asUint();
    if (info.begin > info.end) {
      throw bad("data_offsets begin " + std::to_string(info.begin) + " is after end " + std::to_string(info.end));
    }
    if (info.end > dataSize) {
      throw bad("data_offsets end " + std::to_string(info.end) + " is beyond the data buffer (" + std::to_string(dataSize) +
                " bytes)");
    }
    if (info.end - info.begin != expectedBytes) {
      throw bad("data_offsets span " + std::to_string(info.end - info.begin) + " bytes but dtype " + info.dtypeName +
                " and the shape need " + std::to_string(expectedBytes));
    }
    file->index_[name] = file->tensors_.size();
    file->tensors_.push_back(std::move(info));
  }

  // Ordered by (begin, end), the tensors must tile the data buffer: each starts where the previous
  // ends, the first at 0, the last ends at the buffer's end. No shared bytes (an in-place edit of
  // one would change another), no hole, nothing trailing: a header length off by a byte or two
  // (ending inside the header's padding) shifts the buffer and is caught here instead of loading
  // every weight a byte early. Empty tensors sit at a boundary.
  std::vector<const TensorInfo*> byOffset;
  for (const auto& t : file->tensors_) byOffset.push_back(&t);
  std::sort(byOffset.begin(), byOffset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* t : byOffset) {
    if (t->begin < covered) {
      throw invalid("tensors " + Quote(previous->name) + " and " + Quote(t->name) + " overlap in the data buffer");
    }
    if (t->begin > covered) {
      throw invalid("bytes " + std::to_string(covered) + " to " + std::to_string(t->begin) + " of the data buffer belong to no tensor" +
                    " (a hole before tensor " + Quote(t->name) + ")");
    }
    covered = t->end;
    previous = t;
  }
  if (covered != dataSize) {
    throw invalid("the data buffer is " + std::to_string(dataSize) + " bytes but the tensors cover " + std::to_string(covered) +
                  " (trailing data, or a header length that does not match the header)");
  }
  return file;
}

SafetensorsFile::~SafetensorsFile() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo* info = find(name);
  if (info == nullptr) throw Error(code::kTensorMissing, "tensor " + Quote(name) + " not found in " + path_);
  // Torch sizes and strides are int64 (a stride multiplies the dimensions after it, 0s counted as 1).
  bool representable = info->torchShape;
  uint64_t stride = 1;
  for (size_t i = info->dims.size(); representable && i-- > 0;) {
    representable = !__builtin_mul_overflow(stride, std::max<uint64_t>(info->dims[i], 1), &stride) &&
                    stride <= static_cast<uint64_t>(INT64_MAX);
  }
  if (!representable) {
    throw Error(code::kSafetensorsInvalid, "invalid safetensors file " + path_ + ": tensor " + Quote(name) +
                                               ": its shape is too large for a torch tensor");
  }
  auto options = at::TensorOptions().dtype(info->dtype).device(at::kCPU);
  const size_t nbytes = info->end - info->begin;
  if (nbytes == 0) return at::empty(info->shape, options);
  unsigned char* data = static_cast<unsigned char*>(base_) + dataStart_ + info->begin;

  if (info->dtype == at::kBool) {
    // A bool tensor must hold only 0 or 1; any other byte is undefined behaviour in torch kernels.
    // Normalize such (rare, hand-made) files on a copy rather than trusting them.
    if (std::any_of(data, data + nbytes, [](unsigned char c) { return c > 1; })) {
      at::Tensor raw = at::empty(info->shape, options.dtype(at::kByte));
      std::memcpy(raw.data_ptr(), data, nbytes);
      return raw.ne(0);
    }
  }

  const size_t elementSize = EntryFor(info->dtype)->size;
  std::shared_ptr<const SafetensorsFile> keepAlive = self_.lock();
  if (keepAlive && reinterpret_cast<uintptr_t>(data) % elementSize == 0) {
    // Zero-copy: the tensor's deleter owns a reference to this file, so the mapping outlives it.
    return at::from_blob(data, info->shape, [keepAlive](void*) mutable { keepAlive.reset(); }, options);
  }
  // Unaligned data (a header length that is not a multiple of 8) would make typed loads misaligned.
  at::Tensor copy = at::empty(info->shape, options);
  std::memcpy(copy.data_ptr(), data, nbytes);
  return copy;
}

// ---- Checkpoints ----------------------------------------------------------------------------------

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = entries.find(name);
  if (it == entries.end()) {
    std::string where = files.empty() ? "the checkpoint"
                        : files.size() == 1 ? files[0]->path()
                                            : "the " + std::to_string(files.size()) + " shards in " + ParentDir(files[0]->path());
    throw Error(code::kTensorMissing, "tensor " + Quote(name) + " not found in " + where);
  }
  return *it->second.second;
}

at::Tensor Checkpoint::tensor(const std::string& name) const {
  info(name);  // throws the descriptive ERR_TENSOR_MISSING
  return entries.at(name).first->tensor(name);
}

Checkpoint OpenCheckpoint(const std::string& dir) {
  struct stat st;
  if (!Exists(dir, &st)) throw Error(code::kModelNotFound, "model folder not found: " + dir);
  if (!S_ISDIR(st.st_mode)) throw Error(code::kModelNotFound, "not a folder: " + dir + " (give the folder that holds the model)");

  Checkpoint ckpt;
  auto addFile = [&](const std::shared_ptr<SafetensorsFile>& file) {
    ckpt.files.push_back(file);
    for (const TensorInfo& t : file->tensors()) {
      auto [it, inserted] = ckpt.entries.emplace(t.name, std::make_pair(file.get(), &t));
      if (!inserted) {
        throw Error(code::kSafetensorsInvalid, "tensor " + Quote(t.name) + " appears in both " + it->second.first->path() +
                                                   " and " + file->path());
      }
    }
  };

  const std::string indexPath = JoinPath(dir, "model.safetensors.index.json");
  if (Exists(indexPath)) {
    auto invalid = [&](const std::string& what) { return Error(code::kSafetensorsInvalid, "invalid " + indexPath + ": " + what); };
    Json index;
    try {
      index = Json::Parse(ReadRegularFile(indexPath, kMaxIndexBytes, kReaderFiles));
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw invalid(std::string("not valid JSON (") + e.what() + ")");
    }
    const Json* weightMap = index.find("weight_map");
    if (!weightMap || !weightMap->isObject()) throw invalid("missing the \"weight_map\" object");
    if (weightMap->asObject().empty()) throw invalid("\"weight_map\" lists no tensors");

    // Each shard is opened once, in the order the index first mentions it.
    std::map<std::string, std::shared_ptr<SafetensorsFile>> shards;
    for (const auto& [tensorName, fileJson] : weightMap->asObject()) {
      if (!fileJson.isString()) throw invalid("the shard of tensor " + Quote(tensorName) + " is not a file name");
      const std::string& shardName = fileJson.asString();
      // Only plain names: an index must not reach outside the model folder.
      if (shardName.empty() || shardName == "." || shardName.find('/') != std::string::npos ||
          shardName.find('\\') != std::string::npos || shardName.find("..") != std::string::npos ||
          shardName.find('\0') != std::string::npos) {
        throw invalid("shard " + Quote(shardName) + " of tensor " + Quote(tensorName) + " is not a plain file name in the folder");
      }
      auto it = shards.find(shardName);
      if (it == shards.end()) {
        const std::string shardPath = JoinPath(dir, shardName);
        if (!Exists(shardPath)) {
          throw Error(code::kWeightsMissing, indexPath + " lists shard " + shardName + ", which is missing from " + dir);
        }
        it = shards.emplace(shardName, SafetensorsFile::Open(shardPath)).first;
        addFile(it->second);
      }
      if (!it->second->find(tensorName)) {
        throw invalid("tensor " + Quote(tensorName) + " is listed in shard " + shardName + " but is not in " + it->second->path());
      }
    }
    return ckpt;
  }

  const std::string single = JoinPath(dir, "model.safetensors");
  if (Exists(single)) {
    addFile(SafetensorsFile::Open(single));
    return ckpt;
  }

  // No safetensors weights: say what is there instead, since .bin-only repos are common.
  std::vector<std::string> bins;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* ent = ::readdir(d)) {
      std::string n = ent->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".bin") == 0) bins.push_back(n);
    }
    ::closedir(d);
  }
  if (!bins.empty()) {
    std::sort(bins.begin(), bins.end());
    throw Error(code::kWeightsMissing,
                "only PyTorch .bin weights were found in " + dir + " (" + bins[0] + (bins.size() > 1 ? ", ..." : "") +
                    "); excise needs safetensors weights (model.safetensors or model.safetensors.index.json). Convert them "
                    "with transformers: AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)");
  }
  throw Error(code::kWeightsMissing, "no weights in " + dir + ": expected model.safetensors or model.safetensors.index.json");
}

// ---- Writing --------------------------------------------------------------------------------------

namespace {

// Owns a temporary file until it is renamed into place; removes it on any failure.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    std::random_device rd;
    char suffix[64];
    std::snprintf(suffix, sizeof suffix, ".tmp-%ld-%08x%08x", static_cast<long>(::getpid()), rd(), rd());
    path_ = target + suffix;
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ < 0) throw Error(code::kIo, "cannot write " + target_ + ": cannot create a temporary file: " + Errno(errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }

  void Write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      // Chunked: some kernels cap a single write at ~2 GB.
      ssize_t w = ::write(fd_, p, std::min<size_t>(n, size_t{1} << 30));
      if (w < 0) {
        if (errno == EINTR) continue;
        Fail("write failed", errno);
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  // fsync before rename so that a crash never leaves the new name pointing at unwritten data.
  void Commit() {
    if (::fsync(fd_) != 0) Fail("fsync failed", errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) Fail("close failed", errno);
    if (::rename(path_.c_str(), target_.c_str()) != 0) Fail("rename failed", errno);
    committed_ = true;
    // Persist the rename itself; best effort (some filesystems refuse fsync on directories).
    int dfd = ::open(ParentDir(target_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  [[noreturn]] void Fail(const char* what, int err) {
    throw Error(code::kIo, "cannot write " + target_ + ": " + what + ": " + Errno(err));
  }

  std::string target_;
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void WriteSafetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  struct Item {
    const std::string* name;
    const at::Tensor* tensor;
    const DtypeEntry* dtype;
    uint64_t bytes;
  };
  std::vector<Item> items;
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") throw Error(code::kInvalidArgument, "cannot write " + path + ": \"__metadata__\" is reserved, not a tensor name");
    if (!names.insert(name).second) throw Error(code::kInvalidArgument, "cannot write " + path + ": duplicate tensor name " + Quote(name));
    if (!t.defined()) throw Error(code::kInvalidArgument, "cannot write " + path + ": tensor " + Quote(name) + " is undefined");
    if (t.layout() != at::kStrided) {
      throw Error(code::kInvalidArgument, "cannot write " + path + ": tensor " + Quote(name) + " is not a dense tensor");
    }
    const DtypeEntry* dtype = EntryFor(t.scalar_type());
    if (!dtype) DtypeName(t.scalar_type());  // throws ERR_INVALID_DTYPE
    uint64_t bytes;
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (!ByteSize(shape, dtype->size, &bytes)) {
      throw Error(code::kInvalidArgument, "cannot write " + path + ": tensor " + Quote(name) + " is too large");
    }
    items.push_back({&name, &t, dtype, bytes});
  }
  // The safetensors library's order: larger dtypes first (keeps every tensor aligned to its element
  // size, since the data buffer starts 8-aligned), then by name.
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    if (a.dtype->writeRank != b.dtype->writeRank) return a.dtype->writeRank > b.dtype->writeRank;
    return *a.name < *b.name;
  });

  std::vector<std::pair<std::string, Json>> header;
  if (!metadata.empty()) {
    std::vector<std::pair<std::string, Json>> meta;
    for (const auto& [k, v] : metadata) meta.emplace_back(k, Json::String(v));
    header.emplace_back("__metadata__", Json::Object(std::move(meta)));
  }
  uint64_t offset = 0;
  for (const Item& item : items) {
    std::vector<Json> shape;
    for (int64_t d : item.tensor->sizes()) shape.push_back(Json::Integer(d));
    const uint64_t end = offset + item.bytes;
    header.emplace_back(*item.name, Json::Object({
                                        {"dtype", Json::String(item.dtype->name)},
                                        {"shape", Json::Array(std::move(shape))},
                                        {"data_offsets", Json::Array({Json::Integer(static_cast<int64_t>(offset)),
                                                                      Json::Integer(static_cast<int64_t>(end))})},
                                    }));
    offset = end;
  }
  std::string headerText = Json::Object(std::move(header)).dump();
  // Pad with spaces so that the data buffer starts 8-byte aligned (readers map it in place).
  headerText.append((8 - headerText.size() % 8) % 8, ' ');
  const uint64_t headerLen = headerText.size();
  if (headerLen > kMaxHeaderBytes) {
    throw Error(code::kInvalidArgument, "cannot write " + path + ": the header would be " + std::to_string(headerLen) +
                                            " bytes, over the " + std::to_string(kMaxHeaderBytes) + "-byte limit readers enforce");
  }

  TempFile out(path);
  out.Write(&headerLen, 8);  // little-endian host
  out.Write(headerText.data(), headerText.size());
  for (const Item& item : items) {
    // One tensor at a time: at most one extra CPU copy is alive while writing.
    at::Tensor cpu = item.tensor->to(at::kCPU).contiguous();
    if (item.bytes > 0) out.Write(cpu.data_ptr(), item.bytes);
  }
  out.Commit();
}

}  // namespace excise
