#include "budget.h"

#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "errors.h"
#include "masks.h"
#include "patch.h"

namespace bp {

namespace {

size_t segment(const std::vector<double>& x, double v) {
  size_t i = 0;
  while (i + 2 < x.size() && v > x[i + 1]) ++i;
  return i;
}

// l0: P(hard-concrete sample > 0) = sigmoid(s - beta ln(-l / r)), l = -0.1, r = 1.1, beta = 2/3.
const double kL0Shift = (2.0 / 3.0) * std::log(0.1 / 1.1);

// log P(a score's weights are pruned), per score: log(1 - sigmoid(z)) = logsigmoid(-z), stable for any z.
at::Tensor log_dead_soft(const at::Tensor& s, MaskMethod method, double t) {
  switch (method) {
    case MaskMethod::SigmoiedThreshold: {
      const double tt = std::min(std::max(t, 1e-7), 1.0 - 1e-7);
      return at::log_sigmoid(-(s - std::log(tt / (1.0 - tt))));
    }
    case MaskMethod::Threshold: return at::log_sigmoid(-(s - t));
    case MaskMethod::L0: return at::log_sigmoid(-(s - kL0Shift));
    default:
      throw Error("E_INVALID_ARG", std::string("a budget needs mask probabilities: the ") + mask_method_name(method) +
                                       " method has none (use sigmoied_threshold, threshold or l0)");
  }
}

// The same for a 0/1 mask: log 1 = 0 where pruned, log 0 = -inf where kept.
at::Tensor log_dead_hard(const at::Tensor& m) {
  return at::zeros_like(m).masked_fill_(m.ne(0), -std::numeric_limits<double>::infinity());
}

// One linear's pruning, as log-dead values laid out like its scores (masks.h's layouts). `key` identifies the
// score tensor: linears sharing theirs (joint q/k/v, the 1d_alt pair) make one factor, not two.
struct Dead {
  MaskLayout layout = MaskLayout::Block;
  int64_t br = 1, bc = 1;
  at::Tensor a, b;  // Block [R, C]; Rows [out]; Cols [in]; RowsCols a = rows [out], b = cols [in]
  const void* key = nullptr;
};

Dead soft_dead(const MaskState& m, double t) {
  Dead d{m.layout, m.block_rows, m.block_cols, log_dead_soft(m.scores, m.method, t), at::Tensor(), m.scores.unsafeGetTensorImpl()};
  if (m.layout == MaskLayout::RowsCols) d.b = log_dead_soft(m.col_scores, m.method, t);
  return d;
}

Dead hard_dead(const MaskState& m, const at::Tensor& weight) {
  auto f = compute_factored_mask(m, weight, /*training=*/false);
  Dead d;
  d.key = m.scores.defined() ? m.scores.unsafeGetTensorImpl() : nullptr;
  if (f.full.defined()) {
    d.a = log_dead_hard(f.full);
  } else if (f.block.defined()) {
    d.a = log_dead_hard(f.block);
    d.br = f.block_rows;
    d.bc = f.block_cols;
  } else if (f.rows.defined() && f.cols.defined()) {
    d.layout = MaskLayout::RowsCols;
    d.a = log_dead_hard(f.rows);
    d.b = log_dead_hard(f.cols);
  } else {
    d.layout = f.rows.defined() ? MaskLayout::Rows : MaskLayout::Cols;
    d.a = log_dead_hard(f.rows.defined() ? f.rows : f.cols);
  }
  return d;
}

at::Tensor alive(const at::Tensor& log_dead) { return -at::expm1(log_dead); }

// Per group of `g` consecutive rows ([out / g]) and per column ([in]): hard masks, P(some weight kept) = 1 -
// prod(1 - p) over the distinct scores covering it, exact; soft, the mean keep probability of those scores
// instead (a head's expected fraction of blocks kept). The exact form is flat where it matters: with a
// head's 12 blocks at p = 0.9 its derivative in each is 1e-11, and a 2x SST-2 budget ran its FFN down to the
// minimum while every head stayed; the mean passes each block 1/12 of the head's cost.
at::Tensor reduce_group(const at::Tensor& log_dead, bool soft, int64_t dim) {
  if (soft) return (dim < 0 ? alive(log_dead).mean() : alive(log_dead).mean(dim));
  return alive(dim < 0 ? log_dead.sum() : log_dead.sum(dim));
}

at::Tensor rows_alive(const Dead& d, int64_t out, int64_t g, const std::string& name, bool soft) {
  const int64_t groups = out / g;
  auto one = [&](const at::Tensor& a) { return reduce_group(a, soft, -1); };
  switch (d.layout) {
    case MaskLayout::Block: {
      // Each block row's blocks, then the block rows of each group.
      const int64_t R = d.a.size(0), C = d.a.size(1);
      if (g % d.br == 0) return reduce_group(d.a.reshape({groups, (g / d.br) * C}), soft, 1);
      if (d.br % g == 0) return reduce_group(d.a.reshape({R, C}), soft, 1).repeat_interleave(d.br / g);
      throw Error("E_INVALID_ARG", "a budget on " + name + ": its mask blocks of " + std::to_string(d.br) + " rows cut heads of " +
                                       std::to_string(g) + " rows (one must divide the other)");
    }
    case MaskLayout::Rows: return reduce_group(d.a.view({groups, g}), soft, 1);
    case MaskLayout::Cols: return one(d.a).expand({groups});
    case MaskLayout::RowsCols: return reduce_group(d.a.view({groups, g}), soft, 1) * one(d.b);
  }
  return at::Tensor();
}

at::Tensor cols_alive(const Dead& d, int64_t in, bool soft) {
  switch (d.layout) {
    case MaskLayout::Block: return reduce_group(d.a, soft, 0).repeat_interleave(d.bc);
    case MaskLayout::Cols: return alive(d.a);
    case MaskLayout::Rows: return reduce_group(d.a, soft, -1).expand({in});
    case MaskLayout::RowsCols: return alive(d.b) * reduce_group(d.a, soft, -1);
  }
  return at::Tensor();
}

// The product over distinct score tensors of their groups' survival: [n], ones where nothing is masked.
struct Factors {
  std::vector<const void*> seen;
  at::Tensor product;
  void add(const void* key, const at::Tensor& p) {
    if (key && std::find(seen.begin(), seen.end(), key) != seen.end()) return;
    seen.push_back(key);
    product = product.defined() ? product * p : p;
  }
};

// A differentiable piecewise-linear value: f(v) with df/dv the segment's slope.
at::Tensor eval_piecewise(const PiecewiseLinear& f, const at::Tensor& v) {
  const double x = v.item<double>();
  return f.at(x) + f.slope(x) * (v - x);
}

// Sets the masks' shared threshold for a while (the schedule's is put back).
struct ThresholdAt {
  std::shared_ptr<PruningState> state;
  double saved;
  ThresholdAt(std::shared_ptr<PruningState> s, double t) : state(std::move(s)), saved(state->threshold) { state->threshold = t; }
  ~ThresholdAt() { state->threshold = saved; }
};

}  // namespace

double PiecewiseLinear::at(double v) const {
  const size_t i = segment(x, v);
  return y[i] + slope(v) * (v - x[i]);
}

double PiecewiseLinear::slope(double v) const {
  const size_t i = segment(x, v);
  return (y[i + 1] - y[i]) / (x[i + 1] - x[i]);
}

void BudgetSpec::validate() const {
  for (const auto* f : {&heads, &units}) {
    const char* name = f == &heads ? "budget.heads" : "budget.units";
    if (f->x.size() < 2 || f->x.size() != f->y.size())
      throw Error("E_INVALID_ARG", std::string(name) + ": expected x and y of the same length, at least 2 points");
    for (size_t i = 0; i < f->x.size(); ++i) {
      if (!std::isfinite(f->x[i]) || !std::isfinite(f->y[i])) throw Error("E_INVALID_ARG", std::string(name) + ": values must be finite");
      if (i > 0 && !(f->x[i] > f->x[i - 1])) throw Error("E_INVALID_ARG", std::string(name) + ".x must increase strictly");
    }
  }
  for (double v : {constant, target, dense, lambda1, lambda2, threshold})
    if (!std::isfinite(v)) throw Error("E_INVALID_ARG", "budget: constant, target, dense, lambdas and threshold must be finite");
  if (!(dense > 0)) throw Error("E_INVALID_ARG", "budget.dense (the unpruned model's cost) must be positive");
}

BudgetCost budget_cost(const Bert& model, const BudgetSpec& spec, bool with_grad) {
  spec.validate();
  if (!is_patched(model)) throw Error("E_INVALID_ARG", "a budget needs a model patched for pruning (its masks decide the cost)");
  c10::AutoGradMode grad_mode(with_grad);
  const BertConfig& c = model->config();
  const Family& fam = model->family();
  const int64_t hd = c.head_dim();
  auto linears = linears_by_name(model);
  BudgetCost out;
  std::vector<Factors> soft_heads, soft_units, hard_heads, hard_units;
  {
    // The hard masks at the final threshold: the compact model the run would give now.
    ThresholdAt at_final(model->pruning_state, spec.threshold);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
      const auto names = fam.layer_linears(l);  // query, key, value, attention output, intermediate, output
      Factors sh, su, hh, hu;
      for (size_t k = 0; k < names.size(); ++k) {
        if (k == 3) continue;  // the attention output's columns follow the heads; compaction reads q, k and v
        LinearImpl* lin = linears.at(names[k]);
        if (!lin->mask) continue;
        const int64_t o = lin->weight.size(0), i = lin->weight.size(1);
        const Dead soft = soft_dead(*lin->mask, spec.threshold);
        Dead hard;
        {
          at::NoGradGuard no_grad;
          hard = hard_dead(*lin->mask, lin->weight);
        }
        if (k < 3) {
          sh.add(soft.key, rows_alive(soft, o, hd, names[k], true));
          at::NoGradGuard no_grad;
          hh.add(hard.key, rows_alive(hard, o, hd, names[k], false));
        } else {
          // A unit is the intermediate's row u and the output's column u.
          su.add(soft.key, k == 4 ? rows_alive(soft, o, 1, names[k], true) : cols_alive(soft, i, true));
          at::NoGradGuard no_grad;
          hu.add(hard.key, k == 4 ? rows_alive(hard, o, 1, names[k], false) : cols_alive(hard, i, false));
        }
      }
      soft_heads.push_back(std::move(sh));
      soft_units.push_back(std::move(su));
      hard_heads.push_back(std::move(hh));
      hard_units.push_back(std::move(hu));
    }
  }
  at::Tensor total;
  out.hard = spec.constant;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int64_t H = static_cast<int64_t>(c.kept_heads(l).size());
    const int64_t U = c.layer_intermediate(l);
    const auto options = model->parameters()[0].options();
    auto count = [&](const Factors& f, int64_t all) { return f.product.defined() ? f.product.sum() : at::full({}, static_cast<double>(all), options); };
    auto h = count(soft_heads[l], H), u = count(soft_units[l], U);
    auto term = eval_piecewise(spec.heads, h) + eval_piecewise(spec.units, u);
    total = total.defined() ? total + term : term;
    out.heads.push_back(h.item<double>());
    out.units.push_back(u.item<double>());
    // Compaction keeps at least one head and one unit per layer.
    const auto hard_count = [&](const Factors& f, int64_t all) {
      return std::max<int64_t>(1, f.product.defined() ? f.product.gt(0.5).sum().item<int64_t>() : all);
    };
    out.hard_heads.push_back(hard_count(hard_heads[l], H));
    out.hard_units.push_back(hard_count(hard_units[l], U));
    out.hard += spec.heads.at(static_cast<double>(out.hard_heads.back())) + spec.units.at(static_cast<double>(out.hard_units.back()));
  }
  out.expected = total + spec.constant;
  const auto r = (out.expected - spec.target) / spec.dense;
  out.term = spec.lambda1 * r + spec.lambda2 * r * r;
  return out;
}

}  // namespace bp
