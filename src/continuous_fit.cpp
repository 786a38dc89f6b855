// Fitting continuous-time models (continuous.hpp: m_step, fit_em, fit_lbfgs,
// log_prob_and_gradient and the unconstrained map).
#include <algorithm>
#include <cmath>

#include "checks.hpp"
#include "continuous_stats.hpp"
#include "lbfgs.hpp"
#include "lgssm/error.hpp"
#include "lgssm/fit.hpp"
#include "lgssm/learn.hpp"
#include "linalg.hpp"
#include "unconstrained.hpp"

namespace lgssm {

using internal::kInf;
using internal::throw_invalid;

namespace internal {

ContinuousParams m_step_unchecked(const ContinuousParams& params, const ContinuousProps& props,
                                  const ContinuousStats& cs, int m_step_iters, int num_threads) {
  const SufficientStats& stats = cs.stats;
  ContinuousParams next = params;
  const Params updated = m_step(with_identity_dynamics(params), discrete_props(props), stats);
  next.initial = updated.initial;
  next.emissions = updated.emissions;
  if (props.drift || props.diffusion_cov) {
    LbfgsOptions inner;
    inner.max_iters = m_step_iters;
    auto slots = dynamics_slots(next.dynamics, props);
    const double count = std::max(1.0, stats.num_sequences());
    const auto run = minimize_lbfgs(
        [&](const Vector& x, Vector& g) {
          ContinuousDynamics trial = params.dynamics, grad;
          auto s = dynamics_slots(trial, props);
          unpack(x, s);
          const double q =
              dynamics_log_lik(trial, cs.gaps, stats.dynamics, &grad.drift, &grad.diffusion_cov, num_threads);
          if (!std::isfinite(q)) return kInf;
          g = -chain(dynamics_slots(trial, props), dynamics_slots(grad, props)) / count;
          return g.allFinite() ? -q / count : kInf;
        },
        pack(slots), inner, {});
    unpack(run.x, slots);
  }
  validate(next);
  return next;
}

}  // namespace internal

namespace {

std::vector<internal::Slot> all_slots(ContinuousParams& p, const ContinuousProps& props, bool every_entry = false) {
  auto slots = internal::trainable_slots(p.initial, nullptr, p.emissions, internal::discrete_props(props), every_entry);
  const auto dyn = internal::dynamics_slots(p.dynamics, props);
  slots.insert(slots.end(), dyn.begin(), dyn.end());
  return slots;
}

// Whether parameters of valid shapes have valid values (as validate requires),
// without throwing: for objectives, where invalid values are a point outside
// the valid set.
bool has_valid_values(const ContinuousParams& p) {
  return p.dynamics.drift.allFinite() &&
         internal::is_covariance(p.dynamics.diffusion_cov, internal::Definiteness::kSemidefinite) &&
         internal::has_valid_values(internal::with_identity_dynamics(p));
}

// log p(y) and its gradient w.r.t. the unconstrained vector, from the gaps'
// (finite) discretizations.
double log_prob_and_gradient_unchecked(const ContinuousParams& params, const ContinuousProps& props,
                                       const std::vector<TimedSequence>& seqs, const internal::GapGroups& gaps,
                                       const std::vector<Discretization>& discs, Vector& gradient, int num_threads) {
  const ContinuousStats cs = internal::grouped_stats(params, seqs, gaps, discs, num_threads);
  const SufficientStats& stats = cs.stats;
  // Initial state and emissions: the discrete-time gradient with the dynamics frozen.
  const Vector grad_rest =
      log_prob_gradient(internal::with_identity_dynamics(params), internal::discrete_props(props), stats);
  ContinuousDynamics grad{Matrix(), Matrix()};
  internal::dynamics_log_lik(params.dynamics, cs.gaps, stats.dynamics, &grad.drift, &grad.diffusion_cov, num_threads);
  ContinuousDynamics values = params.dynamics;
  const Vector grad_dynamics =
      internal::chain(internal::dynamics_slots(values, props), internal::dynamics_slots(grad, props));
  gradient.resize(grad_rest.size() + grad_dynamics.size());
  gradient << grad_rest, grad_dynamics;
  return stats.marginal_loglik;
}

}  // namespace

void ContinuousEmOptions::validate() const {
  internal::check_count("num_iters", num_iters, 0);
  internal::check_tolerance("tolerance", tolerance);
  internal::check_count("m_step_iters", m_step_iters, 1);
  internal::check_count("num_threads", num_threads, 0);
}

Vector to_unconstrained(const ContinuousParams& params, const ContinuousProps& props) {
  ContinuousParams p = params;
  return internal::pack(all_slots(p, props));
}

ContinuousParams from_unconstrained(const Vector& x, const ContinuousParams& base, const ContinuousProps& props) {
  ContinuousParams p = base;
  auto slots = all_slots(p, props);
  internal::unpack(x, slots);
  return p;
}

ContinuousParams m_step(const ContinuousParams& params, const ContinuousProps& props, const ContinuousStats& stats,
                        int m_step_iters, int num_threads) {
  validate(params);
  internal::validate_props(params, props);
  internal::check_count("m_step_iters", m_step_iters, 1);
  internal::check_count("num_threads", num_threads, 0);
  const Eigen::Index n = params.state_dim();
  const size_t groups = std::max<size_t>(1, stats.gaps.size());
  if (stats.stats.initial.w0.rows() != n || stats.stats.dynamics.size() != groups ||
      stats.stats.dynamics.front().w0.rows() != n)
    throw_invalid("stats",
                  "statistics of a model with state_dim " + std::to_string(n) + " and " + std::to_string(groups) +
                      " dynamics groups (one per gap)",
                  "state_dim " + std::to_string(stats.stats.initial.w0.rows()) + " and " +
                      std::to_string(stats.stats.dynamics.size()) + " groups");
  return internal::m_step_unchecked(params, props, stats, m_step_iters, num_threads);
}

double log_prob_and_gradient(const ContinuousParams& params, const ContinuousProps& props,
                             const std::vector<TimedSequence>& seqs, Vector& gradient, int num_threads) {
  internal::validate_fit(params, props, seqs);
  internal::check_count("num_threads", num_threads, 0);
  const internal::GapGroups gaps = internal::group_gaps(seqs);
  return log_prob_and_gradient_unchecked(params, props, seqs, gaps, internal::discretize_all(params, gaps.dts),
                                         gradient, num_threads);
}

ContinuousFitResult fit_lbfgs(const ContinuousParams& params, const ContinuousProps& props,
                              const std::vector<TimedSequence>& seqs, const LbfgsOptions& options) {
  internal::validate_fit(params, props, seqs);
  options.validate();
  if (options.prior) throw_invalid("prior", "none (continuous-time fits are maximum likelihood)", "a prior");
  double scale = 0.0;
  for (const auto& s : seqs) scale += static_cast<double>(s.seq.emissions.size());
  const internal::GapGroups gaps = internal::group_gaps(seqs);
  ContinuousFitResult r{params, {}, {}};
  // Outside the valid set (invalid values, or a transition that overflows): +inf.
  const Vector x = internal::maximize_log_prob(
      [&](const Vector& x, Vector& g) {
        const ContinuousParams p = from_unconstrained(x, params, props);
        if (!has_valid_values(p)) return kInf;
        const std::vector<Discretization> discs = internal::discretize_gaps(p, gaps.dts);
        if (!internal::all_finite(discs)) return kInf;
        const double ll = log_prob_and_gradient_unchecked(p, props, seqs, gaps, discs, g, options.num_threads);
        g = -g / scale;
        return std::isfinite(ll) && g.allFinite() ? -ll / scale : kInf;
      },
      to_unconstrained(params, props), options, scale, r.history, r.summary);
  r.params = from_unconstrained(x, params, props);
  return r;
}

ContinuousFitResult fit_em(const ContinuousParams& params, const ContinuousProps& props,
                           const std::vector<TimedSequence>& seqs, const ContinuousEmOptions& options) {
  internal::validate_fit(params, props, seqs);
  options.validate();
  const internal::GapGroups gaps = internal::group_gaps(seqs);
  ContinuousFitResult r{params, {}, {}};

  const bool uniform = gaps.dts.size() == 1 && props.drift && props.diffusion_cov &&
                       props.diffusion_cov_structure == CovStructure::kFull;
  if (uniform) {  // the seed document's EM on (A, Sigma), then the matrix logarithm
    const double dt = gaps.dts.front();
    ParamProps dprops = internal::discrete_props(props);
    dprops.dynamics.weights = dprops.dynamics.cov = true;  // full cov, no bias or input weights
    EmOptions eo;
    eo.num_iters = options.num_iters;
    eo.tolerance = options.tolerance;
    eo.num_threads = options.num_threads;
    eo.callback = options.callback;
    const FitResult fr = fit_em(internal::assemble(params, internal::discretize_all(params, gaps.dts), {}), dprops,
                                internal::plain_sequences(seqs), eo);
    r.history = fr.history;
    r.summary = fr.summary;
    try {
      const Undiscretization u = undiscretize(fr.params.dynamics.weights[0], fr.params.dynamics.cov[0], dt);
      r.params = {fr.params.initial, {u.drift, u.diffusion_cov}, fr.params.emissions};
      r.psd_correction = u.psd_correction;
    } catch (const invalid_argument& e) {
      r.summary.termination = Termination::kNumericalFailure;
      r.summary.message = std::string("the fitted transition has no continuous-time counterpart (") + e.what() +
                          "); returning the initial parameters";
    }
    return r;
  }

  // Generalized EM, accelerated by SQUAREM (fit.hpp).
  EmSteps<ContinuousParams, ContinuousStats> steps;
  steps.e_step = [&](const ContinuousParams& p) {
    return internal::grouped_stats(p, seqs, gaps, internal::discretize_all(p, gaps.dts), options.num_threads);
  };
  steps.objective = [](const ContinuousParams&, const ContinuousStats& s) { return s.stats.marginal_loglik; };
  steps.m_step = [&](const ContinuousParams& p, const ContinuousStats& s) {
    return internal::m_step_unchecked(p, props, s, options.m_step_iters, options.num_threads);
  };
  // The parameters as one vector, per-step emission entries included.
  steps.to_vector = [&](ContinuousParams p) { return internal::pack(all_slots(p, props, true)); };
  steps.from_vector = [&](const Vector& x) {
    ContinuousParams p = params;
    auto slots = all_slots(p, props, true);
    internal::unpack(x, slots);
    validate(p);
    return p;
  };
  EmLoopOptions loop;
  loop.num_iters = options.num_iters;
  loop.tolerance = options.tolerance;
  loop.accelerate = options.accelerate;
  loop.callback = options.callback;
  EmRun<ContinuousParams> run = run_em(steps, params, loop);
  r.params = std::move(run.params);
  r.history = std::move(run.history);
  r.summary = std::move(run.summary);
  return r;
}

}  // namespace lgssm
