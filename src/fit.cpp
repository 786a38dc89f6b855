// The fitting loops: EM, Adam on minibatches, L-BFGS.
#include "lgssm/fit.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <sstream>

#include "checks.hpp"
#include "lbfgs.hpp"
#include "lgssm/error.hpp"
#include "lgssm/learn.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"
#include "unconstrained.hpp"

namespace lgssm {

using internal::kInf;
using internal::throw_invalid;

namespace {

std::vector<size_t> iota(size_t n) {
  std::vector<size_t> v(n);
  std::iota(v.begin(), v.end(), size_t{0});
  return v;
}

// Reports in FitSummary::warnings, once per covariance, a trainable covariance
// that the fit brings near singularity: smallest eigenvalue at most
// kNearSingular times the largest. One near singular at the start already
// (a structural model's Q, a known initial state) is the caller's choice and
// is not reported.
class SingularWatch {
 public:
  // remedy: what the warning advises besides a prior and a structure.
  SingularWatch(const Params& start, const ParamProps& props, std::string remedy)
      : props_(props), remedy_(std::move(remedy)) {
    visit(start, [&](int group, const std::string&, CovStructure, double ratio) {
      if (ratio <= kNearSingular) skip_[group] = true;
    });
  }

  // where: "at iteration 12", "at the returned parameters", ...
  void check(const Params& p, const std::string& where, FitSummary& summary) {
    visit(p, [&](int group, const std::string& name, CovStructure structure, double ratio) {
      if (skip_[group] || ratio > kNearSingular) return;
      skip_[group] = true;
      std::string advice = "a prior (LinearGaussianConjugateSSM; in C++ the options' prior)";
      if (structure == CovStructure::kFull)
        advice += ", a diagonal or scalar structure (props." + name.substr(0, name.find('.')) + ".cov.structure)";
      summary.warnings.push_back(name + " is nearly singular " + where + " (smallest eigenvalue " + number(ratio) +
                                 " times the largest): the likelihood may grow without bound toward a singular " +
                                 "covariance, and float64 loses the digits of its small eigenvalues there. " +
                                 "Consider " + advice + remedy_ + ".");
    });
  }

 private:
  // fn(group, name, structure, smallest / largest eigenvalue) for each entry of
  // each trainable covariance (groups: 0 initial, 1 dynamics, 2 emissions).
  template <class Fn>
  void visit(const Params& p, Fn fn) const {
    auto one = [&](int group, const std::string& name, const Eigen::Ref<const Matrix>& cov, CovStructure structure) {
      const Vector ev = Eigen::SelfAdjointEigenSolver<Matrix>(cov, Eigen::EigenvaluesOnly).eigenvalues();
      const double largest = ev(ev.size() - 1);
      fn(group, name, structure, largest > 0 ? ev(0) / largest : 0.0);
    };
    if (props_.initial.cov && p.initial.cov.size() > 0)
      one(0, "initial.cov", p.initial.cov, props_.initial.cov_structure);
    const std::pair<const MatrixSeries*, const ParamProps::Conditional*> groups[] = {
        {&p.dynamics.cov, &props_.dynamics}, {&p.emissions.cov, &props_.emissions}};
    for (int g = 0; g < 2; ++g) {
      const auto& [covs, props] = groups[g];
      if (!props->cov || covs->rows() == 0) continue;
      const std::string name = g == 0 ? "dynamics.cov" : "emissions.cov";
      for (Eigen::Index t = 0; t < covs->size(); ++t)
        one(g + 1, covs->size() == 1 ? name : name + "[" + std::to_string(t) + "]", (*covs)[t], props->cov_structure);
    }
  }

