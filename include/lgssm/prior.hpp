/// @file
/// Conjugate priors on the parameters, for MAP fitting.
#pragma once

#include "lgssm/params.hpp"

namespace lgssm {

/// Conjugate priors for MAP fitting, as dynamax's LinearGaussianConjugateSSM:
///   (initial.mean, initial.cov) ~ NIW(loc, mean_concentration, df, scale):
///       cov ~ IW(df, scale), mean | cov ~ N(loc, cov / mean_concentration);
///   ([weights, input_weights, bias], cov) ~ MNIW(loc, col_precision, df, scale):
///       cov ~ IW(df, scale), W | cov ~ MN(loc, cov, col_precision^{-1}),
/// for dynamics and emissions alike, W having k = state_dim + input_dim + 1
/// columns (the bias column included). Equivalently, the prior adds
/// pseudo-observations to the sufficient statistics (Murphy 2012, Sec. 4.6.3;
/// Bishop 2006, Sec. 2.3.6), which is how m_step and log_prob_gradient use it.
struct NiwPrior {
  Vector loc;                       ///< (state_dim,)
  double mean_concentration = 1.0;  ///< > 0
  double df = 0.0;                  ///< > state_dim - 1
  Matrix scale;                     ///< (state_dim, state_dim), positive definite
};
/// The matrix-normal-inverse-Wishart prior on ([weights, input_weights, bias], cov).
struct MniwPrior {
  Matrix loc;            ///< (out_dim, k)
  Matrix col_precision;  ///< (k, k), positive definite
  double df = 0.0;       ///< > out_dim - 1
  Matrix scale;          ///< (out_dim, out_dim), positive definite
};
/// The priors of all three conditionals.
struct ConjugatePrior {
  NiwPrior initial;
  MniwPrior dynamics;
  MniwPrior emissions;
  /// dynamax's defaults: loc 0, mean_concentration 1, col_precision I, scale I,
  /// df = dim + 0.1 (dim = state_dim, or emission_dim for the emissions).
  static ConjugatePrior defaults(Eigen::Index state_dim, Eigen::Index emission_dim, Eigen::Index input_dim);
};

/// Checks the prior's shapes and hyperparameters against `params`.
void validate(const Params& params, const ConjugatePrior& prior);

/// log p(params) under the prior, with all normalizing constants.
double log_prior(const Params& params, const ConjugatePrior& prior);

}  // namespace lgssm
