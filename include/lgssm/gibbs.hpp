/// @file
/// Bayesian inference of the parameters by blocked Gibbs sampling: the states
/// by the simulation smoother, missing emissions by data augmentation, then
/// the parameters from their exact conjugate conditionals under the priors of
/// prior.hpp (the same posterior the MAP M-step of learn.hpp maximizes).
///
/// The conditional of one regression out = W x + noise, noise ~ N(0, Sigma)
/// (the initial state, the dynamics, the emissions; stats.hpp), given the
/// states, the completed emissions and the frozen columns of W: with the
/// prior's pseudo-observations added to the complete-data statistics
/// (K_n = xx + K, count_n = N + df + d + k + 1; with_prior in learn.cpp) and
/// F the f free columns of W,
///   W*      = the least-squares W given the frozen columns (the MAP M-step's),
///   A       = scatter(W*) = Psi + the residual scatter at W* + (W* - M) K (W* - M)^T,
///   Sigma   ~ IW(count_n - f - d - 1, A)                          (full),
///   sigma_i^2 ~ IG((count_n - f) / 2 - 1, A_ii / 2)               (diagonal),
///   s       ~ IG(d (count_n - f) / 2 - 1, tr(A) / 2), Sigma = s I (scalar),
///   W_F | Sigma ~ MN(W*_F, Sigma, ((K_n)_FF)^{-1}),
/// the frozen Sigma taken as it is when the covariance is frozen (Gelman et
/// al. 2013, Sec. 14.8 and 18.1; Murphy 2012, Sec. 7.6.3). All free columns
/// give the joint MNIW draw (dynamax's); no frozen column and a frozen
/// covariance give the matrix normal alone; a frozen W gives the inverse
/// Wishart of the residual scatter with df + k + N degrees of freedom.
///
/// Structured covariances: the MAP M-step projects scatter / count onto the
/// structure, which is the maximizer of the MNIW density restricted to
/// diagonal (or scalar) covariances; the prior of a structured covariance is
/// therefore that restriction,
///   p(W, sigma^2) propto prod_i (sigma_i^2)^{-(df + d + 1 + k) / 2}
///                  exp(-(Psi_ii + (W_i - M_i) K (W_i - M_i)^T) / (2 sigma_i^2)),
/// i.e. sigma_i^2 ~ IG((df + d - 1) / 2, Psi_ii / 2) and W_i | sigma_i^2 ~
/// N(M_i, sigma_i^2 K^{-1}) independently over rows (scalar: one s shared by
/// all rows, s ~ IG(d (df + d + 1) / 2 - 1, tr(Psi) / 2)), whose conditionals
/// are the inverse-gamma ones above: MAP and Gibbs share one posterior. A
/// frozen bias (a model without one) is a frozen column of this prior, so the
/// covariance's degrees of freedom count it (dynamax's prior drops the column
/// instead: one degree of freedom less).
#pragma once

#include <cstdint>
#include <vector>

#include "lgssm/fit.hpp"
#include "lgssm/params.hpp"
#include "lgssm/prior.hpp"
#include "lgssm/props.hpp"
#include "lgssm/stats.hpp"

namespace lgssm {

/// One draw of the trainable parameters from p(params | z, y) (the
/// conditionals of the file comment), given complete-data statistics `stats`
/// (complete_data_stats, summed over sequences; no terms: a draw from the
/// prior conditional on the frozen parameters), the frozen ones kept from
/// `params`. Deterministic given `seed`.
/// @param params the current parameters (frozen ones are kept, the free
///        columns' least-squares solution is about them)
/// @param props which parameters are drawn, and the covariances' structures
/// @param stats complete-data statistics, emissions pooled or per step as `params`
/// @param prior the conjugate prior
/// @param seed the seed of the generator
/// @return the parameters with the trainable ones drawn
/// @note See Gelman et al. (2013), Sec. 14.8 and 18.1; Murphy (2012), Sec. 7.6.3.
Params conjugate_sample(const Params& params, const ParamProps& props, const SufficientStats& stats,
                        const ConjugatePrior& prior, std::uint64_t seed);

/// Options of fit_blocked_gibbs (checked by validate()).
struct GibbsOptions {
  int num_threads = 0;  ///< threads over the sequences, >= 0; 0 = all hardware threads
  /// Optional: called after sweep i (i = 0 .. sample_size - 2) with log p(y)
  /// at the parameters entering it; false stops the sampler (Termination::kStopped).
  FitCallback callback;
  /// Throws lgssm::invalid_argument naming the first field out of its range.
  void validate() const;
};

/// The chain of a blocked Gibbs run.
struct GibbsResult {
  /// samples[0] is the initial parameters and samples[i] the parameters after
  /// sweep i, as dynamax's fit_blocked_gibbs returns them: sample_size entries
  /// (fewer when the callback stopped the run).
  std::vector<Params> samples;
  /// log p(y | samples[i]) for each sweep's entering parameters (from the
  /// smoother the sweep runs anyway): one entry per sweep.
  std::vector<double> marginal_loglik;
  FitSummary summary;
};

/// The blocked Gibbs sampler of p(params, z | y) (Carter & Kohn 1994;
/// Fruhwirth-Schnatter 1994): each sweep draws z ~ p(z | y, params) for every
/// sequence by the simulation smoother (Durbin & Koopman 2002), the missing
/// emission components from p(y_m | z, y_o, params) (data augmentation,
/// Tanner & Wong 1987: their law given z_t and the observed components of
/// step t), then the trainable parameters from p(params | z, y) (conjugate_sample
/// on the complete-data statistics summed over the sequences). The sequences
/// may have different lengths; per-step (time-varying) emission parameters
/// are drawn per step. Deterministic given `seed` whatever the thread count:
/// each sweep draws one seed per sequence from the chain's generator.
/// @param initial_params the starting parameters (validated with `props`)
/// @param props which parameters are sampled (the others stay exactly fixed), and the covariances' structures
/// @param seqs the sequences (at least one)
/// @param prior the conjugate prior
/// @param sample_size the number of samples, >= 1, the initial parameters included
/// @param seed the seed of the chain
/// @param options see GibbsOptions
/// @return the samples, log p(y) per sweep, and a summary
/// @note See Carter & Kohn (1994), Biometrika 81(3); Durbin & Koopman (2002), Biometrika 89(3).
GibbsResult fit_blocked_gibbs(const Params& initial_params, const ParamProps& props, const std::vector<Sequence>& seqs,
                              const ConjugatePrior& prior, int sample_size, std::uint64_t seed,
                              const GibbsOptions& options = {});

}  // namespace lgssm
