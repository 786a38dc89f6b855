#include "lgssm/continuous.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <unsupported/Eigen/MatrixFunctions>

#include "checks.hpp"
#include "internal.hpp"
#include "lgssm/error.hpp"
#include "linalg.hpp"
#include "slots.hpp"

namespace lgssm {

using internal::shape_str;
using internal::throw_invalid;

namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kSameGap = 1e-10;  // steps within this relative distance are one group

void check_dt(double dt) {
  if (!(dt > 0.0) || !std::isfinite(dt)) throw_invalid("dt", "a finite step > 0", std::to_string(dt));
}

// exp([[F, Q_c], [0, -F^T]] dt).
Matrix van_loan_exponential(const Matrix& drift, const Matrix& diffusion_cov, double dt) {
  const Eigen::Index n = drift.rows();
  Matrix m(2 * n, 2 * n);
  m << drift, diffusion_cov, Matrix::Zero(n, n), -drift.transpose();
  return (m * dt).exp();
}

// Distinct gaps (merged within a relative kSameGap) and each gap's group.
struct GapGroups {
  std::vector<double> dts;
  std::vector<std::vector<Eigen::Index>> of_sequence;  // per sequence, per transition
};

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

// The discrete model with one dynamics entry per transition, from the
// discretizations of the distinct gaps (one constant entry for a single gap).
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

std::vector<Discretization> discretize_all(const ContinuousParams& params, const std::vector<double>& dts) {
  std::vector<Discretization> out;
  for (double dt : dts) out.push_back(discretize(params.dynamics.drift, params.dynamics.diffusion_cov, dt));
  if (out.empty()) out.push_back({Matrix::Identity(params.state_dim(), params.state_dim()),
                                  Matrix::Identity(params.state_dim(), params.state_dim())});
  return out;
}

// The discrete model with one placeholder (identity) transition: what the
// initial-state and emission code of the discrete model needs.
Params shell(const ContinuousParams& params) { return assemble(params, discretize_all(params, {}), {}); }

// Discrete-time properties for the initial state and emissions, dynamics frozen.
ParamProps discrete_props(const ContinuousProps& props) {
  ParamProps p;
  p.initial = props.initial;
  p.emissions = props.emissions;
  p.dynamics = {false, false, false, false, CovStructure::kFull};
  return p;
}

std::vector<Sequence> plain_sequences(const std::vector<TimedSequence>& seqs) {
  std::vector<Sequence> out;
  for (const auto& s : seqs) out.push_back(s.seq);
  return out;
}

// The E-step over all sequences with transitions grouped by gap. Each
// sequence's statistics hold only the groups it touches (numbered locally),
// which are then added into the global groups.
ContinuousStats grouped_stats(const ContinuousParams& params, const std::vector<TimedSequence>& seqs,
                              const GapGroups& gaps, int num_threads) {
  const auto discs = discretize_all(params, gaps.dts);
  const bool per_step = params.emissions.weights.size() > 1;
  std::vector<SufficientStats> each(seqs.size());
  std::vector<std::vector<Eigen::Index>> global_of_local(seqs.size());
  parallel_for(static_cast<Eigen::Index>(seqs.size()), [&](Eigen::Index i) {
    const auto& groups = gaps.of_sequence[i];
    std::vector<Eigen::Index>& globals = global_of_local[i];
    globals = groups;
    std::sort(globals.begin(), globals.end());
    globals.erase(std::unique(globals.begin(), globals.end()), globals.end());
    std::vector<Eigen::Index> local(groups.size());
    for (size_t k = 0; k < groups.size(); ++k)
      local[k] = std::lower_bound(globals.begin(), globals.end(), groups[k]) - globals.begin();
    const Params p = assemble(params, discs, groups);
    each[i] = internal::sufficient_stats_one(p, seqs[i].seq, per_step, local,
                                             std::max<Eigen::Index>(1, static_cast<Eigen::Index>(globals.size())));
  }, num_threads);
  const Eigen::Index n = params.state_dim();
  SufficientStats total(n, params.emissions.weights.rows(), params.emissions.input_weights.cols(), 1,
                        std::max<Eigen::Index>(1, static_cast<Eigen::Index>(gaps.dts.size())));
  for (size_t i = 0; i < each.size(); ++i) {
    std::vector<RegressionStats> dynamics = std::move(each[i].dynamics);
    each[i].dynamics.clear();
    total += each[i];
    for (size_t j = 0; j < global_of_local[i].size(); ++j) total.dynamics[global_of_local[i][j]] += dynamics[j];
  }
  return {gaps.dts, std::move(total)};
}

// sum_g E[log N(z_t | A_g z_{t-1}, Sigma_g)] over the transition groups, and
// (when grad_drift is given) its gradient w.r.t. F and Q_c: per group, the
// gradients w.r.t. A and Sigma, then back through Sigma = X12 X11^T and
// X = exp(M dt) with the adjoint Frechet derivative L(B^T, G) of exp at B = M dt,
// read off exp([[B^T, G], [0, B^T]]) (Al-Mohy & Higham 2009, Eq. 1.4).
double dynamics_log_lik(const ContinuousDynamics& dyn, const std::vector<double>& dts,
                        const std::vector<RegressionStats>& groups, Matrix* grad_drift, Matrix* grad_diffusion,
                        int num_threads) {
  const Eigen::Index n = dyn.drift.rows();
  const auto num_gaps = static_cast<Eigen::Index>(dts.size());
  std::vector<double> terms(dts.size(), 0.0);
  std::vector<Matrix> grads_drift(grad_drift ? dts.size() : 0), grads_diffusion(grads_drift.size());
  parallel_for(num_gaps, [&](Eigen::Index g) {
    const RegressionStats& s = groups[g];
    if (s.count <= 0) return;
    const Matrix x = van_loan_exponential(dyn.drift, dyn.diffusion_cov, dts[g]);
    const Matrix a = x.topLeftCorner(n, n), x12 = x.topRightCorner(n, n);
    Matrix sigma = x12 * a.transpose();
    sigma = 0.5 * (sigma + sigma.transpose());
    const Eigen::LLT<Matrix> llt(sigma);
    if (llt.info() != Eigen::Success) {
      terms[g] = -kInf;
      return;
    }
    const Matrix yx = s.yx.leftCols(n), xx = s.xx.topLeftCorner(n, n);
    const Matrix ayx = a * yx.transpose();
    const Matrix resid = s.yy - ayx - ayx.transpose() + a * xx * a.transpose();
    const double log_det = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
    terms[g] = -0.5 * (s.count * (static_cast<double>(n) * kLog2Pi + log_det) + llt.solve(resid).trace());
    if (!grad_drift) return;
    const Matrix g_a = llt.solve(yx - a * xx);
    const Matrix half = llt.solve(resid - s.count * sigma);
    const Matrix g_sigma = 0.5 * llt.solve(half.transpose());
    Matrix g_x = Matrix::Zero(2 * n, 2 * n);
    g_x.topLeftCorner(n, n) = g_a + g_sigma * x12;
    g_x.topRightCorner(n, n) = g_sigma * a;
    Matrix bt(2 * n, 2 * n);
    bt << dyn.drift.transpose(), Matrix::Zero(n, n), dyn.diffusion_cov.transpose(), -dyn.drift;
    bt *= dts[g];  // (M dt)^T
    Matrix big = Matrix::Zero(4 * n, 4 * n);
    big.topLeftCorner(2 * n, 2 * n) = bt;
    big.bottomRightCorner(2 * n, 2 * n) = bt;
    big.topRightCorner(2 * n, 2 * n) = g_x;
    const Matrix g_m = dts[g] * big.exp().topRightCorner(2 * n, 2 * n);
    grads_drift[g] = g_m.topLeftCorner(n, n) - g_m.bottomRightCorner(n, n).transpose();
    grads_diffusion[g] = 0.5 * (g_m.topRightCorner(n, n) + g_m.topRightCorner(n, n).transpose());
  }, num_threads);
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

// Slots of the trainable dynamics parameters F (plain) and Q_c (covariance).
std::vector<internal::Slot> dynamics_slots(ContinuousDynamics& d, const ContinuousProps& props) {
  std::vector<internal::Slot> slots;
  if (props.drift) slots.push_back({"dynamics.drift", internal::view(d.drift), false, CovStructure::kFull});
  if (props.diffusion_cov)
    slots.push_back({"dynamics.diffusion_cov", internal::view(d.diffusion_cov), true, props.diffusion_cov_structure});
  return slots;
}

std::vector<internal::Slot> all_slots(ContinuousParams& p, const ContinuousProps& props, bool every_entry = false) {
  auto slots = internal::trainable_slots(p.initial, nullptr, p.emissions, discrete_props(props), every_entry);
  const auto dyn = dynamics_slots(p.dynamics, props);
  slots.insert(slots.end(), dyn.begin(), dyn.end());
  return slots;
}

// Checks the parameters, and every sequence with its times.
void validate_data(const ContinuousParams& params, const std::vector<TimedSequence>& seqs) {
  validate(params);
  if (seqs.empty()) throw_invalid("emissions", "at least one sequence", "none");
  const Params discrete = shell(params);
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::string name = seqs.size() == 1 ? "emissions" : "emissions[" + std::to_string(i) + "]";
    validate(discrete, seqs[i].seq, name);
    validate_times(seqs[i].times, seqs[i].seq.num_timesteps(), seqs.size() == 1 ? "times" : "times[" + std::to_string(i) + "]");
  }
}

// Checks the properties against (valid) parameters.
void validate_props(const ContinuousParams& params, const ContinuousProps& props) {
  internal::check_structure("dynamics.diffusion_cov", params.dynamics.diffusion_cov, props.diffusion_cov_structure);
  validate(shell(params), discrete_props(props));
}

void validate_fit(const ContinuousParams& params, const ContinuousProps& props, const std::vector<TimedSequence>& seqs) {
  validate_data(params, seqs);
  validate_props(params, props);
}

ContinuousParams m_step_unchecked(const ContinuousParams& params, const ContinuousProps& props,
                                  const ContinuousStats& cs, int m_step_iters, int num_threads) {
  const SufficientStats& stats = cs.stats;
  ContinuousParams next = params;
  const Params updated = m_step(shell(params), discrete_props(props), stats);
  next.initial = updated.initial;
  next.emissions = updated.emissions;
  if (props.drift || props.diffusion_cov) {
    LbfgsOptions inner;
    inner.max_iters = m_step_iters;
    auto slots = dynamics_slots(next.dynamics, props);
    const double count = std::max(1.0, stats.num_sequences);
    const auto run = internal::minimize_lbfgs(
        [&](const Vector& x, Vector& g) {
          ContinuousDynamics trial = params.dynamics, grad;
          auto s = dynamics_slots(trial, props);
          internal::unpack(x, s);
          const double q =
              dynamics_log_lik(trial, cs.gaps, stats.dynamics, &grad.drift, &grad.diffusion_cov, num_threads);
          if (!std::isfinite(q)) return kInf;
          g = -internal::chain(dynamics_slots(trial, props), dynamics_slots(grad, props)) / count;
          return g.allFinite() ? -q / count : kInf;
        },
        internal::pack(slots), inner, {});
    internal::unpack(run.x, slots);
  }
  validate(next);
  return next;
}

}  // namespace

