// The M-step, the unconstrained parameterization and the Fisher-identity
// gradient (learn.hpp), and the check of parameter properties (props.hpp).
#include "lgssm/learn.hpp"

#include <Eigen/Cholesky>
#include <cmath>

#include "lgssm/error.hpp"
#include "unchecked.hpp"
#include "unconstrained.hpp"

namespace lgssm {

using internal::check_structure;
using internal::factor_pd;
using internal::stacked;
using internal::throw_invalid;

Matrix project(const Matrix& cov, CovStructure s) {
  if (s == CovStructure::kFull) return 0.5 * (cov + cov.transpose());
  if (s == CovStructure::kDiagonal) return Matrix(cov.diagonal().asDiagonal());
  return Matrix::Identity(cov.rows(), cov.cols()) * cov.diagonal().mean();
}

Matrix internal::solve_free(const RegressionStats& s, Matrix w, const std::vector<Eigen::Index>& free) {
  if (free.empty()) return w;
  const Matrix g = s.moment(w);
  w(Eigen::all, free) += Eigen::LDLT<Matrix>(s.xx(free, free)).solve(g(Eigen::all, free).transpose()).transpose();
  return w;
}

std::vector<Eigen::Index> internal::free_columns(const ParamProps::Conditional& props, Eigen::Index n, Eigen::Index m) {
  std::vector<Eigen::Index> free;
  auto add = [&](bool trainable, Eigen::Index from, Eigen::Index count) {
    for (Eigen::Index j = from; trainable && j < from + count; ++j) free.push_back(j);
  };
  add(props.weights, 0, n);
  add(props.input_weights, n, m);
  add(props.bias, n + m, 1);
  return free;
}

RegressionStats internal::with_prior(const RegressionStats& s, const MniwPrior* p) {
  if (p == nullptr) return s;
  RegressionStats a = s;
  const Matrix diff = p->loc - s.w0;
  const Matrix dk = diff * p->col_precision;
  a.xx += p->col_precision;
  a.rx += dk;
  a.rr += dk * diff.transpose() + p->scale;
  a.count += p->df + static_cast<double>(p->loc.rows() + p->loc.cols()) + 1.0;
  return a;
}

RegressionStats internal::initial_with_prior(const SufficientStats& s, const ConjugatePrior* prior) {
  if (prior == nullptr) return s.initial;
  const NiwPrior& p = prior->initial;
  const MniwPrior as_mniw{p.loc, Matrix::Constant(1, 1, p.mean_concentration), p.df, p.scale};
  return with_prior(s.initial, &as_mniw);
}

bool internal::any_trainable(const ParamProps::Conditional& c) {
  return c.weights || c.bias || c.input_weights || c.cov;
}

const RegressionStats& internal::pooled_dynamics(const SufficientStats& s) {
  if (s.dynamics.size() != 1)
    throw_invalid("stats.dynamics", "one pooled group (discrete time)", std::to_string(s.dynamics.size()) + " groups");
  return s.dynamics[0];
}

namespace {

using internal::any_trainable;
using internal::initial_with_prior;
using internal::pooled_dynamics;
using internal::solve_free;
using internal::with_prior;

// Conditional M-step of one regression entry (see m_step in learn.hpp).
void regression_m_step(const RegressionStats& s, LinearGaussianParams& c, Eigen::Index entry,
                       const ParamProps::Conditional& props) {
  if (s.count <= 0.0) return;
  const Eigen::Index n = c.weights.cols(), m = c.input_weights.cols();
  Matrix w = stacked(c, entry);
  const std::vector<Eigen::Index> free = internal::free_columns(props, n, m);
  if (!free.empty()) {
    w = solve_free(s, w, free);
    c.weights[entry] = w.leftCols(n);
    c.input_weights[entry] = w.middleCols(n, m);
    c.bias[entry] = w.col(n + m);
  }
  if (props.cov) c.cov[entry] = project(s.scatter(w) / s.count, props.cov_structure);
}

// Gradient of sum E[log N(out | W x, cov)] w.r.t. W and cov.
void regression_gradient(const RegressionStats& s, const LinearGaussianParams& c, const std::string& prefix,
                         LinearGaussianParams& grad) {
  const Eigen::Index n = c.weights.cols(), m = c.input_weights.cols();
  const Matrix w = stacked(c, 0);
  const auto llt = factor_pd(prefix + ".cov", c.cov[0]);
  const Matrix grad_w = llt.solve(s.moment(w));
  grad.weights[0] = grad_w.leftCols(n);
  grad.input_weights[0] = grad_w.middleCols(n, m);
  grad.bias[0] = grad_w.col(n + m);
  const Matrix inner = s.scatter(w) - s.count * Matrix(c.cov[0]);
  const Matrix half = llt.solve(inner);
  grad.cov[0] = 0.5 * llt.solve(half.transpose());
}

}  // namespace

void validate(const Params& params, const ParamProps& props) {
  validate(params);
  check_structure("initial.cov", params.initial.cov, props.initial.cov_structure);
  for (Eigen::Index i = 0; i < params.dynamics.cov.size(); ++i)
    check_structure("dynamics.cov", params.dynamics.cov[i], props.dynamics.cov_structure);
  for (Eigen::Index i = 0; i < params.emissions.cov.size(); ++i)
    check_structure("emissions.cov", params.emissions.cov[i], props.emissions.cov_structure);
  const auto& d = params.dynamics;
  const auto& pd = props.dynamics;
  const std::pair<const char*, bool> dyn[] = {
      {"dynamics.weights", pd.weights && d.weights.size() > 1},
      {"dynamics.bias", pd.bias && d.bias.size() > 1},
      {"dynamics.input_weights", pd.input_weights && d.input_weights.size() > 1},
      {"dynamics.cov", pd.cov && d.cov.size() > 1}};
  for (const auto& [name, bad] : dyn)
    if (bad) throw_invalid(name, "a time-invariant value when trainable (or freeze it)", "a per-step series");
  const auto& e = params.emissions;
  const Eigen::Index k = e.weights.size();
  if (e.bias.size() != k || e.input_weights.size() != k || e.cov.size() != k)
    throw_invalid("emissions", "weights, bias, input_weights and cov all time-invariant or all with one entry per step",
                  "entries " + std::to_string(k) + ", " + std::to_string(e.bias.size()) + ", " +
                      std::to_string(e.input_weights.size()) + ", " + std::to_string(e.cov.size()));
}

Params m_step(const Params& params, const ParamProps& props, const SufficientStats& stats,
              const ConjugatePrior* prior) {
  if (prior) validate(params, *prior);
  Params out = params;
  const RegressionStats init = initial_with_prior(stats, prior);
  if (init.count > 0) {
    const Matrix m = solve_free(init, params.initial.mean,
                                props.initial.mean ? std::vector<Eigen::Index>{0} : std::vector<Eigen::Index>{});
    out.initial.mean = m;
    if (props.initial.cov) out.initial.cov = project(init.scatter(m) / init.count, props.initial.cov_structure);
  }
  if (any_trainable(props.dynamics))
    regression_m_step(with_prior(pooled_dynamics(stats), prior ? &prior->dynamics : nullptr), out.dynamics, 0,
                      props.dynamics);
  const Eigen::Index entries = std::min<Eigen::Index>(out.emissions.weights.size(), stats.emissions.size());
  for (Eigen::Index t = 0; t < entries; ++t)
    regression_m_step(with_prior(stats.emissions[t], prior ? &prior->emissions : nullptr), out.emissions, t,
                      props.emissions);
  return out;
}

Vector to_unconstrained(const Params& params, const ParamProps& props) {
  Params p = params;
  return internal::pack(internal::trainable_slots(p, props));
}

Params from_unconstrained(const Vector& x, const Params& base, const ParamProps& props) {
  Params p = base;
  auto slots = internal::trainable_slots(p, props);
  internal::unpack(x, slots);
  return p;
}

Vector log_prob_gradient(const Params& params, const ParamProps& props, const SufficientStats& stats,
                         const ConjugatePrior* prior) {
  if (prior) validate(params, *prior);
  if (any_trainable(props.emissions) && stats.emissions.size() != 1)
    throw_invalid("stats", "emission statistics pooled over time (gradients need time-invariant parameters)",
                  std::to_string(stats.emissions.size()) + " per-step entries");
  // Gradient with respect to the natural parameters, in a Params-shaped container.
  // Only the groups with a trainable member are differentiated.
  Params g = params;
  if (props.initial.mean || props.initial.cov) {
    const RegressionStats init = initial_with_prior(stats, prior);
    const auto llt0 = factor_pd("initial.cov", params.initial.cov);
    const Matrix& m0 = params.initial.mean;
    g.initial.mean = llt0.solve(init.moment(m0));
    const Matrix half = llt0.solve(init.scatter(m0) - init.count * params.initial.cov);
    g.initial.cov = 0.5 * llt0.solve(half.transpose());
  }
  if (any_trainable(props.dynamics))
    regression_gradient(with_prior(pooled_dynamics(stats), prior ? &prior->dynamics : nullptr), params.dynamics,
                        "dynamics", g.dynamics);
  if (any_trainable(props.emissions))
    regression_gradient(with_prior(stats.emissions[0], prior ? &prior->emissions : nullptr), params.emissions,
                        "emissions", g.emissions);

  // Chain rule to the unconstrained coordinates.
  Params p = params;
  return internal::chain(internal::trainable_slots(p, props), internal::trainable_slots(g, props));
}

}  // namespace lgssm
