#include "model_loader.h"

#include <c10/core/DeviceGuard.h>
#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "errors.h"
#include "families/family.h"
#include "runtime.h"
#include "safetensors.h"

namespace excise {
namespace {

std::string ShapeString(const std::vector<int64_t>& s) {
  std::ostringstream o;
  o << "[";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  o << "]";
  return o.str();
}

std::string Expand(const std::string& pattern, const std::string& prefix, int64_t layer) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern.compare(i, 3, "{P}") == 0) {
      out += prefix;
      i += 2;
    } else if (pattern.compare(i, 3, "{L}") == 0) {
      out += std::to_string(layer);
      i += 2;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

// Older configs sometimes lack "architectures"; model_type then picks the causal-LM class.
std::string ArchitectureOf(const ConfigReader& r) {
  if (const Json* a = r.root().find("architectures"); a != nullptr && !a->isNull()) {
    if (!a->isArray() || a->asArray().empty() || !a->asArray()[0].isString()) {
      r.fail("field \"architectures\" must be a non-empty list of class names");
    }
    return a->asArray()[0].asString();
  }
  const std::string architecture = ArchitectureForModelType(r.getString("model_type", ""));
  if (architecture.empty()) r.fail("neither \"architectures\" nor a supported \"model_type\" is given");
  return architecture;
}

const FamilyAdapter& FamilyFor(const std::string& arch, const std::string& file) {
  const FamilyAdapter* f = FindFamily(arch);
  if (f == nullptr) {
    std::string list;
    for (const auto& a : SupportedArchitectures()) list += (list.empty() ? "" : ", ") + a;
    throw Error(code::kUnsupportedArchitecture,
                file + ": architecture \"" + arch + "\" is not supported (supported: " + list + ")");
  }
  return *f;
}

bool AnyCuda(const std::vector<at::Device>& devices) {
  return std::any_of(devices.begin(), devices.end(), [](const at::Device& d) { return d.is_cuda(); });
}

at::ScalarType ResolveDtype(const LoadOptions& opts, const DecoderConfig& cfg, const std::vector<at::Device>& devices) {
  if (!opts.dtype.empty()) return ParseDtype(opts.dtype);
  // float32 on CPU (half-precision matmuls are slow there); the checkpoint's own dtype on GPUs
  // (a model split over a GPU and the CPU too: it is one dtype, and the GPU part is the big one).
  if (AnyCuda(devices) && !cfg.configDtype.empty()) return ParseDtype(cfg.configDtype);
  return at::kFloat;
}

void SetWeight(Linear& l, const at::Tensor& t, bool inputMajor) {
  l.weight = t;
  l.inputMajor = inputMajor;
}

// A fused [gate | up] weight [2 dMlp, d]: the forward multiplies by it whole (so training's gradients
// reach it: a view made before requires_grad is set carries none), and its two row views are what
// pruning edits in place.
void SplitGateUp(Block& b, const at::Tensor& t, int64_t dMlp) {
  b.gateUp.weight = t;
  b.gate.weight = t.narrow(0, 0, dMlp);
  b.fcIn.weight = t.narrow(0, dMlp, dMlp);
}

// Puts a bound tensor where its role says in the decoder (the bind column of EXCISE_WEIGHT_ROLES).
void Bind(Decoder& d, Role role, int64_t layer, const at::Tensor& t, bool inputMajor) {
  const DecoderConfig& cfg = d.config();
  switch (role) {
#define EXCISE_BIND_Model(bind) \
  {                            \
    Decoder& s = d;            \
    bind;                      \
  }
#define EXCISE_BIND_Layer(bind)                          \
  {                                                     \
    Block& s = d.blocks()[static_cast<size_t>(layer)];  \
    bind;                                               \
  }
#define EXCISE_BIND_ROLE(role, scope, name, bind) \
  case Role::role:                               \
    EXCISE_BIND_##scope(bind) break;
    EXCISE_WEIGHT_ROLES(EXCISE_BIND_ROLE)
#undef EXCISE_BIND_ROLE
#undef EXCISE_BIND_Layer
#undef EXCISE_BIND_Model
  }
  (void)cfg;
  (void)inputMajor;
}

// Norm kinds/eps/dims and tied heads: everything besides the tensors themselves.
void FinishStructure(Decoder& d) {
  const DecoderConfig& c = d.config();
  auto setup = [&](Norm& n, int64_t dim = 0) {
    n.kind = c.norm;
    n.eps = c.normEps;
    n.dim = dim > 0 ? dim : c.dModel;
    n.weightOffset = c.normWeightOffset;
    n.weightInFloat = c.normWeightInFloat;
  };
  const bool perHead = c.qkNorm == QkNorm::PerHead;
  for (Block& b : d.blocks()) {
    setup(b.ln1);
    setup(b.ln2);
    setup(b.postAttnNorm);
    setup(b.postMlpNorm);
    setup(b.qNorm, perHead ? c.headDim : c.attnDim());
    setup(b.kNorm, perHead ? c.headDim : c.kvDim());
  }
  setup(d.finalNorm);
  setup(d.embedNorm);
  setup(d.headNorm);
  d.hasFinalNorm = c.finalNorm;
  if (c.tiedEmbeddings || !d.lmHead.defined()) d.lmHead = d.embed;
  d.finalize();
}

struct Slot {
  const WeightSpec* spec;
  int64_t layer;  // -1 for model-level
  std::string name;
};

// The LM head's roles (with RoBERTa's masked-LM dense + norm before it): they sit on the head's device.
bool IsHeadRole(Role r) {
  return r == Role::LmHead || r == Role::LmHeadB || r == Role::HeadDenseW || r == Role::HeadDenseB ||
         r == Role::HeadNormW || r == Role::HeadNormB;
}

// Model-level roles that sit with the final norm (the last stage) or the head; the others
// (embeddings, input projection, RoBERTa's embedding norm) sit with the embedding (the first).
bool IsOutputRole(Role r) {
  return r == Role::FinalNormW || r == Role::FinalNormB || r == Role::ProjOut || IsHeadRole(r);
}

// The device a checkpoint tensor is bound on (placement.h).
at::Device DeviceFor(const Placement& p, const Slot& slot) {
  if (slot.layer >= 0) return p.layer(slot.layer);
  if (IsHeadRole(slot.spec->role)) return p.head();
  return IsOutputRole(slot.spec->role) ? p.last() : p.embed();
}

std::vector<Slot> ExpectedTensors(const FamilyAdapter& f, const DecoderConfig& cfg, const std::string& prefix) {
  std::vector<Slot> out;
  for (const WeightSpec& s : f.weights) {
    if (s.present != nullptr && !s.present(cfg)) continue;
    if (IsLayerRole(s.role)) {
      for (int64_t L = 0; L < cfg.nLayers; ++L) out.push_back({&s, L, Expand(s.name, prefix, L)});
    } else {
      out.push_back({&s, -1, Expand(s.name, prefix, -1)});
    }
  }
  return out;
}

// Reads and checks config.json's sizes; allocates nothing sized by them.
DecoderConfig ReadDecoderConfig(const Json& root, const std::string& file, const FamilyAdapter** familyOut) {
  ConfigReader reader(root, file);
  if (!root.isObject()) reader.fail("expected a JSON object");
  const std::string arch = ArchitectureOf(reader);
  const FamilyAdapter& family = FamilyFor(arch, file);
  DecoderConfig cfg = family.readConfig(reader, arch);
  ValidateConfig(cfg, file);
  *familyOut = &family;
  return cfg;
}

// Host-to-device copies of checkpoint tensors through two pinned staging buffers: while the device
// copies one chunk (asynchronously), the host fills the other from the mapped file. The bytes go
// over as stored; the caller converts the dtype on the device. CUDA only (pinned memory needs it).
class PinnedUploader {
 public:
  static constexpr int64_t kChunkBytes = 32 << 20;
  explicit PinnedUploader(at::Device device) : device_(device) {
    for (int k = 0; k < 2; ++k) {
      buffers_[k] = at::empty({kChunkBytes}, at::TensorOptions().dtype(at::kByte).pinned_memory(true));
      events_[k].emplace(device.type());
    }
  }
  ~PinnedUploader() {
    for (int k = 0; k < 2; ++k) {
      if (recorded_[k]) events_[k]->synchronize();  // the device is done with both buffers
    }
  }
  // host: a CPU tensor (over the mapped file). Returns it on the device, in its own dtype.
  at::Tensor Upload(const at::Tensor& host) {
    const at::Tensor src = host.contiguous();
    const int64_t n = static_cast<int64_t>(src.nbytes());
    at::Tensor out = at::empty({n}, at::TensorOptions().dtype(at::kByte).device(device_));
    const auto* bytes = static_cast<const unsigned char*>(src.data_ptr());
    c10::Stream stream = c10::impl::VirtualGuardImpl(device_.type()).getStream(device_);
    for (int64_t off = 0; off < n; off += kChunkBytes) {
      const int64_t len = std::min(kChunkBytes, n - off);
      const int k = next_;
      next_ = 1 - next_;
      if (recorded_[k]) events_[k]->synchronize();  // wait until the device has read this buffer
      std::memcpy(buffers_[k].data_ptr(), bytes + off, static_cast<size_t>(len));
      out.narrow(0, off, len).copy_(buffers_[k].narrow(0, 0, len), /*non_blocking=*/true);
      events_[k]->record(stream);
      recorded_[k] = true;
    }
    return out.view(src.scalar_type()).view(src.sizes());
  }

 private:
  at::Device device_;
  at::Tensor buffers_[2];
  std::optional<c10::Event> events_[2];
  bool recorded_[2] = {false, false};
  int next_ = 0;
};

// The weights onto a GPU, shard by shard in file order: each tensor crosses in its stored dtype
// through the pinned double buffer and is converted on the device; a shard is unmapped as soon as
// its tensors are across. Tensors the model does not use stay on the CPU as copies (for save()).
void BindOnDevice(Decoder& d, Checkpoint& ckpt, const std::vector<Slot>& slots) {
  std::map<std::string, const Slot*> slotByName;
  for (const Slot& slot : slots) slotByName[slot.name] = &slot;
  // One double-buffered uploader per GPU of the placement, made when its first tensor comes.
  std::unordered_map<at::Device, std::unique_ptr<PinnedUploader>> uploaders;
  for (auto& file : ckpt.files) {
    for (const TensorInfo& info : file->tensors()) {
      auto it = slotByName.find(info.name);
      at::Tensor t;
      if (it != slotByName.end()) {
        const at::Device device = DeviceFor(d.placement(), *it->second);
        if (device.is_cuda()) {
          std::unique_ptr<PinnedUploader>& uploader = uploaders[device];
          if (!uploader) uploader = std::make_unique<PinnedUploader>(device);
          t = uploader->Upload(file->tensor(info.name)).to(d.dtype()).contiguous();
        } else {
          // A CPU stage of a mixed placement: a copy (the shard is unmapped below).
          t = file->tensor(info.name).to(at::kCPU, d.dtype(), /*non_blocking=*/false, /*copy=*/true).contiguous();
        }
        Bind(d, it->second->spec->role, it->second->layer, t, it->second->spec->inputMajor);
      } else {
        t = file->tensor(info.name).clone();
      }
      d.params().emplace_back(info.name, t);
    }
    file.reset();  // unmapped: nothing aliases it any more
  }
  ckpt.entries.clear();  // they pointed into the shards
}

// The devices asked for, placed (placement.h): layers balanced by their bytes in the model's dtype.
std::unique_ptr<Decoder> MakeDecoder(DecoderConfig cfg, const LoadOptions& opts, const std::vector<Slot>& slots) {
  std::vector<at::Device> devices;
  std::vector<double> capacity;
  if (!opts.devices.empty()) {
    devices = ParseDeviceList(opts.devices);
    capacity.assign(devices.size(), 1.0);
  } else if (opts.device == "auto") {
    AutoDevices found = ResolveAutoDevices();
    // Every device takes at least one layer: with more GPUs than layers 'auto' uses the nLayers
    // with the most free memory (ties: the lower index), in index order, rather than failing.
    std::vector<size_t> keep(found.devices.size());
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = i;
    if (cfg.nLayers >= 1 && static_cast<int64_t>(keep.size()) > cfg.nLayers) {
      std::stable_sort(keep.begin(), keep.end(), [&](size_t a, size_t b) { return found.capacity[a] > found.capacity[b]; });
      keep.resize(static_cast<size_t>(cfg.nLayers));
      std::sort(keep.begin(), keep.end());
    }
    for (size_t i : keep) {
      devices.push_back(found.devices[i]);
      capacity.push_back(found.capacity[i]);
    }
  } else {
    devices = {ParseDevice(opts.device)};
    capacity = {1.0};
  }
  const at::ScalarType dtype = ResolveDtype(opts, cfg, devices);
  PlacementSizes sizes;
  sizes.layerBytes.assign(static_cast<size_t>(cfg.nLayers), 0);
  bool tiedHead = true;  // no LM head tensor of its own: the embedding serves (FinishStructure)
  for (const Slot& slot : slots) {
    int64_t bytes = static_cast<int64_t>(c10::elementSize(dtype));
    for (int64_t dim : slot.spec->shape(cfg)) bytes *= dim;
    if (slot.layer >= 0) {
      sizes.layerBytes[static_cast<size_t>(slot.layer)] += bytes;
    } else if (IsOutputRole(slot.spec->role)) {
      sizes.finalBytes += bytes;
    } else {
      sizes.embedBytes += bytes;
    }
    if (slot.spec->role == Role::LmHead) tiedHead = false;
  }
  if (cfg.tiedEmbeddings) tiedHead = true;
  Placement placement = PlanPlacement(devices, capacity, sizes, tiedHead);
  return std::make_unique<Decoder>(std::move(cfg), std::move(placement), dtype);
}

}  // namespace

std::unique_ptr<Decoder> LoadDecoder(const std::string& dir, const LoadOptions& opts) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(code::kModelNotFound, dir + ": model folder not found");
  }
  const std::string configFile = dir + "/config.json";
  const Json root = ReadJsonFile(configFile, code::kConfigMissing);
  const FamilyAdapter* family = nullptr;
  DecoderConfig cfg = ReadDecoderConfig(root, configFile, &family);

  Checkpoint ckpt = OpenCheckpoint(dir);
  // Which base-model prefix does this checkpoint use? Decided by the token embedding.
  const WeightSpec* embedSpec = nullptr;
  for (const WeightSpec& s : family->weights) {
    if (s.role == Role::Embed) embedSpec = &s;
  }
  std::string prefix;
  bool found = false;
  for (const std::string& p : family->prefixes) {
    if (ckpt.has(Expand(embedSpec->name, p, -1))) {
      prefix = p;
      found = true;
      break;
    }
  }
  if (!found) {
    throw Error(code::kTensorMissing, dir + ": tensor \"" + Expand(embedSpec->name, family->prefixes[0], -1) +
                                          "\" (token embedding) is missing from the checkpoint");
  }

  // The config against the checkpoint before anything is allocated: a layer count the checkpoint
  // cannot hold fails at once, naming the last layer's first tensor.
  size_t tensorCount = 0;
  for (const auto& file : ckpt.files) tensorCount += file->tensors().size();
  for (const WeightSpec& s : family->weights) {
    if (!IsLayerRole(s.role) || (s.present != nullptr && !s.present(cfg))) continue;
    const std::string last = Expand(s.name, prefix, cfg.nLayers - 1);
    if (static_cast<uint64_t>(cfg.nLayers) > tensorCount || !ckpt.has(last)) {
      throw Error(code::kTensorMissing, dir + ": tensor \"" + last + "\" (" + RoleName(s.role) + " of layer " +
                                            std::to_string(cfg.nLayers - 1) + ") is missing from the checkpoint (" +
                                            configFile + " says " + std::to_string(cfg.nLayers) + " layers)");
    }
    break;
  }
  const std::vector<Slot> slots = ExpectedTensors(*family, cfg, prefix);
  for (const Slot& slot : slots) {
    const std::string where = slot.layer >= 0 ? " of layer " + std::to_string(slot.layer) : "";
    if (!ckpt.has(slot.name)) {
      throw Error(code::kTensorMissing, dir + ": tensor \"" + slot.name + "\" (" + RoleName(slot.spec->role) + where +
                                            ") is missing from the checkpoint");
    }
    const TensorInfo& info = ckpt.info(slot.name);
    const Dims expected = slot.spec->shape(cfg);
    if (info.shape != expected) {
      throw Error(code::kTensorShape, dir + ": tensor \"" + slot.name + "\" has shape " + ShapeString(info.shape) +
                                          " but config.json implies " + ShapeString(expected) + " (" +
                                          RoleName(slot.spec->role) + where + ")");
    }
    if (!at::isFloatingType(info.dtype)) {
      throw Error(code::kTensorShape, dir + ": tensor \"" + slot.name + "\" has integer dtype " + info.dtypeName +
                                          "; quantized checkpoints are not supported");
    }
  }

  std::unique_ptr<Decoder> d = MakeDecoder(std::move(cfg), opts, slots);
  d->sourceConfig = root;
  // The model's (first) device is current while it loads (this runs on Node's thread pool); every
  // tensor is bound with its own device explicitly.
  c10::OptionalDeviceGuard deviceGuard(d->device().is_cpu() ? std::nullopt : std::optional<c10::Device>(d->device()));
  if (AnyCuda(d->placement().devices)) {
    BindOnDevice(*d, ckpt, slots);
    FinishStructure(*d);
    return d;
  }
  std::map<std::string, at::Tensor> bound;
  for (const Slot& slot : slots) {
    const TensorInfo& info = ckpt.info(slot.name);
    const at::Device device = DeviceFor(d->placement(), slot);
    at::Tensor t = ckpt.tensor(slot.name).to(device, d->dtype());
    if (!device.is_cpu() || t.scalar_type() != info.dtype) t = t.contiguous();
    Bind(*d, slot.spec->role, slot.layer, t, slot.spec->inputMajor);
    bound[slot.name] = t;
  }
  // Keep every checkpoint tensor under its own name, in file order; unknown ones stay as they are
  // (on CPU, aliasing the file) so a saved model holds everything the source did.
  for (const auto& file : ckpt.files) {
    for (const TensorInfo& info : file->tensors()) {
      auto it = bound.find(info.name);
      d->params().emplace_back(info.name, it != bound.end() ? it->second : file->tensor(info.name));
    }
  }
  FinishStructure(*d);
  return d;
}