  const ParamProps& props_;
  std::string remedy_;
  bool skip_[3] = {false, false, false};
};

// Validates the common arguments of every fit.
void validate_fit(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs) {
  validate(params, props);
  validate(params, seqs);
}

// Validates the arguments of a gradient-based fit (the objective treats an
// error at a trial point as a point outside the domain).
void validate_gradient_fit(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                           const ConjugatePrior* prior) {
  validate_fit(params, props, seqs);
  internal::check_gradient_rows(params, props);
  if (prior) validate(params, *prior);
}

// Every trainable entry (per-step ones included) as slots: the vector SQUAREM
// extrapolates on.
std::vector<internal::Slot> every_entry_slots(Params& p, const ParamProps& props) {
  return internal::trainable_slots(p.initial, &p.dynamics, p.emissions, props, true);
}

double num_entries(const Params& params, const std::vector<Sequence>& seqs) {
  double n = 0.0;
  for (const auto& s : seqs) n += static_cast<double>(s.num_timesteps() * params.emission_dim());
  return n;
}

bool all_finite(const Vector& v) { return v.allFinite(); }

// Statistics of no data, shaped like `s` (for the gradient of the prior alone).
SufficientStats empty_like(const SufficientStats& s) {
  SufficientStats out;
  out.initial = RegressionStats(s.initial.w0);
  for (const auto& d : s.dynamics) out.dynamics.emplace_back(d.w0);
  for (const auto& e : s.emissions) out.emissions.emplace_back(e.w0);
  return out;
}

// -log p(y) / scale and its gradient over the unconstrained vector; +inf (and
// no gradient) where the parameters are numerically unusable.
struct Objective {
  const Params& base;
  const ParamProps& props;
  const std::vector<Sequence>& seqs;
  double scale;
  int num_threads;
  const ConjugatePrior* prior;

  double operator()(const Vector& x, Vector& grad, const std::vector<size_t>& indices,
                    double batch_weight = 1.0) const {
    const Params p = from_unconstrained(x, base, props);
    if (!internal::has_valid_values(p)) return kInf;
    try {
      const SufficientStats s = internal::sufficient_stats_unchecked(p, seqs, indices, false, num_threads);
      return minibatch_loss(p, props, s, batch_weight, scale, prior, grad);
    } catch (const invalid_argument&) {  // a trainable covariance that underflows to singular, e.g. a
      return kInf;                       // variance to exactly 0 where the data then have no density
    }
  }
};

}  // namespace

void EmLoopOptions::validate() const {
  internal::check_count("num_iters", num_iters, 0);
  internal::check_tolerance("tolerance", tolerance);
}

void EmOptions::validate() const {
  internal::check_count("num_iters", num_iters, 0);
  internal::check_tolerance("tolerance", tolerance);
  internal::check_count("num_threads", num_threads, 0);
}

FitResult fit_em(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                 const EmOptions& options) {
  options.validate();
  validate_fit(params, props, seqs);
  if (options.prior) validate(params, *options.prior);
  const bool per_step = internal::per_step_emissions(params.emissions);
  const auto all = iota(seqs.size());
  const ConjugatePrior* prior = options.prior ? &*options.prior : nullptr;
  SingularWatch watch(params, props, ", or fit_lbfgs");
  EmSteps<Params, SufficientStats> steps;
  steps.e_step = [&](const Params& p) {
    return internal::sufficient_stats_unchecked(p, seqs, all, per_step, options.num_threads);
  };
  steps.objective = [&](const Params& p, const SufficientStats& s) {
    return s.marginal_loglik + (prior ? log_prior(p, *prior) : 0.0);
  };
  steps.m_step = [&](const Params& p, const SufficientStats& s) {
    Params next = m_step(p, props, s, prior);
    validate(next);
    return next;
  };
  steps.to_vector = [&](Params p) { return internal::pack(every_entry_slots(p, props)); };
  steps.from_vector = [&](const Vector& x) {
    Params p = params;
    auto slots = every_entry_slots(p, props);
    internal::unpack(x, slots);
    validate(p);
    return p;
  };
  steps.on_record = [&](int it, const Params& p, FitSummary& summary) {
    watch.check(p, "at iteration " + std::to_string(it), summary);
  };
  EmLoopOptions loop;
  loop.num_iters = options.num_iters;
  loop.tolerance = options.tolerance;
  loop.accelerate = options.accelerate;
  loop.callback = options.callback;
  loop.remedy = ". A prior, a diagonal or scalar covariance structure, frozen parameters or fit_lbfgs may help.";
  EmRun<Params> run = run_em(steps, project_constraints(params, props), loop);
  return {std::move(run.params), std::move(run.history), std::move(run.summary)};
}

void AdamOptions::validate() const {
  internal::check_positive("learning_rate", learning_rate);
  internal::check_unit_interval("b1", b1);
  internal::check_unit_interval("b2", b2);
  internal::check_positive("eps", eps);
}

void SgdOptions::validate() const {
  adam.validate();
  internal::check_count("batch_size", batch_size, 1);
  internal::check_count("num_epochs", num_epochs, 0);
  internal::check_count("num_threads", num_threads, 0);
}

std::vector<std::vector<size_t>> sgd_minibatches(size_t num_sequences, int batch_size, bool shuffle, std::uint64_t seed,
                                                 int epoch) {
  internal::check_count("batch_size", batch_size, 1);
  auto order = iota(num_sequences);
  const size_t batch = std::min<size_t>(batch_size, num_sequences);
  if (shuffle && batch < num_sequences) {
    std::seed_seq seeds{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32),
                        static_cast<std::uint32_t>(epoch)};
    std::mt19937_64 rng(seeds);
    std::shuffle(order.begin(), order.end(), rng);
  }
  std::vector<std::vector<size_t>> batches;
  for (size_t b = 0; b < num_sequences; b += batch)
    batches.emplace_back(order.begin() + b, order.begin() + std::min(num_sequences, b + batch));
  return batches;
}

