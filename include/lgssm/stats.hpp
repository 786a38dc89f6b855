/// @file
/// Expected sufficient statistics of an LG-SSM: the E-step of EM, and (by
/// Fisher's identity) everything the exact gradient of log p(y) needs.
///
/// All three conditionals are linear regressions on an augmented regressor:
///   initial:   out = z_0,  x = [1]
///   dynamics:  out = z_t,  x = [z_{t-1}; u_t; 1]   (t = 1..T-1)
///   emissions: out = y_t,  x = [z_t;     u_t; 1]   (t = 0..T-1)
/// with weights W = [weights, input_weights, bias] (the initial mean for the
/// first). The statistics are sums under p(z, y_missing | y_observed) of
/// E[x x^T], and of E[r x^T] and E[r r^T] for the residual r = out - W0 x
/// about the weights W0 the E-step ran at. Residuals, not raw moments: the
/// scatter about weights W = W0 + Delta is
///   sum E[(out - W x)(out - W x)^T] = rr - Delta rx^T - rx Delta^T + Delta xx Delta^T,
/// which at and near W0 is rr itself, where the raw form
/// yy - W yx^T - yx W^T + W xx W^T subtracts moments of the data's size to
/// leave one of the noise's (tiny R: all digits lost). Each step's terms are
/// E[r] E[r]^T plus the posterior covariance of r, a sum of PSD products for
/// the emissions (H P H^T).
///
/// Missing emission components are latent variables (their conditional law
/// given z_t and the observed part of y_t under the current parameters), which
/// keeps the E-step exact and the M-step closed form under missing data
/// (Shumway & Stoffer 2000, Sec. 6.4). In residual form the missing part is
/// r_m = K r_o + e, K = R_mo R_oo^{-1}, e ~ N(0, R_mm - K R_om).
///
/// Statistics are summable: the statistics of a batch are the sums of the
/// per-sequence statistics, so EM over many sequences (or many machines) is
/// per-sequence E-steps, summed, then one M-step. Statistics about different
/// references are added after re-expressing one about the other's (exact).
#pragma once

#include <vector>

#include "lgssm/inference.hpp"
#include "lgssm/params.hpp"

namespace lgssm {

/// Sums for one regression out = W x + noise, about reference weights w0.
/// When the parameters vary per step (frozen per-step weights pooled into one
/// entry), each term's residual is about its own step's weights and w0 holds
/// entry 0's: the sums stay exact for any W that differs from the E-step's
/// weights by the same Delta at every step, which is what the M-step and the
/// gradient evaluate (the per-step parts are frozen).
struct RegressionStats {
  Matrix w0;           ///< (d, k): reference weights, k = regressor dim (state_dim + input_dim + 1, or 1)
  Matrix xx;           ///< (k, k): sum E[x x^T]
  Matrix rx;           ///< (d, k): sum E[r x^T], r = out - w0 x
  Matrix rr;           ///< (d, d): sum E[r r^T]
  double count = 0.0;  ///< number of terms summed
  /// (d, d), or empty: sum cov^{-1} (E[r r^T] - cov) cov^{-1} at the E-step's
  /// parameters (weights w0, noise covariance cov_score_at), computed without
  /// forming that difference (for the dynamics of a known initial state,
  /// sum_t (r_t r_t^T - N_t) from the smoother's backward recursion; Koopman
  /// & Shephard 1992). Half of it is the exact gradient of log p(y) w.r.t.
  /// cov there, which the difference rr - count cov loses when cov is tiny
  /// against the state's variance (every digit, at a variance 1e-10 of it).
  /// Empty where not computed, and in a sum of statistics of which one has
  /// none or another cov_score_at.
  Matrix cov_score;
  Matrix cov_score_at;  ///< (d, d), or empty: the noise covariance at which cov_score holds

  RegressionStats() = default;
  /// No terms yet, about `w0`.
  explicit RegressionStats(Matrix w0);
  /// sum E[(out - W x) x^T] = rx - (W - w0) xx: zero at the least-squares W.
  Matrix moment(const Matrix& w) const;
  /// sum E[(out - W x)(out - W x)^T], exactly symmetric.
  Matrix scatter(const Matrix& w) const;
  /// Adds `other` (re-expressed about this reference when it differs). A
  /// statistic with no terms takes the other's reference.
  RegressionStats& operator+=(const RegressionStats& other);
};

struct SufficientStats {
  /// The initial state: out = z_0 on x = [1], about the initial mean; its
  /// count is the number of sequences.
  RegressionStats initial;
  /// One entry (pooled over time) for discrete-time models; continuous-time
  /// models keep one entry per distinct step length (transitions grouped).
  std::vector<RegressionStats> dynamics;
  /// One entry (pooled over time), or one per time step when the emission
  /// parameters are learned per step (entry t sums step t over sequences).
  std::vector<RegressionStats> emissions;
  double marginal_loglik = 0.0;  ///< sum of log p(y) over the sequences

  SufficientStats() = default;
  double num_sequences() const { return initial.count; }
  /// Adds `other`; dynamics groups and per-step emission entries are added
  /// index by index (the shorter list is extended).
  SufficientStats& operator+=(const SufficientStats& other);
};

/// The E-step for one sequence: smoother, then expected statistics under the
/// posterior. With `per_step_emissions` the emission statistics are kept per
/// time step (num_timesteps entries) instead of pooled.
SufficientStats sufficient_stats(const Params& params, const Sequence& seq, bool per_step_emissions = false);

/// The E-step over many sequences (in parallel), summed in sequence order.
SufficientStats sufficient_stats(const Params& params, const std::vector<Sequence>& seqs,
                                 bool per_step_emissions = false, int num_threads = 0);

/// The statistics of a sequence whose states z_{0:T-1} are known (`states`,
/// (num_timesteps, state_dim)): the sums above with point-mass states, i.e.
/// the complete-data sufficient statistics of the regressions; NaN emission
/// components are integrated out given z_t and the observed components. The
/// conditional p(params | z, y) of a conjugate prior depends on the data only
/// through them (Murphy 2012, Sec. 4.6.3 and 7.6); the Gibbs sampler
/// (gibbs.hpp) uses them.
SufficientStats complete_data_stats(const Params& params, const Sequence& seq, const RowMatrix& states,
                                    bool per_step_emissions = false);

}  // namespace lgssm