std::unique_ptr<Decoder> CreateRandomDecoder(const std::string& configJson, const LoadOptions& opts, uint64_t seed) {
  Json root;
  try {
    root = Json::Parse(configJson);
  } catch (const std::exception& e) {
    throw Error(code::kConfigInvalid, std::string("config: not valid JSON (") + e.what() + ")");
  }
  const FamilyAdapter* family = nullptr;
  DecoderConfig config = ReadDecoderConfig(root, "config", &family);
  // Random weights are made in float32 on the CPU first: refuse what this machine cannot hold
  // rather than let the allocator over-commit and the kernel kill the process.
  const std::vector<Slot> slots = ExpectedTensors(*family, config, family->prefixes[0]);
  uint64_t bytes = 0;
  for (const Slot& slot : slots) {
    uint64_t n = sizeof(float);
    for (int64_t dim : slot.spec->shape(config)) {
      if (dim < 0 || __builtin_mul_overflow(n, static_cast<uint64_t>(dim), &n)) n = UINT64_MAX;
    }
    if (__builtin_add_overflow(bytes, n, &bytes)) bytes = UINT64_MAX;
  }
  const uint64_t physical = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (bytes > physical / 2) {
    throw Error(code::kOutOfMemory, "config: random weights of " + std::to_string(bytes) + " bytes (float32) exceed half of this machine's " +
                                        std::to_string(physical) + " bytes of memory");
  }
  std::unique_ptr<Decoder> d = MakeDecoder(std::move(config), opts, slots);
  d->sourceConfig = root;
  c10::OptionalDeviceGuard deviceGuard(d->device().is_cpu() ? std::nullopt : std::optional<c10::Device>(d->device()));
  const DecoderConfig& cfg = d->config();
  at::Generator gen = at::detail::createCPUGenerator(seed);
  for (const Slot& slot : slots) {
    const Dims shape = slot.spec->shape(cfg);
    const Role r = slot.spec->role;
    const bool isNormWeight = r == Role::Ln1W || r == Role::Ln2W || r == Role::FinalNormW || r == Role::PostAttnNormW ||
                              r == Role::PostMlpNormW || r == Role::QNormW || r == Role::KNormW ||
                              r == Role::EmbedNormW || r == Role::HeadNormW;
    const bool isBias = shape.size() == 1 && !isNormWeight;
    at::Tensor t;
    if (isNormWeight) {
      t = cfg.normWeightOffset != 0 ? at::zeros(shape, at::kFloat) : at::ones(shape, at::kFloat);  // a unit scale
    } else if (isBias) {
      t = at::zeros(shape, at::kFloat);
    } else {
      t = at::normal(0.0, 0.02, shape, gen, at::TensorOptions().dtype(at::kFloat));
    }
    t = t.to(DeviceFor(d->placement(), slot)).to(d->dtype()).contiguous();  // converted where it lands
    Bind(*d, r, slot.layer, t, slot.spec->inputMajor);
    d->params().emplace_back(slot.name, t);
  }
  FinishStructure(*d);
  return d;
}

}  // namespace excise
