#include "lgssm/continuous.hpp"

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <unsupported/Eigen/MatrixFunctions>

#include "checks.hpp"
#include "internal.hpp"
#include "lbfgs.hpp"
#include "lgssm/fit.hpp"
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
  if (!(dt > 0.0) || !std::isfinite(dt)) throw_invalid("dt", "a finite step > 0", number(dt));
}

// ---- Discretization by scaling and squaring on the pair (A, Sigma) ----
//
// The small step tau = dt / 2^s has |F tau|_1 <= kTheta. There A_tau - I and
// Sigma_tau are Taylor series (see the header); then s doublings
//   A_{2h} = A_h^2,   Sigma_{2h} = A_h Sigma_h A_h^T + Sigma_h.
// While |A_h|_1 > 1/2 the doubling is carried on B_h = A_h - I,
// B_{2h} = 2 B_h + B_h^2, which keeps the slow modes' relative accuracy (A_h
// itself would round them to the identity); once |A_h|_1 <= 1/2, on A_h, which
// keeps the fast modes' relative accuracy. A_h = 0 is a fixed point: the
// remaining doublings leave Sigma unchanged.
//
// Where the problem's condition number |F|_1 dt is large, float64 rounding in
// the doublings alone moves the result by about 2^-53 |F|_1 dt relative (3e-10
// at |F|_1 dt = 3e6); there the value is computed in long double (x87:
// 2^-64), which keeps it within 1e-10 up to |F|_1 dt ~ 1e9 (kExtendedFrom).
constexpr double kTheta = 0.5;
constexpr double kExtendedFrom = 1e5;

template <class S>
using MatrixS = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;

template <class S>
S norm1(const MatrixS<S>& m) {
  return m.cwiseAbs().colwise().sum().maxCoeff();
}

// The smallest degree m whose truncation error (2t)^{m+1} e^{4t} / (m+2)!
// (relative to tau |Q|; a bound for both series at |F tau|_1 = t) is below
// half the unit roundoff u.
int taylor_degree(double t, double u) {
  int m = 0;
  double bound = 2.0 * t * std::exp(4.0 * t) / 2.0;  // m = 0: (2t)^1 e^{4t} / 2!
  while (bound > 0.5 * u && m < 60) {
    ++m;
    bound *= 2.0 * t / (m + 2);
  }
  return m;
}

// exp(F dt) by the scheme above, with what the covariance and the adjoint need.
template <class S>
struct TransitionS {
  S tau = 0;
  MatrixS<S> x;                      // F tau
  std::vector<MatrixS<S>> powers;    // (F tau)^j / j!, j = 0 .. degree - 1
  std::vector<MatrixS<S>> doubled;   // A_{2^k tau} entering doubling k, k = 0 .. (doublings done) - 1
  MatrixS<S> weights;                // A_dt
  int degree() const { return static_cast<int>(powers.size()); }
};
using Transition = TransitionS<double>;

template <class S = double>
TransitionS<S> transition(const Matrix& drift, double dt) {
  const Eigen::Index n = drift.rows();
  const MatrixS<S> identity = MatrixS<S>::Identity(n, n);
  const double norm = norm1<double>(drift);
  // s from log2 |F| + log2 dt, which does not overflow where |F| dt would.
  const int s = norm > 0.0 ? std::max(0, static_cast<int>(std::ceil(std::log2(norm) + std::log2(dt) -
                                                                    std::log2(kTheta))))
                           : 0;
  TransitionS<S> t;
  t.tau = std::ldexp(static_cast<S>(dt), -s);
  t.x = drift.cast<S>() * t.tau;
  const int degree = taylor_degree(static_cast<double>(norm1<S>(t.x)),
                                   static_cast<double>(std::numeric_limits<S>::epsilon()));
  MatrixS<S> b = MatrixS<S>::Zero(n, n), term = identity;  // b = sum_{j=1}^{degree} (F tau)^j / j!
  for (int j = 1; j <= degree; ++j) {
    t.powers.push_back(term);
    term = t.x * term / static_cast<S>(j);
    b += term;
  }
  MatrixS<S> a = identity + b;
  bool near_identity = norm1<S>(a) > 0.5;
  for (int k = 0; k < s && !a.isZero(0); ++k) {
    t.doubled.push_back(a);
    if (near_identity) {
      b = 2 * b + b * b;
      a = identity + b;
      near_identity = norm1<S>(a) > 0.5;
    } else {
      a = a * a;
    }
  }
  t.weights = std::move(a);
  return t;
}