void validate(const ContinuousParams& params) {
  const Eigen::Index n = params.state_dim();
  const auto& d = params.dynamics;
  if (d.drift.rows() != n || d.drift.cols() != n)
    throw_invalid("dynamics.drift", "shape " + shape_str(n, n), shape_str(d.drift.rows(), d.drift.cols()));
  check_finite("dynamics.drift", d.drift);
  if (d.diffusion_cov.rows() != n || d.diffusion_cov.cols() != n)
    throw_invalid("dynamics.diffusion_cov", "shape " + shape_str(n, n),
                  shape_str(d.diffusion_cov.rows(), d.diffusion_cov.cols()));
  check_covariance("dynamics.diffusion_cov", d.diffusion_cov, Definiteness::kSemidefinite);
  // Initial state and emissions: as in discrete time, with a valid stand-in transition.
  const Discretization identity{Matrix::Identity(n, n), Matrix::Identity(n, n)};
  validate(assemble(params, {identity}, {}));
}

Discretization discretize(const Matrix& drift, const Matrix& diffusion_cov, double dt) {
  check_dt(dt);
  const Eigen::Index n = drift.rows();
  const Matrix x = van_loan_exponential(drift, diffusion_cov, dt);
  Discretization d{x.topLeftCorner(n, n), x.topRightCorner(n, n) * x.topLeftCorner(n, n).transpose()};
  internal::symmetrize(d.cov);
  return d;
}

