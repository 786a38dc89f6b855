// Conjugate priors (prior.hpp): dynamax's defaults, the checks, and the log density.
#include "lgssm/prior.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

#include "lgssm/error.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"

namespace lgssm {

using internal::kLog2Pi;
using internal::kLogPi;
using internal::stacked;
using internal::throw_invalid;

namespace {

double log_multigamma(double a, Eigen::Index d) {
  double out = 0.25 * static_cast<double>(d * (d - 1)) * kLogPi;
  for (Eigen::Index j = 1; j <= d; ++j) out += std::lgamma(a + 0.5 * static_cast<double>(1 - j));
  return out;
}

double log_det(const Eigen::LLT<Matrix>& llt) { return 2.0 * llt.matrixLLT().diagonal().array().log().sum(); }

// log IW(cov | df, scale) + log MN(w | loc, cov, col_cov) with the matrix
// normal's rows correlated by cov; a vector mean is the one-column case with
// col_precision = mean_concentration.
double log_niw_mniw(const Matrix& cov, const Matrix& w, const Matrix& loc, const Matrix& col_precision, double df,
                    const Matrix& scale) {
  const double d = static_cast<double>(cov.rows()), k = static_cast<double>(w.cols());
  const Eigen::LLT<Matrix> lc(cov), ls(scale), lk(col_precision);
  const Matrix diff = w - loc;
  const double log_iw = 0.5 * df * log_det(ls) - 0.5 * df * d * std::log(2.0) - log_multigamma(0.5 * df, cov.rows()) -
                        0.5 * (df + d + 1.0) * log_det(lc) - 0.5 * lc.solve(scale).trace();
  const double log_mn = -0.5 * d * k * kLog2Pi - 0.5 * k * log_det(lc) + 0.5 * d * log_det(lk) -
                        0.5 * lc.solve(diff * col_precision * diff.transpose()).trace();
  return log_iw + log_mn;
}

}  // namespace

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
  if (i.loc.size() != n)
    throw_invalid("prior.initial.loc", "shape " + internal::shape_str(n), internal::shape_str(i.loc.size()));
  if (!(i.mean_concentration > 0))
    throw_invalid("prior.initial.mean_concentration", "> 0", std::to_string(i.mean_concentration));
  check_df("prior.initial.df", i.df, n);
  check_pd("prior.initial.scale", i.scale, n);
  const std::pair<std::string, const MniwPrior*> groups[] = {{"prior.dynamics", &prior.dynamics},
                                                             {"prior.emissions", &prior.emissions}};
  for (const auto& [name, g] : groups) {
    const Eigen::Index d = name == "prior.dynamics" ? n : p;
    if (g->loc.rows() != d || g->loc.cols() != k)
      throw_invalid(name + ".loc", "shape " + internal::shape_str(d, k),
                    internal::shape_str(g->loc.rows(), g->loc.cols()));
    check_pd(name + ".col_precision", g->col_precision, k);
    check_df(name + ".df", g->df, d);
    check_pd(name + ".scale", g->scale, d);
  }
}

double log_prior(const Params& params, const ConjugatePrior& prior) {
  validate(params, prior);
  const NiwPrior& i = prior.initial;
  double lp = log_niw_mniw(params.initial.cov, params.initial.mean, i.loc, Matrix::Constant(1, 1, i.mean_concentration),
                           i.df, i.scale);
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

}  // namespace lgssm