// Sigma_dt = int_0^dt e^{F u} Q e^{F^T u} du for this Q (linear in Q): at the
// small step the series sum_{k>=0} S_k, S_0 = tau Q,
// S_k = (F tau S_{k-1} + S_{k-1} tau F^T) / (k + 1) (= tau^{k+1} L^k(Q) / (k+1)!
// with L(X) = F X + X F^T), then the doublings. `series` receives S_0 ..
// S_{degree-1} and `entering` Sigma entering each doubling, for the adjoint.
template <class S>
MatrixS<S> covariance(const TransitionS<S>& t, const Matrix& q, std::vector<MatrixS<S>>* series = nullptr,
                      std::vector<MatrixS<S>>* entering = nullptr) {
  MatrixS<S> term = t.tau * q.cast<S>();
  internal::symmetrize(term);
  MatrixS<S> sigma = term;
  for (int k = 1; k <= t.degree(); ++k) {
    if (series) series->push_back(term);
    const MatrixS<S> xs = t.x * term;
    term = (xs + xs.transpose()) / static_cast<S>(k + 1);
    sigma += term;
  }
  for (const MatrixS<S>& a : t.doubled) {
    if (entering) entering->push_back(sigma);
    MatrixS<S> spread = a * sigma * a.transpose();
    internal::symmetrize(spread);
    sigma += spread;
  }
  return sigma;
}

