// The continuous-time model as a discrete-time one, and its statistics
// (continuous.hpp: validate, validate_times, to_discrete, sufficient_stats).
#include "continuous_stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "checks.hpp"
#include "lgssm/error.hpp"
#include "lgssm/parallel.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"
#include "vanloan.hpp"

namespace lgssm {

using internal::shape_str;
using internal::throw_invalid;

namespace internal {

GapGroups group_gaps(const std::vector<const Vector*>& times) {
  std::vector<double> all;
  for (const Vector* t : times)
    for (Eigen::Index k = 1; k < t->size(); ++k) all.push_back((*t)(k) - (*t)(k - 1));
  std::sort(all.begin(), all.end());
  GapGroups g;
  for (double d : all)
    if (g.dts.empty() || d - g.dts.back() > kSameGap * d) g.dts.push_back(d);
  auto group_of = [&](double d) {
    auto it = std::lower_bound(g.dts.begin(), g.dts.end(), d * (1.0 - kSameGap));
    return static_cast<Eigen::Index>(it - g.dts.begin());
  };
  for (const Vector* t : times) {
    std::vector<Eigen::Index> groups;
    for (Eigen::Index k = 1; k < t->size(); ++k) groups.push_back(group_of((*t)(k) - (*t)(k - 1)));
    g.of_sequence.push_back(std::move(groups));
  }
  return g;
}

GapGroups group_gaps(const std::vector<TimedSequence>& seqs) {
  std::vector<const Vector*> times;
  for (const auto& s : seqs) times.push_back(&s.times);
  return group_gaps(times);
}

Params assemble(const ContinuousParams& params, const std::vector<Discretization>& discs,
                const std::vector<Eigen::Index>& groups) {
  const Eigen::Index n = params.state_dim(), m = params.emissions.input_weights.cols();
  const bool one = std::all_of(groups.begin(), groups.end(), [&](Eigen::Index g) { return g == groups.front(); });
  const Eigen::Index entries = groups.empty() || one ? 1 : static_cast<Eigen::Index>(groups.size());
  Params p;
  p.initial = params.initial;
  p.emissions = params.emissions;
  p.dynamics.weights = MatrixSeries(entries, n, n);
  p.dynamics.cov = MatrixSeries(entries, n, n);
  p.dynamics.bias = MatrixSeries(1, n, 1);
  p.dynamics.input_weights = MatrixSeries(1, n, m);
  for (Eigen::Index k = 0; k < entries; ++k) {
    const Discretization& d = groups.empty() ? discs.front() : discs[groups[k]];
    p.dynamics.weights[k] = d.weights;
    p.dynamics.cov[k] = d.cov;
  }
  return p;
}

std::vector<Discretization> discretize_gaps(const ContinuousParams& params, const std::vector<double>& dts) {
  std::vector<Discretization> out;
  for (double dt : dts) out.push_back(discretize_unchecked(params.dynamics.drift, params.dynamics.diffusion_cov, dt));
  if (out.empty())
    out.push_back({Matrix::Identity(params.state_dim(), params.state_dim()),
                   Matrix::Identity(params.state_dim(), params.state_dim())});
  return out;
}

bool all_finite(const std::vector<Discretization>& discs) {
  return std::all_of(discs.begin(), discs.end(),
                     [](const Discretization& d) { return d.weights.allFinite() && d.cov.allFinite(); });
}

std::vector<Discretization> discretize_all(const ContinuousParams& params, const std::vector<double>& dts,
                                           const std::string& times_name) {
  std::vector<Discretization> out = discretize_gaps(params, dts);
  for (size_t g = 0; g < dts.size(); ++g)
    if (!out[g].weights.allFinite() || !out[g].cov.allFinite())
      throw_invalid(times_name, "gaps over which exp(dynamics.drift * gap) is finite in double precision",
                    "an overflow over a gap of " + number(dts[g]) + " (dynamics.drift grows too fast over it)");
  return out;
}

Params with_identity_dynamics(const ContinuousParams& params) {
  return assemble(params, discretize_gaps(params, {}), {});
}

ParamProps discrete_props(const ContinuousProps& props) {
  ParamProps p;
  p.initial = props.initial;
  p.emissions = props.emissions;
  p.dynamics.weights = p.dynamics.bias = p.dynamics.input_weights = p.dynamics.cov = false;
  return p;
}

std::vector<Sequence> plain_sequences(const std::vector<TimedSequence>& seqs) {
  std::vector<Sequence> out;
  for (const auto& s : seqs) out.push_back(s.seq);
  return out;
}

ContinuousStats grouped_stats(const ContinuousParams& params, const std::vector<TimedSequence>& seqs,
                              const GapGroups& gaps, const std::vector<Discretization>& discs, int num_threads) {
  const bool per_step = internal::per_step_emissions(params.emissions);
  std::vector<SufficientStats> each(seqs.size());
  std::vector<std::vector<Eigen::Index>> global_of_local(seqs.size());
  parallel_for(
      static_cast<Eigen::Index>(seqs.size()),
      [&](Eigen::Index i) {
        const auto& groups = gaps.of_sequence[i];
        std::vector<Eigen::Index>& globals = global_of_local[i];
        globals = groups;
        std::sort(globals.begin(), globals.end());
        globals.erase(std::unique(globals.begin(), globals.end()), globals.end());
        std::vector<Eigen::Index> local(groups.size());
        for (size_t k = 0; k < groups.size(); ++k)
          local[k] = std::lower_bound(globals.begin(), globals.end(), groups[k]) - globals.begin();
        const Params p = assemble(params, discs, groups);
        each[i] = sufficient_stats_one(p, seqs[i].seq, per_step, local,
                                       std::max<Eigen::Index>(1, static_cast<Eigen::Index>(globals.size())));
      },
      num_threads);
  const Eigen::Index n = params.state_dim();
  SufficientStats total;
  total.initial = RegressionStats(params.initial.mean);
  total.dynamics.assign(std::max<size_t>(1, gaps.dts.size()),
                        RegressionStats(Matrix::Zero(n, n + params.emissions.input_weights.cols() + 1)));
  for (size_t i = 0; i < each.size(); ++i) {
    std::vector<RegressionStats> dynamics = std::move(each[i].dynamics);
    each[i].dynamics.clear();
    total += each[i];
    for (size_t j = 0; j < global_of_local[i].size(); ++j) total.dynamics[global_of_local[i][j]] += dynamics[j];
  }
  return {gaps.dts, std::move(total)};
}

double dynamics_log_lik(const ContinuousDynamics& dyn, const std::vector<double>& dts,
                        const std::vector<RegressionStats>& groups, Matrix* grad_drift, Matrix* grad_diffusion,
                        int num_threads) {
  const Eigen::Index n = dyn.drift.rows();
  const auto num_gaps = static_cast<Eigen::Index>(dts.size());
  std::vector<double> terms(dts.size(), 0.0);
  std::vector<Matrix> grads_drift(grad_drift ? dts.size() : 0), grads_diffusion(grads_drift.size());
  parallel_for(
      num_gaps,
      [&](Eigen::Index g) {
        const RegressionStats& s = groups[g];
        if (s.count <= 0) return;
        const Transition t = transition(dyn.drift, dts[g]);
        const Matrix& a = t.weights;
        std::vector<Matrix> series, entering;  // recorded for the adjoint
        const Matrix sigma =
            grad_drift ? covariance(t, dyn.diffusion_cov, &series, &entering) : covariance(t, dyn.diffusion_cov);
        const Eigen::LLT<Matrix> llt(sigma);
        if (!a.allFinite() || !sigma.allFinite() || llt.info() != Eigen::Success) {
          terms[g] = -kInf;
          return;
        }
        Matrix w = Matrix::Zero(s.w0.rows(), s.w0.cols());  // [A, 0, 0]: no dynamics inputs or bias
        w.leftCols(n) = a;
        const Matrix resid = s.scatter(w);
        const double log_det = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
        terms[g] = -0.5 * (s.count * (static_cast<double>(n) * kLog2Pi + log_det) + llt.solve(resid).trace());
        if (!grad_drift) return;
        const Matrix grad_a = llt.solve(s.moment(w).leftCols(n));
        const Matrix half = llt.solve(resid - s.count * sigma);
        Matrix grad_sigma = 0.5 * llt.solve(half.transpose());
        symmetrize(grad_sigma);
        transition_adjoint(t, series, entering, grad_a, grad_sigma, grads_drift[g], grads_diffusion[g]);
      },
      num_threads);
  double total = 0.0;  // summed in gap order, so the result does not depend on the threads
  for (double t : terms) total += t;
  if (grad_drift) {
    grad_drift->setZero(n, n);
    grad_diffusion->setZero(n, n);
    for (size_t g = 0; g < grads_drift.size(); ++g) {
      if (grads_drift[g].size() == 0) continue;
      *grad_drift += grads_drift[g];
      *grad_diffusion += grads_diffusion[g];
    }
  }
  return total;
}

std::vector<Slot> dynamics_slots(ContinuousDynamics& d, const ContinuousProps& props) {
  std::vector<Slot> slots;
  if (props.drift) slots.push_back({"dynamics.drift", as_map(d.drift), false, CovStructure::kFull});
  if (props.diffusion_cov)
    slots.push_back({"dynamics.diffusion_cov", as_map(d.diffusion_cov), true, props.diffusion_cov_structure});
  return slots;
}

void validate_data(const ContinuousParams& params, const std::vector<TimedSequence>& seqs) {
  validate(params);
  if (seqs.empty()) throw_invalid("emissions", "at least one sequence", "none");
  const Params discrete = with_identity_dynamics(params);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::string name = seqs.size() == 1 ? "emissions" : "emissions[" + std::to_string(i) + "]";
    validate(discrete, seqs[i].seq, name);
    validate_times(seqs[i].times, seqs[i].seq.num_timesteps(),
                   seqs.size() == 1 ? "times" : "times[" + std::to_string(i) + "]");
  }
}

// Checks the properties against (valid) parameters.
void validate_props(const ContinuousParams& params, const ContinuousProps& props) {
  check_structure("dynamics.diffusion_cov", params.dynamics.diffusion_cov, props.diffusion_cov_structure);
  validate(with_identity_dynamics(params), discrete_props(props));
}

void validate_fit(const ContinuousParams& params, const ContinuousProps& props,
                  const std::vector<TimedSequence>& seqs) {
  validate_data(params, seqs);
  validate_props(params, props);
}

}  // namespace internal