Undiscretization undiscretize(const Matrix& weights, const Matrix& cov, double dt) {
  check_dt(dt);
  const Eigen::Index n = weights.rows();
  if (weights.cols() != n || cov.rows() != n || cov.cols() != n)
    throw_invalid("weights, cov", "square matrices of one size", shape_str(weights.rows(), weights.cols()) + " and " +
                                                                     shape_str(cov.rows(), cov.cols()));
  check_finite("weights", weights);
  check_finite("cov", cov);
  const Eigen::EigenSolver<Matrix> eig(weights, false);
  for (Eigen::Index i = 0; i < n; ++i) {
    const std::complex<double> l = eig.eigenvalues()(i);
    if (std::abs(l) == 0.0 || (std::abs(l.imag()) <= 1e-12 * std::abs(l) && l.real() <= 0.0))
      throw_invalid("weights", "no eigenvalue on the closed negative real axis (a real principal logarithm)",
                    "eigenvalue " + std::to_string(l.real()) + (l.imag() != 0.0 ? " + " + std::to_string(l.imag()) + "i" : ""));
  }
  const Matrix a_inv_t = weights.transpose().partialPivLu().inverse();
  Matrix block(2 * n, 2 * n);
  block << weights, cov * a_inv_t, Matrix::Zero(n, n), a_inv_t;
  const Matrix log_block = block.log() / dt;
  Undiscretization out{log_block.topLeftCorner(n, n), log_block.topRightCorner(n, n)};
  internal::symmetrize(out.diffusion_cov);
  const Eigen::SelfAdjointEigenSolver<Matrix> se(out.diffusion_cov);
  if (se.eigenvalues().minCoeff() < 0.0) {
    const Matrix projected =
        se.eigenvectors() * se.eigenvalues().cwiseMax(0.0).asDiagonal() * se.eigenvectors().transpose();
    out.psd_correction = (projected - out.diffusion_cov).norm();
    out.diffusion_cov = projected;
    internal::symmetrize(out.diffusion_cov);
  }
  return out;
}

