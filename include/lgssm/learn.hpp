/// @file
/// The learning pieces every fit is made of: the M-step, the map between the
/// trainable parameters and one unconstrained vector, and the exact gradient
/// of log p(y) by Fisher's identity.
#pragma once

#include "lgssm/params.hpp"
#include "lgssm/prior.hpp"
#include "lgssm/props.hpp"
#include "lgssm/stats.hpp"

namespace lgssm {

/// The M-step: the parameters maximizing E[log p(z, y)] given the summed
/// statistics, over the trainable parameters with the frozen ones held fixed.
/// Each conditional is a linear regression (Shumway & Stoffer 2017, Property
/// 6.4; the seed document's M-step for per-step emissions): the free blocks of
/// W = [weights, input_weights, bias] solve the normal equations given the
/// frozen blocks (a correction to the current W that zeroes the moment
/// sum E[(out - W x) x^T] on them), then cov = E[(out - W x)(out - W x)^T] /
/// count from the residual statistics (stats.hpp), projected
/// onto its structure (diagonal part, or mean of the diagonal times I).
/// With a prior: the MAP M-step (maximizing E[log p(z, y)] + log p(params)).
/// @param params the parameters of the E-step (frozen parameters are kept from them)
/// @param props which parameters are fitted, and the covariances' structures
/// @param stats the summed statistics of the E-step at `params`
/// @param prior the conjugate prior for MAP, or null
/// @return the maximizing parameters
/// @note See Property 6.4 of Shumway & Stoffer (2017).
Params m_step(const Params& params, const ParamProps& props, const SufficientStats& stats,
              const ConjugatePrior* prior = nullptr);

/// The trainable parameters as one unconstrained vector: free entries of
/// means, weights, biases and input weights as they are (row-major);
/// covariances through their Cholesky factor L (log of the diagonal, then the
/// strictly lower entries column by column), diagonal ones as log standard
/// deviations, scalar ones as one log standard deviation.
Vector to_unconstrained(const Params& params, const ParamProps& props);
/// The inverse of to_unconstrained; frozen parameters are taken from `base`.
Params from_unconstrained(const Vector& x, const Params& base, const ParamProps& props);

/// d log p(y) / d x (x = to_unconstrained(params)) from the statistics of an
/// E-step at `params`, by Fisher's identity: the gradient of log p(y) equals the
/// expected gradient of log p(z, y) under p(z | y) (Cappe, Moulines & Ryden
/// 2005, Prop. 10.1.6), and that is linear in the statistics.
/// With a prior, the gradient of log p(y) + log p(params).
Vector log_prob_gradient(const Params& params, const ParamProps& props, const SufficientStats& stats,
                         const ConjugatePrior* prior = nullptr);

/// The gradient of log p(y) (plus log p(params) with a prior) with respect to
/// every natural parameter, whatever the properties say, in a Params-shaped
/// container (grad_initial.mean in .initial.mean and so on), from the
/// statistics `stats` of an E-step at `params`. By Fisher's identity
/// (Cappe, Moulines & Ryden 2005, Prop. 10.1.6),
///   d log p(y) / d theta = E[d log p(z, y) / d theta | y],
/// and each conditional is a regression out = W x + noise, noise ~ N(0, S)
/// (stats.hpp), so with M = sum E[(out - W x) x^T] (RegressionStats::moment),
/// C = sum E[(out - W x)(out - W x)^T] (scatter) and c the count:
///   grad_W = S^{-1} M,   grad_S = S^{-1} (C - c S) S^{-1} / 2,
/// split into weights, input_weights and bias (the initial mean: W = mean,
/// x = 1). grad_S is the gradient over the entries of S taken as independent
/// and is symmetric (exactly: symmetrized): for a perturbation dS,
/// d log p(y) = tr(grad_S dS). A prior adds its pseudo-observations to the
/// statistics (prior.hpp), which adds its gradient. Needs time-invariant
/// parameters, pooled statistics (per_step_emissions false) and positive
/// definite covariances (throws lgssm::invalid_argument naming the one that
/// is not).
Params log_prob_natural_gradient(const Params& params, const SufficientStats& stats,
                                 const ConjugatePrior* prior = nullptr);

/// The gradient of log_prior(params, prior) (prior.hpp) with respect to every
/// natural parameter, Params-shaped: for each (W, S) ~ MNIW(M, K, nu, Psi)
/// (a NIW: W = mean, K = mean_concentration),
///   grad_W = -S^{-1} (W - M) K,
///   grad_S = S^{-1} (Psi + (W - M) K (W - M)^T - (nu + d + k + 1) S) S^{-1} / 2,
/// which is log_prob_natural_gradient with no data (the prior's
/// pseudo-observations alone). Time-invariant parameters only.
Params log_prior_gradient(const Params& params, const ConjugatePrior& prior);

/// The gradient of log p(y) with respect to the data of one sequence.
struct DataGradient {
  RowMatrix emissions;  ///< (num_timesteps, emission_dim): d log p(y) / d y_t; zero at missing entries
  RowMatrix inputs;     ///< (num_timesteps, input_dim): d log p(y) / d u_t
};

/// d log p(y) / d y_t and d log p(y) / d u_t by Fisher's identity (Cappe,
/// Moulines & Ryden 2005, Prop. 10.1.6): the expected gradient of
/// log p(z, y) under p(z | y), linear in the smoothed means m_t = E[z_t | y].
/// With o the observed components of y_t and e_t = y_t - H_t m_t - D_t u_t - d_t,
///   d/dy_t[o] = -R_oo^{-1} e_t[o],  d/dy_t[missing] = 0,
///   d/du_t = D_t[o]^T R_oo^{-1} e_t[o] + B_t^T Q_t^{-1} (m_t - F_t m_{t-1} - B_t u_t - b_t)  (t >= 1),
/// (the dynamics entry of the transition into step t, params.hpp). R_oo must
/// be positive definite, and Q too when the model has inputs.
DataGradient log_prob_data_gradient(const Params& params, const Sequence& seq);

/// log |det J| of the map from the unconstrained vector x to the trainable
/// parameters (to_unconstrained's inverse), as a density over the free entries
/// (vech of a full covariance): the term that turns a density over the
/// parameters into one over x. Entries other than covariances map as they are
/// (J = 1). A full covariance S = L L^T with x_i = log L_ii (i = 0..n-1) and
/// the strictly lower entries of L: |d vech S / d vech L| = 2^n prod_i L_ii^(n-i)
/// (Muirhead 1982, Theorem 2.1.9, 0-based i), times prod_i L_ii for the log
/// of the diagonal, so
///   log |det J| = n log 2 + sum_i (n - i + 1) x_i,
/// linear in x. Diagonal (S_ii = exp(2 x_i)): sum_i (log 2 + 2 x_i); scalar
/// (S = exp(2 x) I, one variance): log 2 + 2 x. `grad` receives d/dx.
double log_det_jacobian(const Vector& x, const Params& base, const ParamProps& props, Vector& grad);

/// The log posterior density over the unconstrained vector x, for samplers
/// such as HMC/NUTS, with its gradient `grad`:
///   log p(y | params) + log p(params) + log |det J|,  params = from_unconstrained(x, base, props),
/// summed over the sequences (log p(params) only with a prior; J as in
/// log_det_jacobian). The gradient is log_prob_gradient's (Fisher's identity)
/// plus log_det_jacobian's. Returns -inf (grad zero) where the parameters are
/// not valid (a covariance that is not positive definite in floating point)
/// or the density is not finite.
double log_posterior_unconstrained(const Vector& x, const Params& base, const ParamProps& props,
                                   const std::vector<Sequence>& seqs, const ConjugatePrior* prior, Vector& grad,
                                   int num_threads = 0);

/// dynamax's minibatch loss and its gradient over x = to_unconstrained(params),
/// from the statistics `stats` of the minibatch's sequences at `params`:
///   f = -(batch_weight * log p(y_batch) + log p(params)) / scale,
/// with batch_weight = num_sequences / batch size and scale = the number of
/// emission entries of all sequences (the prior term only with a prior). The
/// gradient is log_prob_gradient's (Fisher's identity). Returns +inf (grad
/// then unspecified) when f or the gradient is not finite.
double minibatch_loss(const Params& params, const ParamProps& props, const SufficientStats& stats, double batch_weight,
                      double scale, const ConjugatePrior* prior, Vector& grad);

}  // namespace lgssm