// The adjoint of (F, Q) -> (A_dt, Sigma_dt): from g_a = dl/dA and g_sigma =
// dl/dSigma (symmetric), dl/dF and dl/dQ, by the chain rule backwards through
// the doublings and the two series (reverse-mode differentiation of the
// computed map, so the gradient is that of the computed value). `series` and
// `entering` are those recorded by covariance.
void transition_adjoint(const Transition& t, const std::vector<Matrix>& series, const std::vector<Matrix>& entering,
                        Matrix g_a, Matrix g_sigma, Matrix& grad_drift, Matrix& grad_diffusion) {
  for (size_t k = t.doubled.size(); k-- > 0;) {
    const Matrix& a = t.doubled[k];
    g_a = g_a * a.transpose() + a.transpose() * g_a + 2.0 * g_sigma * a * entering[k];
    g_sigma += a.transpose() * g_sigma * a;
    internal::symmetrize(g_sigma);
  }
  // A_tau = I + sum_j T_j with T_j = x T_{j-1} / j, T_0 = I; g_a is dl/dA_tau.
  Matrix g_x = Matrix::Zero(t.x.rows(), t.x.cols()), g_term = g_a;
  for (int j = t.degree(); j >= 1; --j) {
    g_x += g_term * t.powers[j - 1].transpose() / static_cast<double>(j);
    g_term = g_a + t.x.transpose() * g_term / static_cast<double>(j);
  }
  g_term = g_sigma;
  for (int k = t.degree(); k >= 1; --k) {
    g_x += 2.0 * g_term * series[k - 1] / static_cast<double>(k + 1);
    const Matrix xg = t.x.transpose() * g_term;
    g_term = g_sigma + (xg + xg.transpose()) / static_cast<double>(k + 1);
  }
  grad_drift = t.tau * g_x;
  grad_diffusion = t.tau * g_term;
  internal::symmetrize(grad_diffusion);
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

// (A_dt, Sigma_dt) without argument checks; not finite only where exp(F dt) overflows.
template <class S>
Discretization discretize_in(const Matrix& drift, const Matrix& diffusion_cov, double dt) {
  const TransitionS<S> t = transition<S>(drift, dt);
  return {t.weights.template cast<double>(), covariance(t, diffusion_cov).template cast<double>()};
}

Discretization discretize_unchecked(const Matrix& drift, const Matrix& diffusion_cov, double dt) {
  const bool extended = norm1<double>(drift) * dt > kExtendedFrom;
  return extended ? discretize_in<long double>(drift, diffusion_cov, dt) : discretize_in<double>(drift, diffusion_cov, dt);
}

// The discretizations of the distinct gaps of `times_name`, which must not overflow.
std::vector<Discretization> discretize_all(const ContinuousParams& params, const std::vector<double>& dts,
                                           const std::string& times_name = "times") {
  std::vector<Discretization> out;
  for (double dt : dts) {
    out.push_back(discretize_unchecked(params.dynamics.drift, params.dynamics.diffusion_cov, dt));
    if (!out.back().weights.allFinite() || !out.back().cov.allFinite())
      throw_invalid(times_name, "gaps over which exp(dynamics.drift * gap) is finite in double precision",
                    "an overflow over a gap of " + number(dt) + " (dynamics.drift grows too fast over it)");
  }
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

// sum_g E[log N(z_t | A_g z_{t-1}, Sigma_g)] over the transition groups, and
// (when grad_drift is given) its gradient w.r.t. F and Q_c: per group, the
// gradients w.r.t. A and Sigma, then back through the scaling and squaring
// (transition_adjoint). -inf where a transition overflows.
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
    const Transition t = transition(dyn.drift, dts[g]);
    const Matrix& a = t.weights;
    std::vector<Matrix> series, entering;  // recorded for the adjoint
    const Matrix sigma = grad_drift ? covariance(t, dyn.diffusion_cov, &series, &entering)
                                    : covariance(t, dyn.diffusion_cov);
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
    const Matrix g_a = llt.solve(s.moment(w).leftCols(n));
    const Matrix half = llt.solve(resid - s.count * sigma);
    Matrix g_sigma = 0.5 * llt.solve(half.transpose());
    internal::symmetrize(g_sigma);
    transition_adjoint(t, series, entering, g_a, g_sigma, grads_drift[g], grads_diffusion[g]);
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

void validate(const ContinuousEmOptions& o) {
  check_count("num_iters", o.num_iters, 0);
  check_tolerance("tolerance", o.tolerance);
  check_count("m_step_iters", o.m_step_iters, 1);
  check_count("num_threads", o.num_threads, 0);
}

void validate_continuous(const LbfgsOptions& o) {
  validate(o);
  if (o.prior) throw_invalid("prior", "none (continuous-time fits are maximum likelihood)", "a prior");
}

double log_prob_and_gradient_unchecked(const ContinuousParams& params, const ContinuousProps& props,
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
    const double count = std::max(1.0, stats.num_sequences());
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

void validate_dynamics(const Matrix& drift, const Matrix& diffusion_cov, Eigen::Index state_dim,
                       const std::string& drift_name, const std::string& diffusion_name) {
  const Eigen::Index n = state_dim;
  if (n < 1 || drift.rows() != n || drift.cols() != n)
    throw_invalid(drift_name, n < 1 ? "a square matrix of size >= 1" : "shape " + shape_str(n, n),
                  shape_str(drift.rows(), drift.cols()));
  check_finite(drift_name, drift);
  if (diffusion_cov.rows() != n || diffusion_cov.cols() != n)
    throw_invalid(diffusion_name, "shape " + shape_str(n, n) + " (that of " + drift_name + ")",
                  shape_str(diffusion_cov.rows(), diffusion_cov.cols()));
  check_covariance(diffusion_name, diffusion_cov, Definiteness::kSemidefinite);
}

void validate(const ContinuousParams& params) {
  const Eigen::Index n = params.state_dim();
  if (n < 1) throw_invalid("initial.mean", "state_dim >= 1 entries", shape_str(n));
  validate_dynamics(params.dynamics.drift, params.dynamics.diffusion_cov, n, "dynamics.drift",
                    "dynamics.diffusion_cov");
  // Initial state and emissions: as in discrete time, with a valid stand-in transition.
  const Discretization identity{Matrix::Identity(n, n), Matrix::Identity(n, n)};
  validate(assemble(params, {identity}, {}));
}

Discretization discretize(const Matrix& drift, const Matrix& diffusion_covariance, double dt) {
  validate_dynamics(drift, diffusion_covariance, drift.rows() == drift.cols() ? drift.rows() : 0, "drift",
                    "diffusion_covariance");
  check_dt(dt);
  Discretization d = discretize_unchecked(drift, diffusion_covariance, dt);
  if (!d.weights.allFinite() || !d.cov.allFinite())
    throw_invalid("drift", "a drift whose transition exp(drift * dt) is finite in double precision",
                  "an overflow over dt = " + number(dt) + " (the drift grows too fast over it)");
  return d;
}

Undiscretization undiscretize(const Matrix& weights, const Matrix& cov, double dt) {
  const Eigen::Index n = weights.rows();
  if (n < 1 || weights.cols() != n)
    throw_invalid("weights", "a square matrix of size >= 1", shape_str(weights.rows(), weights.cols()));
  check_finite("weights", weights);
  if (cov.rows() != n || cov.cols() != n)
    throw_invalid("cov", "shape " + shape_str(n, n) + " (that of weights)", shape_str(cov.rows(), cov.cols()));
  check_covariance("cov", cov, Definiteness::kSemidefinite);
  check_dt(dt);
  const Eigen::EigenSolver<Matrix> eig(weights, false);
  for (Eigen::Index i = 0; i < n; ++i) {
    const std::complex<double> l = eig.eigenvalues()(i);
    if (std::abs(l) == 0.0 || (std::abs(l.imag()) <= 1e-12 * std::abs(l) && l.real() <= 0.0))
      throw_invalid("weights", "no eigenvalue on the closed negative real axis (a real principal logarithm)",
                    "eigenvalue " + number(l.real()) + (l.imag() != 0.0 ? " + " + number(l.imag()) + "i" : ""));
  }
  Undiscretization out;
  out.drift = Matrix(weights.log()) / dt;
  // Q_c solves the linear equations Sigma_dt(Q_c) = cov (Sigma_dt as in
  // discretize, linear in Q_c), over the n (n + 1) / 2 entries of a symmetric
  // Q_c; the matrix of that map is nonsingular when F is a principal
  // logarithm (its eigenvalues are dt phi(dt (l_i + l_j)), phi(z) = (e^z - 1) / z,
  // and |Im dt l| < pi).
  const Transition t = transition(out.drift, dt);
  const Eigen::Index p = n * (n + 1) / 2;
  Matrix map(p, p);
  Vector rhs(p);
  for (Eigen::Index j = 0, col = 0; j < n; ++j)
    for (Eigen::Index i = 0; i <= j; ++i, ++col) {
      Matrix basis = Matrix::Zero(n, n);
      basis(i, j) = basis(j, i) = 1.0;
      const Matrix image = covariance(t, basis);
      for (Eigen::Index jj = 0, row = 0; jj < n; ++jj)
        for (Eigen::Index ii = 0; ii <= jj; ++ii, ++row) map(row, col) = image(ii, jj);
      rhs(col) = 0.5 * (cov(i, j) + cov(j, i));
    }
  const Vector entries = map.colPivHouseholderQr().solve(rhs);
  out.diffusion_cov.resize(n, n);
  for (Eigen::Index j = 0, k = 0; j < n; ++j)
    for (Eigen::Index i = 0; i <= j; ++i, ++k) out.diffusion_cov(i, j) = out.diffusion_cov(j, i) = entries(k);
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
  if (other.stats.initial.w0.size() == 0) return *this;
  if (stats.initial.w0.size() == 0) return *this = other;
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
  validate_data(params, seqs);
  check_count("num_threads", num_threads, 0);
  return grouped_stats(params, seqs, group_gaps(seqs), num_threads);
}

ContinuousParams m_step(const ContinuousParams& params, const ContinuousProps& props, const ContinuousStats& stats,
                        int m_step_iters, int num_threads) {
  validate(params);
  validate_props(params, props);
  check_count("m_step_iters", m_step_iters, 1);
  check_count("num_threads", num_threads, 0);
  const Eigen::Index n = params.state_dim();
  const size_t groups = std::max<size_t>(1, stats.gaps.size());
  if (stats.stats.initial.w0.rows() != n || stats.stats.dynamics.size() != groups ||
      stats.stats.dynamics.front().w0.rows() != n)
    throw_invalid("stats", "statistics of a model with state_dim " + std::to_string(n) + " and " +
                               std::to_string(groups) + " dynamics groups (one per gap)",
                  "state_dim " + std::to_string(stats.stats.initial.w0.rows()) + " and " +
                      std::to_string(stats.stats.dynamics.size()) + " groups");
  return m_step_unchecked(params, props, stats, m_step_iters, num_threads);
}

double log_prob_and_gradient(const ContinuousParams& params, const ContinuousProps& props,
                             const std::vector<TimedSequence>& seqs, Vector& gradient, int num_threads) {
  validate_fit(params, props, seqs);
  check_count("num_threads", num_threads, 0);
  return log_prob_and_gradient_unchecked(params, props, seqs, gradient, num_threads);
}

ContinuousFitResult fit_lbfgs(const ContinuousParams& params, const ContinuousProps& props,
                              const std::vector<TimedSequence>& seqs, const LbfgsOptions& options) {
  validate_fit(params, props, seqs);
  validate_continuous(options);
  double scale = 0.0;
  for (const auto& s : seqs) scale += static_cast<double>(s.seq.emissions.size());
  ContinuousFitResult r{params, {}, {}};
  const auto started = std::chrono::steady_clock::now();
  const auto run = internal::maximize_log_prob(
      [&](const Vector& x, Vector& g) {
        try {
          const ContinuousParams p = from_unconstrained(x, params, props);
          const double ll = log_prob_and_gradient_unchecked(p, props, seqs, g, options.num_threads);
          g = -g / scale;
          return std::isfinite(ll) && g.allFinite() ? -ll / scale : kInf;
        } catch (const invalid_argument&) {
          return kInf;
        }
      },
      to_unconstrained(params, props), options, scale, r.history);
  r.params = from_unconstrained(run.x, params, props);
  r.summary.iterations = run.iterations;
  r.summary.termination = run.termination;
  r.summary.message = run.message;
  complete(r.summary, r.history, run.evaluations, started);
  return r;
}

ContinuousFitResult fit_em(const ContinuousParams& params, const ContinuousProps& props,
                           const std::vector<TimedSequence>& seqs, const ContinuousEmOptions& options) {
  validate_fit(params, props, seqs);
  validate(options);
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

  // Generalized EM, accelerated by SQUAREM (fit.hpp).
  EmSteps<ContinuousParams, ContinuousStats> steps;
  steps.e_step = [&](const ContinuousParams& p) { return grouped_stats(p, seqs, gaps, options.num_threads); };
  steps.objective = [](const ContinuousParams&, const ContinuousStats& s) { return s.stats.marginal_loglik; };
  steps.m_step = [&](const ContinuousParams& p, const ContinuousStats& s) {
    return m_step_unchecked(p, props, s, options.m_step_iters, options.num_threads);
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