void validate_times(const Vector& times, Eigen::Index num_timesteps, const std::string& name) {
  if (times.size() != num_timesteps)
    throw_invalid(name, "shape " + shape_str(num_timesteps) + " (one time per step)", shape_str(times.size()));
  for (Eigen::Index k = 0; k < times.size(); ++k) {
    if (!std::isfinite(times(k))) throw_invalid(name, "finite times", std::to_string(times(k)) + " at " + std::to_string(k));
    if (k > 0 && !(times(k) > times(k - 1)))
      throw_invalid(name, "strictly increasing times",
                    std::to_string(times(k - 1)) + " then " + std::to_string(times(k)) + " at " + std::to_string(k));
  }
}

Params to_discrete(const ContinuousParams& params, const Vector& times) {
  validate(params);
  validate_times(times, times.size(), "times");
  const GapGroups gaps = group_gaps({&times});
  return assemble(params, discretize_all(params, gaps.dts), gaps.of_sequence[0]);
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

ContinuousStats& ContinuousStats::operator+=(const ContinuousStats& other) {
  if (other.stats.initial_sum.size() == 0) return *this;
  if (stats.initial_sum.size() == 0) return *this = other;
  // Merge the ascending gap lists, sending each side's groups to their merged index.
  std::vector<double> merged;
  std::vector<size_t> ours, theirs;
  for (size_t i = 0, j = 0; i < gaps.size() || j < other.gaps.size();) {
    const bool mine = j == other.gaps.size() || (i < gaps.size() && gaps[i] <= other.gaps[j]);
    const double d = mine ? gaps[i++] : other.gaps[j++];
    if (merged.empty() || d - merged.back() > kSameGap * d) merged.push_back(d);
    (mine ? ours : theirs).push_back(merged.size() - 1);
  }
  const RegressionStats& shape = stats.dynamics.front();
  std::vector<RegressionStats> dynamics(std::max<size_t>(1, merged.size()),
                                        RegressionStats(shape.yy.rows(), shape.xx.rows()));
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
  validate_data(params, seqs);
  return grouped_stats(params, seqs, group_gaps(seqs), num_threads);
}

ContinuousParams m_step(const ContinuousParams& params, const ContinuousProps& props, const ContinuousStats& stats,
                        int m_step_iters, int num_threads) {
  validate(params);
  validate_props(params, props);
  if (m_step_iters < 1) throw_invalid("m_step_iters", ">= 1", std::to_string(m_step_iters));
  const Eigen::Index n = params.state_dim();
  const size_t groups = std::max<size_t>(1, stats.gaps.size());
  if (stats.stats.initial_sum.size() != n || stats.stats.dynamics.size() != groups ||
      stats.stats.dynamics.front().yy.rows() != n)
    throw_invalid("stats", "statistics of a model with state_dim " + std::to_string(n) + " and " +
                               std::to_string(groups) + " dynamics groups (one per gap)",
                  "state_dim " + std::to_string(stats.stats.initial_sum.size()) + " and " +
                      std::to_string(stats.stats.dynamics.size()) + " groups");
  return m_step_unchecked(params, props, stats, m_step_iters, num_threads);
}

double log_prob_and_gradient(const ContinuousParams& params, const ContinuousProps& props,
                             const std::vector<TimedSequence>& seqs, Vector& gradient, int num_threads) {
  const ContinuousStats cs = grouped_stats(params, seqs, group_gaps(seqs), num_threads);
  const SufficientStats& stats = cs.stats;
  // Initial state and emissions: the discrete-time gradient with the dynamics frozen.
  const Vector g_rest = log_prob_gradient(shell(params), discrete_props(props), stats);
  ContinuousDynamics grad{Matrix(), Matrix()};
  dynamics_log_lik(params.dynamics, cs.gaps, stats.dynamics, &grad.drift, &grad.diffusion_cov, num_threads);
  ContinuousDynamics values = params.dynamics;
  const Vector g_dyn = internal::chain(dynamics_slots(values, props), dynamics_slots(grad, props));
  gradient.resize(g_rest.size() + g_dyn.size());
  gradient << g_rest, g_dyn;
  return stats.marginal_loglik;
}

ContinuousFitResult fit_lbfgs(const ContinuousParams& params, const ContinuousProps& props,
                              const std::vector<TimedSequence>& seqs, const LbfgsOptions& options) {
  validate_fit(params, props, seqs);
  double scale = 0.0;
  for (const auto& s : seqs) scale += static_cast<double>(s.seq.emissions.size());
  ContinuousFitResult r{params, {}, {}};
  const auto run = internal::maximize_log_prob(
      [&](const Vector& x, Vector& g) {
        try {
          const ContinuousParams p = from_unconstrained(x, params, props);
          const double ll = log_prob_and_gradient(p, props, seqs, g, options.num_threads);
          g = -g / scale;
          return std::isfinite(ll) && g.allFinite() ? -ll / scale : kInf;
        } catch (const invalid_argument&) {
          return kInf;
        }
      },
      to_unconstrained(params, props), options, scale, r.history);
  r.params = from_unconstrained(run.x, params, props);
  r.summary = {run.iterations, run.termination, run.message};
  return r;
}

ContinuousFitResult fit_em(const ContinuousParams& params, const ContinuousProps& props,
                           const std::vector<TimedSequence>& seqs, const ContinuousEmOptions& options) {
  validate_fit(params, props, seqs);
  if (options.m_step_iters < 1) throw_invalid("m_step_iters", ">= 1", std::to_string(options.m_step_iters));
  const GapGroups gaps = group_gaps(seqs);
  ContinuousFitResult r{params, {}, {}};

  const bool uniform = gaps.dts.size() == 1 && props.drift && props.diffusion_cov &&
                       props.diffusion_cov_structure == CovStructure::kFull;
  if (uniform) {  // the seed document's EM on (A, Sigma), then the matrix logarithm
    const double dt = gaps.dts.front();
    ParamProps dprops = discrete_props(props);
    dprops.dynamics = {true, false, false, true, CovStructure::kFull};
    EmOptions eo;
    eo.num_iters = options.num_iters;
    eo.tolerance = options.tolerance;
    eo.num_threads = options.num_threads;
    eo.callback = options.callback;
    const FitResult fr = fit_em(assemble(params, discretize_all(params, gaps.dts), {}), dprops, plain_sequences(seqs), eo);
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

  // Generalized EM, accelerated by SQUAREM.
  const auto m_step_at = [&](const ContinuousParams& p, const ContinuousStats& stats) {
    return m_step_unchecked(p, props, stats, options.m_step_iters, options.num_threads);
  };
  // Records the log likelihood of the E-step at `p`, which becomes the
  // result; false when the fit ends there.
  const auto record = [&](const ContinuousParams& p, double lp) {
    const int it = static_cast<int>(r.history.size());
    if (!std::isfinite(lp)) {
      r.summary = {it, Termination::kNumericalFailure,
                   "log likelihood became " + std::to_string(lp) + "; returning the last good parameters"};
      return false;
    }
    r.params = p;
    r.history.push_back(lp);
    r.summary = {it + 1, Termination::kMaxIterations, "reached num_iters"};
    if (options.callback && !options.callback(it, lp)) {
      r.summary = {it + 1, Termination::kStopped, "stopped by the callback"};
      return false;
    }
    if (options.tolerance > 0 && it > 0 && std::abs(lp - r.history[it - 1]) <= options.tolerance * std::abs(lp)) {
      r.summary = {it + 1, Termination::kConverged, "relative change of the log likelihood below tolerance"};
      return false;
    }
    return true;
  };
  const auto left = [&] { return static_cast<int>(r.history.size()) < options.num_iters; };
  // The parameters as one vector, per-step emission entries included.
  const auto to_vector = [&](ContinuousParams p) { return internal::pack(all_slots(p, props, true)); };
  // SQUAREM (Varadhan & Roland 2008, scheme S3): from theta_0 and two EM
  // steps theta_1, theta_2, r = theta_1 - theta_0 and v = theta_2 - 2 theta_1 +
  // theta_0, the step alpha = |r| / |v| in [1, step_max] gives theta' =
  // theta_0 + 2 alpha r + alpha^2 v (alpha = 1 is theta_2). theta' is kept
  // only when its log likelihood is at least theta_1's, so the recorded log
  // likelihood stays non-decreasing; step_max grows by 4 when reached and
  // shrinks back on a rejection (Du & Varadhan 2020, turboEM defaults).
  double step_max = 1.0;
  ContinuousParams current = params;  // the next iterate; the result when num_iters is reached
  bool ended = false;                 // ended at a recorded iterate (r.params set by record)
  try {
    while (left()) {
      const ContinuousParams p0 = current;
      const ContinuousStats s0 = grouped_stats(p0, seqs, gaps, options.num_threads);
      if ((ended = !record(p0, s0.stats.marginal_loglik))) break;
      current = m_step_at(p0, s0);
      if (!options.accelerate || !left()) continue;
      const ContinuousParams p1 = current;
      const ContinuousStats s1 = grouped_stats(p1, seqs, gaps, options.num_threads);
      if ((ended = !record(p1, s1.stats.marginal_loglik))) break;
      current = m_step_at(p1, s1);
      if (!left()) continue;
      ContinuousParams candidate = params;
      std::optional<ContinuousStats> sc;
      double alpha = 1.0;
      try {
        const Vector x0 = to_vector(p0), x1 = to_vector(p1), x2 = to_vector(current);
        const Vector rr = x1 - x0, v = x2 - x1 - rr;
        alpha = std::clamp(rr.norm() / v.norm(), 1.0, step_max);  // NaN when r = v = 0: no step
        if (alpha > 1.0) {
          auto slots = all_slots(candidate, props, true);
          internal::unpack(x0 + 2.0 * alpha * rr + alpha * alpha * v, slots);
          validate(candidate);
          sc = grouped_stats(candidate, seqs, gaps, options.num_threads);
        }
      } catch (const invalid_argument&) {  // no usable extrapolation
      }
      const bool accepted =
          sc && std::isfinite(sc->stats.marginal_loglik) && sc->stats.marginal_loglik >= r.history.back();
      if (alpha > 1.0 && !accepted) {  // fall back to theta_2
        if (alpha == step_max) step_max = std::max(1.0, step_max / 4.0);
        alpha = 1.0;
      }
      if (alpha == step_max) step_max *= 4.0;
      if (!accepted) continue;
      if ((ended = !record(candidate, sc->stats.marginal_loglik))) break;
      current = m_step_at(candidate, *sc);
    }
    if (!ended) r.params = current;
  } catch (const invalid_argument& e) {
    r.summary.termination = Termination::kNumericalFailure;
    r.summary.message = std::string("the M-step left the valid parameter set (") + e.what() +
                        "); returning the parameters of the last E-step";
  }
  return r;
}

}  // namespace lgssm