double minibatch_loss(const Params& params, const ParamProps& props, const SufficientStats& stats, double batch_weight,
                      double scale, const ConjugatePrior* prior, Vector& grad) {
  internal::check_positive("batch_weight", batch_weight);
  internal::check_positive("scale", scale);
  // The prior counts once per objective, the minibatch's log likelihood batch_weight times.
  grad = -batch_weight * log_prob_gradient(params, props, stats) / scale;
  double f = -batch_weight * stats.marginal_loglik / scale;
  if (prior) {
    grad -= log_prob_gradient(params, props, empty_like(stats), prior) / scale;
    f -= log_prior(params, *prior) / scale;
  }
  return std::isfinite(f) && all_finite(grad) ? f : kInf;
}

void adam_update(const AdamOptions& adam, const Vector& grad, Vector& x, AdamState& state) {
  if (grad.size() != x.size() || state.m.size() != x.size() || state.v.size() != x.size())
    throw_invalid("grad", "x, state.m and state.v of one size " + std::to_string(x.size()),
                  "sizes " + std::to_string(grad.size()) + ", " + std::to_string(state.m.size()) + ", " +
                      std::to_string(state.v.size()));
  ++state.step;
  state.m = adam.b1 * state.m + (1 - adam.b1) * grad;
  state.v = adam.b2 * state.v + (1 - adam.b2) * grad.cwiseAbs2();
  const double c1 = 1 - std::pow(adam.b1, state.step), c2 = 1 - std::pow(adam.b2, state.step);
  x -= adam.learning_rate * ((state.m / c1).array() / ((state.v / c2).cwiseSqrt().array() + adam.eps)).matrix();
}