void validate(const ContinuousParams& params) {
  const Eigen::Index n = params.state_dim();
  if (n < 1) throw_invalid("initial.mean", "state_dim >= 1 entries", shape_str(n));
  validate_dynamics(params.dynamics.drift, params.dynamics.diffusion_cov, n, "dynamics.drift",
                    "dynamics.diffusion_cov");
  // Initial state and emissions: as in discrete time, with a valid stand-in transition.
  validate(internal::with_identity_dynamics(params));
}

void validate_times(const Vector& times, Eigen::Index num_timesteps, const std::string& name) {
  if (times.size() != num_timesteps)
    throw_invalid(name, "shape " + shape_str(num_timesteps) + " (one time per step)", shape_str(times.size()));
  for (Eigen::Index k = 0; k < times.size(); ++k) {
    if (!std::isfinite(times(k))) throw_invalid(name, "finite times", number(times(k)) + " at " + std::to_string(k));
    if (k > 0 && !(times(k) > times(k - 1)))
      throw_invalid(name, "strictly increasing times",
                    number(times(k - 1)) + " then " + number(times(k)) + " at " + std::to_string(k));
    if (k > 0 && !std::isfinite(times(k) - times(k - 1)))
      throw_invalid(name, "finite gaps between times",
                    number(times(k - 1)) + " then " + number(times(k)) + " at " + std::to_string(k));
  }
}

