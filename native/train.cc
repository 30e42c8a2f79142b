#include "train.h"

#include <c10/core/GradMode.h>

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
  std::set<const void*> seen;  // a tied LM head shares the embedding's storage: train it once
  for (auto& [name, t] : d_->params()) {
    if (!at::isFloatingType(t.scalar_type()) || t.device() != d_->device()) continue;
    const void* key = t.unsafeGetTensorImpl();
    if (!seen.insert(key).second) continue;
    t.requires_grad_(true);
    params_.push_back(t);
    decay_.push_back(t.dim() >= 2 && name.find("embed") == std::string::npos && name.find("wte") == std::string::npos &&
                     name.find("wpe") == std::string::npos);
    m_.push_back(at::zeros_like(t, t.options().dtype(at::kFloat)));
    v_.push_back(at::zeros_like(t, t.options().dtype(at::kFloat)));
  }
}

void Trainer::Close() {
  closed_ = true;
  for (auto& p : params_) {
    p.mutable_grad() = at::Tensor();
    p.requires_grad_(false);
  }
  params_.clear();
  m_.clear();
  v_.clear();
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
  if (!started_) Start();
  if (params_.empty()) throw Error(code::kInvalidArgument, "train: the model has no floating-point weights to train");
  const int64_t S = ids.size(1);
  if (S < 2) throw Error(code::kInvalidArgument, "train: sequences need at least 2 tokens");
  c10::AutoGradMode gradMode(true);
  const at::Device dev = d_->device();
  at::Tensor idsDev = ids.to(dev);
  ForwardOptions opts;
  opts.attentionMask = mask;
  opts.returnHidden = true;
  at::Tensor hidden = d_->forward(idsDev, opts);                              // [B, S, E]
  at::Tensor logits = d_->logitsOf(hidden.narrow(1, 0, S - 1)).to(at::kFloat);  // [B, S-1, V]
  at::Tensor targets = idsDev.narrow(1, 1, S - 1).clone();
  if (mask.defined()) targets.masked_fill_(mask.narrow(1, 1, S - 1).to(dev).eq(0), -100);  // padding: ignored
  at::Tensor loss = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}), {},
                                           at::Reduction::Mean, /*ignore_index=*/-100);
  for (auto& p : params_) p.mutable_grad() = at::Tensor();
  if (rowWeights.defined()) {
    // Weighted rows (gradient ascent / difference): per-token losses times their row's weight,
    // over the same count of real tokens. The reported loss stays the plain mean cross-entropy.
    at::Tensor perToken = at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}), {},
                                                 at::Reduction::None, /*ignore_index=*/-100);  // [B*(S-1)], 0 at padding
    at::Tensor w = rowWeights.to(dev).to(at::kFloat).unsqueeze(1).expand({ids.size(0), S - 1}).reshape({-1});
    at::Tensor count = targets.ne(-100).sum().clamp_min(1);
    (perToken * w).sum().div(count).backward();
  } else {
    loss.backward();
  }

  TrainStepResult r;
  r.step = ++step_;
  r.loss = loss.item<double>();
  r.tokens = targets.ne(-100).sum().item<int64_t>();
  r.lr = LearningRate(r.step);
  c10::NoGradGuard noGrad;
  // Global gradient norm (float32), then clip by scaling every gradient.
  at::Tensor sq = at::zeros({}, at::TensorOptions().dtype(at::kFloat).device(dev));
  for (auto& p : params_) {
    if (p.grad().defined()) sq += p.grad().to(at::kFloat).pow(2).sum();
  }
  r.gradNorm = std::sqrt(sq.item<double>());
  if (!std::isfinite(r.gradNorm)) throw Error(code::kInternal, "train: the gradient is not finite (loss " + std::to_string(r.loss) + ")");
  const double clipScale = (o_.gradClip > 0 && r.gradNorm > o_.gradClip) ? o_.gradClip / (r.gradNorm + 1e-6) : 1.0;
  // AdamW (decoupled weight decay, as torch.optim.AdamW), moments in float32.
  const double bc1 = 1.0 - std::pow(o_.beta1, static_cast<double>(r.step));
  const double bc2 = 1.0 - std::pow(o_.beta2, static_cast<double>(r.step));
  for (size_t i = 0; i < params_.size(); ++i) {
    at::Tensor& p = params_[i];
    if (!p.grad().defined()) continue;
    at::Tensor g = p.grad().to(at::kFloat) * clipScale;
    m_[i].mul_(o_.beta1).add_(g, 1.0 - o_.beta1);
    v_[i].mul_(o_.beta2).addcmul_(g, g, 1.0 - o_.beta2);
    at::Tensor update = (m_[i] / bc1) / ((v_[i] / bc2).sqrt_().add_(o_.eps));
    if (decay_[i] && o_.weightDecay > 0) p.mul_(1.0 - r.lr * o_.weightDecay);
    p.sub_((update * r.lr).to(p.scalar_type()));
    p.mutable_grad() = at::Tensor();
  }
  return r;
}

}  // namespace excise
