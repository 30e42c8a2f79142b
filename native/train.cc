#include "train.h"

#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "errors.h"

namespace excise {

Trainer::Trainer(std::shared_ptr<Decoder> d, TrainOptions o) : owner_(d.get()), d_(std::move(d)), o_(o) {
  if (!(o_.lr > 0) || o_.totalSteps < 1 || o_.warmupSteps < 0) {
    throw Error(code::kInvalidArgument, "train: lr must be > 0, totalSteps >= 1, warmupSteps >= 0");
  }
}

void Trainer::Start() {
  started_ = true;
  // One group per (weight decay, device): the fused AdamW kernel takes tensors of one device, and
  // a model split over several devices (placement.h) steps each device's weights there.
  const std::vector<at::Device>& devices = d_->placement().devices;
  auto groupFor = [&](bool decay, at::Device device) -> Group& {
    for (Group& g : groups_) {
      if (g.decay == decay && g.device == device) return g;
    }
    groups_.emplace_back();
    groups_.back().decay = decay;
    groups_.back().device = device;
    return groups_.back();
  };
  // Made up front per device in placement order, no decay then decay (on one device: the two
  // groups as always).
  for (const at::Device& device : devices) {
    for (const bool decay : {false, true}) groupFor(decay, device);
  }
  std::set<const void*> seen;  // a tied LM head shares the embedding's storage: train it once
  for (auto& [name, t] : d_->params()) {
    // Weights the model does not use stay on the CPU of a GPU model (copies for save()): skipped.
    if (!at::isFloatingType(t.scalar_type()) || std::find(devices.begin(), devices.end(), t.device()) == devices.end()) continue;
    const void* key = t.unsafeGetTensorImpl();
    if (!seen.insert(key).second) continue;
    t.requires_grad_(true);
    const bool decay = t.dim() >= 2 && name.find("embed") == std::string::npos && name.find("wte") == std::string::npos &&
                       name.find("wpe") == std::string::npos;
    Group& g = groupFor(decay, t.device());
    g.weights.push_back(t);
    g.master.push_back(t.scalar_type() == at::kFloat ? t.detach() : t.detach().to(at::kFloat));
    g.m.push_back(at::zeros_like(t, t.options().dtype(at::kFloat)));
    g.v.push_back(at::zeros_like(t, t.options().dtype(at::kFloat)));
    g.steps.push_back(at::zeros({}, t.options().dtype(at::kFloat)));
  }
}

void Trainer::Close() {
  closed_ = true;
  for (Group& g : groups_) {
    for (auto& p : g.weights) {
      p.mutable_grad() = at::Tensor();
      p.requires_grad_(false);
    }
  }
  groups_.clear();
  d_.reset();  // a closed trainer keeps no weights alive
}

double Trainer::LearningRate(int64_t step) const {
  if (o_.warmupSteps > 0 && step <= o_.warmupSteps) return o_.lr * static_cast<double>(step) / static_cast<double>(o_.warmupSteps);
  const double span = static_cast<double>(std::max<int64_t>(1, o_.totalSteps - o_.warmupSteps));
  const double progress = std::min(1.0, static_cast<double>(step - o_.warmupSteps) / span);
  const double minLr = o_.lr * o_.minLrRatio;
  return minLr + 0.5 * (o_.lr - minLr) * (1.0 + std::cos(M_PI * progress));
}

TrainStepResult Trainer::Step(const at::Tensor& ids, const at::Tensor& mask, const at::Tensor& rowWeights) {
  if (closed_) throw Error(code::kInvalidArgument, "train: this trainer is closed");
  if (!d_->config().causal) throw Error(code::kNotCausalLm, "train: " + d_->config().architecture + " is a masked language model; training is next-token only");
  if (!started_) Start();
  size_t nWeights = 0;
  for (const Group& g : groups_) nWeights += g.weights.size();
  if (nWeights == 0) throw Error(code::kInvalidArgument, "train: the model has no floating-point weights to train");
  const int64_t S = ids.size(1);
  if (S < 2) throw Error(code::kInvalidArgument, "train: sequences need at least 2 tokens");
  c10::AutoGradMode gradMode(true);
  const at::Device dev = d_->headDevice();  // the logits' device: the loss is computed there
  ForwardOptions opts;
  opts.attentionMask = mask;
  opts.returnHidden = true;
  opts.paddingOutputsUnused = true;  // padded targets are ignored by the loss
  at::Tensor hidden = d_->forward(ids.to(d_->device()), opts);                  // [B, S, E]
  at::Tensor logits = d_->logitsOf(hidden.narrow(1, 0, S - 1)).to(at::kFloat);  // [B, S-1, V]
  at::Tensor targets = ids.narrow(1, 1, S - 1).to(dev).clone();
  if (mask.defined()) targets.masked_fill_(mask.narrow(1, 1, S - 1).to(dev).eq(0), -100);  // padding: ignored
  for (Group& g : groups_) {
    for (auto& p : g.weights) p.mutable_grad() = at::Tensor();
  }
  const at::Tensor flatLogits = logits.reshape({-1, logits.size(-1)});  // [B*(S-1), V]
  const at::Tensor realTokens = targets.ne(-100).sum();                  // [] int64
  at::Tensor loss;  // the reported loss: the plain mean cross-entropy over real tokens
  if (rowWeights.defined()) {
    // Weighted rows (gradient ascent / difference): per-token losses times their row's weight,
    // over the same count of real tokens. One cross-entropy (one [B*(S-1), V] log-softmax kept
    // for backward), whose mean over real tokens is the reported loss.
    at::Tensor perToken = at::cross_entropy_loss(flatLogits, targets.reshape({-1}), {}, at::Reduction::None,
                                                 /*ignore_index=*/-100);  // [B*(S-1)], 0 at padding
    at::Tensor w = rowWeights.to(dev).to(at::kFloat).unsqueeze(1).expand({ids.size(0), S - 1}).reshape({-1});
    loss = perToken.detach().sum().div(realTokens);  // Reduction::Mean's value (NaN with no real token, as Mean)
    (perToken * w).sum().div(realTokens.clamp_min(1)).backward();
  } else {
    loss = at::cross_entropy_loss(flatLogits, targets.reshape({-1}), {}, at::Reduction::Mean, /*ignore_index=*/-100);
    loss.backward();
  }

  TrainStepResult r;
  r.step = ++step_;
  r.lr = LearningRate(r.step);
  c10::NoGradGuard noGrad;
  // Float32 gradients of the weights that have one (torch.optim.AdamW skips a weight without a
  // gradient: no decay, no moment update).
  struct Live {
    std::vector<at::Tensor> master, grads, m, v, steps;
  };
  std::vector<Live> live(groups_.size());
  std::vector<at::Tensor> allGrads;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    Group& g = groups_[gi];
    for (size_t i = 0; i < g.weights.size(); ++i) {
      const at::Tensor& gr = g.weights[i].grad();
      if (!gr.defined()) continue;
      at::Tensor g32 = gr.to(at::kFloat);
      live[gi].master.push_back(g.master[i]);
      live[gi].grads.push_back(g32);
      live[gi].m.push_back(g.m[i]);
      live[gi].v.push_back(g.v[i]);
      live[gi].steps.push_back(g.steps[i]);
      allGrads.push_back(g32);
    }
  }
  if (allGrads.empty()) throw Error(code::kInternal, "train: no weight received a gradient");
  // Global gradient norm and clipping, on the device: no host sync. The clip enters the fused
  // AdamW step as its gradient divisor (grad_scale = max(1, (norm + 1e-6) / clip): the factor
  // torch.nn.utils.clip_grad_norm_ multiplies by, inverted), and a non-finite norm sets found_inf,
  // which makes the step leave weights, moments and step counts untouched.
  // Each weight's norm on its own device (one group per device), gathered on the first device:
  // one scalar per weight crosses, and on one device this is the plain global norm.
  const at::Device first = d_->device();
  std::vector<at::Tensor> norms;
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    if (live[gi].grads.empty()) continue;
    for (const at::Tensor& n : at::_foreach_norm(live[gi].grads, 2)) norms.push_back(n.to(first));
  }
  at::Tensor norm = at::linalg_vector_norm(at::stack(norms), 2);  // [] float32, on the first device
  at::Tensor foundInf = norm.isfinite().logical_not().to(at::kFloat);
  at::Tensor gradScale = o_.gradClip > 0 ? ((norm + 1e-6) / o_.gradClip).clamp_min(1.0) : at::ones_like(norm);
  at::Tensor stepIncrement = 1.0 - foundInf;
  // torch.optim.AdamW's own fused kernel: decoupled decay, bias corrections from the per-weight
  // step count (incremented first, as the optimizer does; not on a skipped step).
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    Live& l = live[gi];
    if (l.master.empty()) continue;
    // The scale and the skip flag on this group's device (device-to-device copies: no host sync).
    const at::Device gd = groups_[gi].device;
    const at::Tensor increment = stepIncrement.to(gd), scale = gradScale.to(gd), inf = foundInf.to(gd);
    for (auto& st : l.steps) st.add_(increment);
    at::_fused_adamw_(l.master, l.grads, l.m, l.v, {}, l.steps, r.lr, o_.beta1, o_.beta2,
                      groups_[gi].decay ? o_.weightDecay : 0.0, o_.eps, /*amsgrad=*/false, /*maximize=*/false, scale,
                      inf);
  }
  for (Group& g : groups_) {
    for (size_t i = 0; i < g.weights.size(); ++i) {
      at::Tensor& w = g.weights[i];
      // A float32 weight is its own master; any other is rounded from its float32 master.
      if (w.scalar_type() != at::kFloat) w.detach().copy_(g.master[i]);
      w.mutable_grad() = at::Tensor();
    }
  }
  // One host read per step, after the whole step is queued: the numbers this step reports.
  at::Tensor report = at::stack({loss.detach().to(at::kDouble).to(first), norm.to(at::kDouble),
                                 realTokens.to(at::kDouble).to(first)}).to(at::kCPU);
  const double* v = report.data_ptr<double>();
  r.loss = v[0];
  r.gradNorm = v[1];
  r.tokens = static_cast<int64_t>(v[2]);
  if (!std::isfinite(r.gradNorm)) {
    --step_;  // the step was skipped on the device (found_inf): nothing changed
    throw Error(code::kInternal, "train: the gradient is not finite (loss " + std::to_string(r.loss) + ")");
  }
  return r;
}

}  // namespace excise