Params to_discrete(const ContinuousParams& params, const Vector& times) {
  validate(params);
  validate_times(times, times.size(), "times");
  const internal::GapGroups gaps = internal::group_gaps({&times});
  return internal::assemble(params, internal::discretize_all(params, gaps.dts), gaps.of_sequence[0]);
}

ContinuousStats& ContinuousStats::operator+=(const ContinuousStats& other) {
  if (other.stats.initial.w0.size() == 0) return *this;
  if (stats.initial.w0.size() == 0) return *this = other;
  // Merge the ascending gap lists, sending each side's groups to their merged index.
  std::vector<double> merged;
  std::vector<size_t> ours, theirs;
  for (size_t i = 0, j = 0; i < gaps.size() || j < other.gaps.size();) {
    const bool mine = j == other.gaps.size() || (i < gaps.size() && gaps[i] <= other.gaps[j]);
    const double d = mine ? gaps[i++] : other.gaps[j++];
    if (merged.empty() || d - merged.back() > internal::kSameGap * d) merged.push_back(d);
    (mine ? ours : theirs).push_back(merged.size() - 1);
  }
  const RegressionStats& shape = stats.dynamics.front();
  std::vector<RegressionStats> dynamics(std::max<size_t>(1, merged.size()),
                                        RegressionStats(Matrix::Zero(shape.w0.rows(), shape.w0.cols())));
  for (size_t k = 0; k < ours.size(); ++k) dynamics[ours[k]] += stats.dynamics[k];
  for (size_t k = 0; k < theirs.size(); ++k) dynamics[theirs[k]] += other.stats.dynamics[k];
  SufficientStats rest = other.stats;
  rest.dynamics.clear();
  stats.dynamics.clear();
  stats += rest;
  stats.dynamics = std::move(dynamics);
  gaps = std::move(merged);
  return *this;
}

ContinuousStats sufficient_stats(const ContinuousParams& params, const std::vector<TimedSequence>& seqs,
                                 int num_threads) {
  internal::validate_data(params, seqs);
  internal::check_count("num_threads", num_threads, 0);
  const internal::GapGroups gaps = internal::group_gaps(seqs);
  return internal::grouped_stats(params, seqs, gaps, internal::discretize_all(params, gaps.dts), num_threads);
}

}  // namespace lgssm
