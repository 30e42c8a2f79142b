#include "prune.h"

#include "errors.h"

namespace excise {
namespace {

at::Tensor IndexTensor(const std::vector<int64_t>& idx, at::Device device) {
  return at::tensor(idx, at::TensorOptions().dtype(at::kLong)).to(device);
}

// Input features of a Linear live on dim 1 of an nn.Linear weight [out, in], dim 0 of a Conv1D [in, out].
int64_t InputDim(const Linear& l) { return l.inputMajor ? 0 : 1; }
int64_t OutputDim(const Linear& l) { return l.inputMajor ? 1 : 0; }

// W_out[:, idx] @ mean[idx], computed in float64: the bias change that replaces neurons by their means.
at::Tensor MeanContribution(const Linear& out, const std::vector<int64_t>& idx, const std::vector<double>& mean) {
  std::vector<double> m;
  m.reserve(idx.size());
  for (int64_t i : idx) m.push_back(mean[static_cast<size_t>(i)]);
  at::Tensor meanT = at::tensor(m, at::TensorOptions().dtype(at::kDouble)).to(out.weight.device());
  at::Tensor cols = out.weight.index_select(InputDim(out), IndexTensor(idx, out.weight.device())).to(at::kDouble);
  return out.inputMajor ? at::matmul(meanT, cols) : at::matmul(cols, meanT);  // [out]
}

}  // namespace

PruneState::PruneState(const DecoderConfig& c) {
  ff_.assign(static_cast<size_t>(c.nLayers), std::vector<uint8_t>(static_cast<size_t>(c.dMlp), 0));
  attn_.assign(static_cast<size_t>(c.nLayers), std::vector<uint8_t>(static_cast<size_t>(c.attnDim()), 0));
  valueZeroed_.assign(static_cast<size_t>(c.nLayers), std::vector<uint8_t>(static_cast<size_t>(c.kvDim()), 0));
}

void PruneState::Zero(const at::Tensor& t, int64_t dim, const std::vector<int64_t>& idx) {
  if (idx.empty() || !t.defined()) return;
  at::Tensor index = IndexTensor(idx, t.device());
  journal_.push_back({t, dim, index, t.index_select(dim, index).clone()});
  t.index_fill_(dim, index, 0);
}

void PruneState::AddToBias(const at::Tensor& bias, const at::Tensor& delta) {
  at::Tensor all = at::arange(bias.size(0), at::TensorOptions().dtype(at::kLong).device(bias.device()));
  journal_.push_back({bias, 0, all, bias.clone(), /*zeroed=*/false});
  bias.copy_((bias.to(at::kDouble) + delta).to(bias.scalar_type()));
}

PruneResult PruneState::Apply(Decoder& d, const PruneRequest& req) {
  const DecoderConfig& c = d.config();
  const size_t L = static_cast<size_t>(c.nLayers);
  auto checkLayers = [&](size_t n, const char* what) {
    if (n != 0 && n != L) {
      throw Error(code::kInvalidArgument, std::string(what) + ": expected one entry per layer (" + std::to_string(L) +
                                              "), received " + std::to_string(n));
    }
  };
  checkLayers(req.ff.size(), "selection.ff");
  checkLayers(req.attn.size(), "selection.attn");
  checkLayers(req.ffMean.size(), "meanOffset (FF means)");
  checkLayers(req.attnMean.size(), "meanOffset (attention means)");
  // Validate everything before touching a weight.
  for (size_t l = 0; l < req.ff.size(); ++l) {
    for (int64_t i : req.ff[l]) {
      if (i < 0 || i >= c.dMlp) {
        throw Error(code::kInvalidArgument, "selection.ff[" + std::to_string(l) + "]: neuron " + std::to_string(i) +
                                                " is outside [0, " + std::to_string(c.dMlp) + ")");
      }
    }
    if (!req.ffMean.empty() && !req.ff[l].empty()) {
      if (static_cast<int64_t>(req.ffMean[l].size()) != c.dMlp) throw Error(code::kInvalidArgument, "meanOffset: FF means of layer " + std::to_string(l) + " have the wrong width");
      if (!d.blocks()[l].fcOut.bias.defined()) {
        throw Error(code::kInvalidArgument, "meanOffset: " + c.architecture +
                                                " has no MLP output bias to absorb the mean of pruned FF neurons");
      }
    }
  }
  for (size_t l = 0; l < req.attn.size(); ++l) {
    for (int64_t i : req.attn[l]) {
      if (i < 0 || i >= c.attnDim()) {
        throw Error(code::kInvalidArgument, "selection.attn[" + std::to_string(l) + "]: neuron " + std::to_string(i) +
                                                " is outside [0, " + std::to_string(c.attnDim()) + ")");
      }
    }
    if (!req.attnMean.empty() && !req.attn[l].empty()) {
      if (static_cast<int64_t>(req.attnMean[l].size()) != c.attnDim()) throw Error(code::kInvalidArgument, "meanOffset: attention means of layer " + std::to_string(l) + " have the wrong width");
      if (!d.blocks()[l].o.bias.defined()) {
        throw Error(code::kInvalidArgument, "meanOffset: " + c.architecture +
                                                " has no attention output bias to absorb the mean of pruned attention neurons");
      }
    }
  }

  PruneResult result;
  result.ffPruned.assign(L, 0);
  result.attnPruned.assign(L, 0);
  const int64_t hd = c.headDim, H = c.nHeads, KV = c.nKvHeads, group = c.groupSize();
  for (size_t l = 0; l < L; ++l) {
    Block& b = d.blocks()[l];
    // FF neurons.
    std::vector<int64_t> ff;
    if (l < req.ff.size()) {
      for (int64_t i : req.ff[l]) {
        if (!ff_[l][static_cast<size_t>(i)]) {
          ff_[l][static_cast<size_t>(i)] = 1;
          ff.push_back(i);
        }
      }
    }
    if (!ff.empty()) {
      if (!req.ffMean.empty()) AddToBias(b.fcOut.bias, MeanContribution(b.fcOut, ff, req.ffMean[l]));
      Zero(b.fcOut.weight, InputDim(b.fcOut), ff);
      // act(0) == 0 for every supported activation, so zeroing what feeds the neuron changes nothing else.
      Zero(b.fcIn.weight, OutputDim(b.fcIn), ff);
      Zero(b.fcIn.bias, 0, ff);
      if (b.gate.defined()) {
        Zero(b.gate.weight, OutputDim(b.gate), ff);
        Zero(b.gate.bias, 0, ff);
      }
      result.ffPruned[l] = static_cast<int64_t>(ff.size());
    }
    // Attention neurons (h, d) = feature h * hd + d of attn.pre_out.
    std::vector<int64_t> at;
    if (l < req.attn.size()) {
      for (int64_t i : req.attn[l]) {
        if (!attn_[l][static_cast<size_t>(i)]) {
          attn_[l][static_cast<size_t>(i)] = 1;
          at.push_back(i);
        }
      }
    }
    if (!at.empty()) {
      if (!req.attnMean.empty()) AddToBias(b.o.bias, MeanContribution(b.o, at, req.attnMean[l]));
      Zero(b.o.weight, InputDim(b.o), at);
      // The value feature (kv head g, dim d) feeds only query heads g*group .. g*group+group-1: zero
      // it once every one of them has dim d pruned (always, without GQA).
      std::vector<int64_t> vFeatures;
      for (int64_t i : at) {
        const int64_t h = i / hd, dim = i % hd, g = h / group;
        const int64_t vf = g * hd + dim;
        if (valueZeroed_[l][static_cast<size_t>(vf)]) continue;
        bool all = true;
        for (int64_t q = g * group; q < (g + 1) * group && all; ++q) all = attn_[l][static_cast<size_t>(q * hd + dim)] != 0;
        if (all) {
          valueZeroed_[l][static_cast<size_t>(vf)] = 1;
          vFeatures.push_back(vf);
        }
      }
      if (!vFeatures.empty()) {
        switch (c.qkvLayout) {
          case QkvLayout::Separate:
            Zero(b.v.weight, OutputDim(b.v), vFeatures);
            Zero(b.v.bias, 0, vFeatures);
            break;
          case QkvLayout::FusedConcat: {  // output [q | k | v]
            std::vector<int64_t> rows;
            for (int64_t vf : vFeatures) rows.push_back((H + KV) * hd + vf);
            Zero(b.qkv.weight, OutputDim(b.qkv), rows);
            Zero(b.qkv.bias, 0, rows);
            break;
          }
          case QkvLayout::FusedPerHead: {  // output per head [q_h | k_h | v_h] (no GQA in NeoX)
            std::vector<int64_t> rows;
            for (int64_t vf : vFeatures) rows.push_back((vf / hd) * 3 * hd + 2 * hd + vf % hd);
            Zero(b.qkv.weight, OutputDim(b.qkv), rows);
            Zero(b.qkv.bias, 0, rows);
            break;
          }
        }
      }
      result.attnPruned[l] = static_cast<int64_t>(at.size());
    }
  }
  return result;
}

void PruneState::Rezero() {
  for (auto& s : journal_) {
    if (s.zeroed) s.target.index_fill_(s.dim, s.index, 0);
  }
}

void PruneState::Restore() {
  for (auto it = journal_.rbegin(); it != journal_.rend(); ++it) it->target.index_copy_(it->dim, it->index, it->values);
  journal_.clear();
  for (auto& v : ff_) std::fill(v.begin(), v.end(), 0);
  for (auto& v : attn_) std::fill(v.begin(), v.end(), 0);
  for (auto& v : valueZeroed_) std::fill(v.begin(), v.end(), 0);
}

}  // namespace excise
