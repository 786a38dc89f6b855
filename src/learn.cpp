// M-step, unconstrained parameterization and the Fisher-identity gradient.
#include <Eigen/Cholesky>
#include <cmath>

#include "lgssm/error.hpp"
#include "lgssm/learn.hpp"
#include "internal.hpp"
#include "slots.hpp"

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

namespace {

// w with its columns `free` set to the least-squares solution given the
// others: moment(w) = 0 on those columns.
Matrix solve_free(const RegressionStats& s, Matrix w, const std::vector<Eigen::Index>& free) {
  if (free.empty()) return w;
  const Matrix g = s.moment(w);
  w(Eigen::all, free) += Eigen::LDLT<Matrix>(s.xx(free, free)).solve(g(Eigen::all, free).transpose()).transpose();
  return w;
}

// Conditional M-step of one regression entry (see m_step in learn.hpp).
void regression_m_step(const RegressionStats& s, LinearGaussianParams& c, Eigen::Index entry,
                       const ParamProps::Conditional& props) {
  if (s.count <= 0.0) return;
  const Eigen::Index n = c.weights.cols(), m = c.input_weights.cols();
  Matrix w = stacked(c, entry);
  std::vector<Eigen::Index> free, fixed;
  auto sort = [&](bool trainable, Eigen::Index from, Eigen::Index count) {
    for (Eigen::Index j = from; j < from + count; ++j) (trainable ? free : fixed).push_back(j);
  };
  sort(props.weights, 0, n);
  sort(props.input_weights, n, m);
  sort(props.bias, n + m, 1);
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
                         LinearGaussianParams& g) {
  const Eigen::Index n = c.weights.cols(), m = c.input_weights.cols();
  const Matrix w = stacked(c, 0);
  const auto llt = factor_pd(prefix + ".cov", c.cov[0]);
  const Matrix gw = llt.solve(s.moment(w));
  g.weights[0] = gw.leftCols(n);
  g.input_weights[0] = gw.middleCols(n, m);
  g.bias[0] = gw.col(n + m);
  const Matrix inner = s.scatter(w) - s.count * Matrix(c.cov[0]);
  const Matrix half = llt.solve(inner);
  g.cov[0] = 0.5 * llt.solve(half.transpose());
}

// Regression statistics plus the MNIW prior's pseudo-observations.
RegressionStats with_prior(const RegressionStats& s, const MniwPrior* p) {
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

// The initial-state statistics plus the NIW prior's pseudo-observations: the
// one-column case of the MNIW prior (col_precision = mean_concentration;
// df + state_dim + 2 pseudo-terms for the cov).
RegressionStats initial_with_prior(const SufficientStats& s, const ConjugatePrior* prior) {
  if (prior == nullptr) return s.initial;
  const NiwPrior& p = prior->initial;
  const MniwPrior as_mniw{p.loc, Matrix::Constant(1, 1, p.mean_concentration), p.df, p.scale};
  return with_prior(s.initial, &as_mniw);
}

double log_multigamma(double a, Eigen::Index d) {
  double out = 0.25 * static_cast<double>(d * (d - 1)) * std::log(M_PI);
  for (Eigen::Index j = 1; j <= d; ++j) out += std::lgamma(a + 0.5 * static_cast<double>(1 - j));
  return out;
}

double log_det(const Eigen::LLT<Matrix>& llt) { return 2.0 * llt.matrixLLT().diagonal().array().log().sum(); }

// log IW(cov | df, scale) + log MN(w | loc, cov, col_cov) with the matrix
// normal's rows correlated by cov; a vector mean is the one-column case with
// col_precision = mean_concentration.
double log_niw_mniw(const Matrix& cov, const Matrix& w, const Matrix& loc, const Matrix& col_precision,
                    double df, const Matrix& scale) {
  const double d = static_cast<double>(cov.rows()), k = static_cast<double>(w.cols());
  const Eigen::LLT<Matrix> lc(cov), ls(scale), lk(col_precision);
  const Matrix diff = w - loc;
  const double log_iw = 0.5 * df * log_det(ls) - 0.5 * df * d * std::log(2.0) - log_multigamma(0.5 * df, cov.rows()) -
                        0.5 * (df + d + 1.0) * log_det(lc) - 0.5 * lc.solve(scale).trace();
  const double log_mn = -0.5 * d * k * std::log(2.0 * M_PI) - 0.5 * k * log_det(lc) + 0.5 * d * log_det(lk) -
                        0.5 * lc.solve(diff * col_precision * diff.transpose()).trace();
  return log_iw + log_mn;
}

bool any_trainable(const ParamProps::Conditional& c) { return c.weights || c.bias || c.input_weights || c.cov; }

// The dynamics statistics of a discrete-time model (one pooled group).
const RegressionStats& pooled_dynamics(const SufficientStats& s) {
  if (s.dynamics.size() != 1)
    throw_invalid("stats.dynamics", "one pooled group (discrete time)", std::to_string(s.dynamics.size()) + " groups");
  return s.dynamics[0];
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
    const Matrix m = solve_free(init, params.initial.mean, props.initial.mean ? std::vector<Eigen::Index>{0}
                                                                              : std::vector<Eigen::Index>{});
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

ConjugatePrior ConjugatePrior::defaults(Eigen::Index state_dim, Eigen::Index emission_dim, Eigen::Index input_dim) {
  const Eigen::Index k = state_dim + input_dim + 1;
  auto mniw = [&](Eigen::Index out) {
    return MniwPrior{Matrix::Zero(out, k), Matrix::Identity(k, k), static_cast<double>(out) + 0.1,
                     Matrix::Identity(out, out)};
  };
  return {NiwPrior{Vector::Zero(state_dim), 1.0, static_cast<double>(state_dim) + 0.1,
                   Matrix::Identity(state_dim, state_dim)},
          mniw(state_dim), mniw(emission_dim)};
}

void validate(const Params& params, const ConjugatePrior& prior) {
  const Eigen::Index n = params.state_dim(), p = params.emission_dim(), k = n + params.input_dim() + 1;
  auto check_pd = [](const std::string& name, const Matrix& m, Eigen::Index dim) {
    if (m.rows() != dim || m.cols() != dim)
      throw_invalid(name, "shape " + internal::shape_str(dim, dim), internal::shape_str(m.rows(), m.cols()));
    if (!m.allFinite() || (m - m.transpose()).cwiseAbs().maxCoeff() > 1e-8 * std::max(1.0, m.cwiseAbs().maxCoeff()) ||
        Eigen::LLT<Matrix>(m).info() != Eigen::Success)
      throw_invalid(name, "a symmetric positive definite matrix", "one that is not");
  };
  auto check_df = [](const std::string& name, double df, Eigen::Index dim) {
    if (!(df > static_cast<double>(dim) - 1.0))
      throw_invalid(name, "> dim - 1 = " + std::to_string(dim - 1), std::to_string(df));
  };
  const NiwPrior& i = prior.initial;
  if (i.loc.size() != n) throw_invalid("prior.initial.loc", "shape " + internal::shape_str(n), internal::shape_str(i.loc.size()));
  if (!(i.mean_concentration > 0))
    throw_invalid("prior.initial.mean_concentration", "> 0", std::to_string(i.mean_concentration));
  check_df("prior.initial.df", i.df, n);
  check_pd("prior.initial.scale", i.scale, n);
  const std::pair<std::string, const MniwPrior*> groups[] = {{"prior.dynamics", &prior.dynamics},
                                                             {"prior.emissions", &prior.emissions}};
  for (const auto& [name, g] : groups) {
    const Eigen::Index d = name == "prior.dynamics" ? n : p;
    if (g->loc.rows() != d || g->loc.cols() != k)
      throw_invalid(name + ".loc", "shape " + internal::shape_str(d, k), internal::shape_str(g->loc.rows(), g->loc.cols()));
    check_pd(name + ".col_precision", g->col_precision, k);
    check_df(name + ".df", g->df, d);
    check_pd(name + ".scale", g->scale, d);
  }
}

double log_prior(const Params& params, const ConjugatePrior& prior) {
  validate(params, prior);
  const NiwPrior& i = prior.initial;
  double lp = log_niw_mniw(params.initial.cov, params.initial.mean, i.loc,
                           Matrix::Constant(1, 1, i.mean_concentration), i.df, i.scale);
  // Per-step parameters: one prior term per entry.
  auto conditional = [&](const LinearGaussianParams& c, const MniwPrior& g) {
    const Eigen::Index entries = std::max({c.weights.size(), c.bias.size(), c.input_weights.size(), c.cov.size()});
    for (Eigen::Index t = 0; t < entries; ++t)
      lp += log_niw_mniw(c.cov.at(t), stacked(c, t), g.loc, g.col_precision, g.df, g.scale);
  };
  conditional(params.dynamics, prior.dynamics);
  conditional(params.emissions, prior.emissions);
  return lp;
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
    regression_gradient(with_prior(pooled_dynamics(stats), prior ? &prior->dynamics : nullptr), params.dynamics, "dynamics",
                        g.dynamics);
  if (any_trainable(props.emissions))
    regression_gradient(with_prior(stats.emissions[0], prior ? &prior->emissions : nullptr), params.emissions,
                        "emissions", g.emissions);

  // Chain rule to the unconstrained coordinates.
  Params p = params;
  return internal::chain(internal::trainable_slots(p, props), internal::trainable_slots(g, props));
}

}  // namespace lgssm
