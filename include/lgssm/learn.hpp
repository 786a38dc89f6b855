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