SgdRun run_sgd(const SgdSteps& steps, size_t num_sequences, Vector x, AdamState state, const SgdOptions& options,
               std::vector<double> history) {
  options.validate();
  const auto started = std::chrono::steady_clock::now();
  int evaluations = 0;
  SgdRun r{std::move(x), std::move(history), {}};
  r.summary.iterations = static_cast<int>(r.history.size());
  r.summary.message = "reached num_epochs";
  Vector grad(r.x.size());
  Vector best_x = r.x;  // the parameters with the lowest loss so far, of epoch best_epoch
  double best_loss = kInf;
  int best_epoch = -1;
  for (int epoch = r.summary.iterations; epoch < options.num_epochs; ++epoch) {
    const auto batches = sgd_minibatches(num_sequences, options.batch_size, options.shuffle, options.seed, epoch);
    double avg = 0.0;
    for (size_t b = 0; b < batches.size(); ++b) {
      const auto& idx = batches[b];
      ++evaluations;
      const double loss = steps.loss(r.x, idx, static_cast<double>(num_sequences) / idx.size(), grad);
      if (!std::isfinite(loss)) {
        std::ostringstream msg;
        msg << "the loss became non-finite in epoch " << epoch << "; returning ";
        if (best_epoch < 0)
          msg << "the parameters it started from";
        else
          msg << "the parameters with the lowest loss seen, " << best_loss << ", from epoch " << best_epoch;
        msg << ". Try a smaller learning_rate.";
        r.summary.termination = Termination::kNumericalFailure;
        r.summary.message = msg.str();
        r.x = std::move(best_x);
        complete(r.summary, r.history, evaluations, started);
        return r;
      }
      if (loss < best_loss) {
        best_loss = loss;
        best_x = r.x;
        best_epoch = epoch;
      }
      if (options.update)
        options.update(grad, loss, r.x);
      else
        adam_update(options.adam, grad, r.x, state);
      avg += (loss - avg) / static_cast<double>(b + 1);
    }
    r.history.push_back(avg);
    r.summary.iterations = epoch + 1;
    if (steps.after_epoch) steps.after_epoch(r.x, state, r.history);
    if (options.callback && !options.callback(epoch, avg)) {
      r.summary.termination = Termination::kStopped;
      r.summary.message = "stopped by the callback";
      break;
    }
  }
  complete(r.summary, r.history, evaluations, started);
  return r;
}

FitResult fit_sgd(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                  const SgdOptions& options) {
  options.validate();
  validate_gradient_fit(params, props, seqs, options.prior ? &*options.prior : nullptr);
  const Objective objective{
      params, props, seqs, num_entries(params, seqs), options.num_threads, options.prior ? &*options.prior : nullptr};
  SgdSteps steps;
  steps.loss = [&](const Vector& x, const std::vector<size_t>& batch, double batch_weight, Vector& grad) {
    return objective(x, grad, batch, batch_weight);
  };
  const Vector x = to_unconstrained(params, props);
  SgdRun run = run_sgd(steps, seqs.size(), x, AdamState(x.size()), options);
  FitResult r{from_unconstrained(run.x, params, props), std::move(run.history), std::move(run.summary)};
  SingularWatch(params, props, "").check(r.params, "at the returned parameters", r.summary);
  return r;
}

void LbfgsOptions::validate() const {
  internal::check_count("max_iters", max_iters, 0);
  internal::check_count("memory", memory, 1);
  internal::check_tolerance("gradient_tolerance", gradient_tolerance);
  internal::check_tolerance("function_tolerance", function_tolerance);
  internal::check_count("num_threads", num_threads, 0);
}

FitResult fit_lbfgs(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                    const LbfgsOptions& options) {
  options.validate();
  validate_gradient_fit(params, props, seqs, options.prior ? &*options.prior : nullptr);
  const double scale = num_entries(params, seqs);
  const Objective objective{params, props, seqs, scale, options.num_threads, options.prior ? &*options.prior : nullptr};
  const auto all = iota(seqs.size());
  FitResult r{params, {}, {}};
  Params p = params;
  const Vector x = internal::maximize_log_prob(
      [&](const Vector& x, Vector& g) { return objective(x, g, all); }, to_unconstrained(params, props),
      internal::log_sd_coordinates(internal::trainable_slots(p, props)), options, scale, r.history, r.summary);
  r.params = from_unconstrained(x, params, props);
  SingularWatch(params, props, "").check(r.params, "at the returned parameters", r.summary);
  return r;
}

}  // namespace lgssm
