/// @file
/// Continuous-time models: a linear time-invariant SDE observed at discrete times,
///
///   x(t_0) ~ N(initial.mean, initial.cov),   dx = F x dt + L dW,
///   y_k ~ N(H_k x(t_k) + D_k u_k + d_k, R_k)          k = 0 .. T-1,
///
/// with F = dynamics.drift and Q_c = L L^T = dynamics.diffusion_cov. Only Q_c is
/// identifiable from data (L and L U, U orthogonal, give the same process), so
/// the model is parameterized by Q_c. Observation times are any increasing
/// times, per sequence. Between t and t + s the state moves by the Gaussian
/// transition N(A_s x, Sigma_s) (Van Loan 1978; the seed document's formula), so
/// a continuous-time model observed at given times is a discrete-time LG-SSM with
/// one transition per gap, and every discrete-time operation applies to it.
#pragma once

#include <string>
#include <vector>

#include "lgssm/fit.hpp"
#include "lgssm/params.hpp"
#include "lgssm/props.hpp"
#include "lgssm/stats.hpp"

namespace lgssm {

/// The drift F and diffusion covariance Q_c = L L^T of dx = F x dt + L dW.
struct ContinuousDynamics {
  Matrix drift;          ///< F: (state_dim, state_dim)
  Matrix diffusion_cov;  ///< Q_c = L L^T: (state_dim, state_dim), positive semidefinite
};

/// The parameters of a continuous-time model.
struct ContinuousParams {
  InitialParams initial;  ///< at the first observation time
  ContinuousDynamics dynamics;
  LinearGaussianParams emissions;  ///< constant, or one entry per observation index k
  Eigen::Index state_dim() const { return initial.mean.size(); }
};

/// Checks shapes, finiteness and definiteness; throws lgssm::invalid_argument.
void validate(const ContinuousParams& params);

/// Checks a drift of shape (state_dim, state_dim) with finite entries and a
/// diffusion covariance of the same shape, symmetric positive semidefinite
/// (shapes before anything else); the messages name them drift_name and
/// diffusion_name.
void validate_dynamics(const Matrix& drift, const Matrix& diffusion_cov, Eigen::Index state_dim,
                       const std::string& drift_name, const std::string& diffusion_name);

/// The transition over a step s: A_s = exp(F s) and its covariance Sigma_s.
struct Discretization {
  Matrix weights;  ///< A_s
  Matrix cov;      ///< Sigma_s
};

/// A_s = exp(F s) and Sigma_s = int_0^s e^{F u} Q_c e^{F^T u} du, the blocks of
/// Van Loan's exp([[F, Q_c], [0, -F^T]] s) = [[A_s, Sigma_s A_s^{-T}], [0, A_s^{-T}]]
/// (Van Loan 1978, Theorem 1; Sarkka & Solin 2019, Eq. 6.3), computed without
/// that block, whose A_s^{-T} grows like e^{|F| s} and overflows (or cancels
/// to an indefinite Sigma_s) for stiff drifts. Instead: scaling and squaring on
/// the pair (Higham 2005, Sec. 1, applied to the semigroup of (A, Sigma)):
///  - the small step tau = s / 2^k with |F tau|_1 <= 1/2, where
///    A_tau - I = sum_{j>=1} (F tau)^j / j! and
///    Sigma_tau = sum_{j>=0} tau^{j+1} L^j(Q_c) / (j+1)!, L(X) = F X + X F^T
///    (the Taylor series of the Van Loan blocks), truncated where the bound
///    (2 |F tau|)^{m+1} e^{4 |F tau|} / (m+2)! falls below half the unit roundoff;
///  - k doublings A_{2h} = A_h^2, Sigma_{2h} = A_h Sigma_h A_h^T + Sigma_h (a sum of
///    positive semidefinite terms: nothing is subtracted, Sigma stays symmetric
///    positive semidefinite). While |A_h|_1 > 1/2 they run on B_h = A_h - I
///    (B_{2h} = 2 B_h + B_h^2), which keeps the relative accuracy of slow modes
///    that A_h would round to 1, then on A_h itself. A_h underflowing to 0 is
///    a fixed point (Sigma is then the stationary covariance).
/// Rounding in the doublings moves the result by about 2^-53 |F|_1 s relative
/// (the problem's condition number), so where |F|_1 s > 1e5 the pair is
/// computed in long double (2^-64 on x86).
/// Accuracy, measured against the Ornstein-Uhlenbeck closed form and a 50-digit
/// (mpmath) reference for 2x2 drifts, eigenvalues -1e-3 .. -1e4 (normal,
/// non-normal, oscillating), steps 1e-9 .. 1e3: within 1e-10 relative
/// (norm-wise); see docs/continuous-time.md. Throws lgssm::invalid_argument naming drift,
/// diffusion_covariance or dt for bad shapes or values, a diffusion covariance
/// that is not symmetric positive semidefinite, or a transition that overflows
/// (an unstable drift over a long step).
/// @param drift F, (n, n)
/// @param diffusion_covariance Q_c, (n, n), symmetric positive semidefinite
/// @param dt the step s > 0
/// @return A_s and Sigma_s
/// @note See Theorem 1 of Van Loan (1978) and Eq. 6.3 of Sarkka & Solin (2019).
Discretization discretize(const Matrix& drift, const Matrix& diffusion_covariance, double dt);

/// The inverse map (A, Sigma, s) -> (F, Q_c): F = log(A) / s, the principal
/// matrix logarithm (Eigen's Schur-Pade inverse scaling and squaring; the
/// seed document's last equation), then Q_c from the linear equations
/// Sigma_s(Q_c) = Sigma over the entries of a symmetric Q_c, with Sigma_s(.)
/// computed as in discretize: no A^{-1} is formed, and the equations are
/// nonsingular for a principal logarithm (eigenvalues s phi(s (l_i + l_j)),
/// phi(z) = (e^z - 1) / z, |Im s l| < pi). Throws lgssm::invalid_argument when
/// A has an eigenvalue on the closed negative real axis (no real principal
/// logarithm exists) or Sigma is not symmetric positive semidefinite. For stiff
/// A (eigenvalues near 0) the logarithm is ill-conditioned: F is only as
/// accurate as A's smallest eigenvalues are. A recovered Q_c
/// that is not positive semidefinite is replaced by its nearest positive
/// semidefinite matrix in the Frobenius norm (Higham 1988: negative
/// eigenvalues set to zero); psd_correction is the Frobenius norm of that
/// change (0 when none was needed).
struct Undiscretization {
  Matrix drift;
  Matrix diffusion_cov;
  double psd_correction = 0.0;
};
/// @param weights A, (n, n)
/// @param cov Sigma, (n, n), symmetric positive semidefinite
/// @param dt the step s > 0
/// @return F, Q_c and the size of the correction that made Q_c positive semidefinite
Undiscretization undiscretize(const Matrix& weights, const Matrix& cov, double dt);

/// The discrete-time model of `params` observed at `times` (strictly
/// increasing, one per step): dynamics entry k is the transition over
/// times[k+1] - times[k] (one constant entry when the gaps are all equal),
/// each distinct gap discretized once. Throws lgssm::invalid_argument naming
/// `times` when a transition overflows (an unstable drift over a long gap).
Params to_discrete(const ContinuousParams& params, const Vector& times);

/// Checks that `times` has `num_timesteps` finite, strictly increasing entries
/// with finite gaps.
void validate_times(const Vector& times, Eigen::Index num_timesteps, const std::string& name);

/// One observed sequence with its observation times.
struct TimedSequence {
  Sequence seq;
  Vector times;  ///< (num_timesteps,), strictly increasing
};

/// Which continuous-time parameters are fitted, and the structure of each covariance.
struct ContinuousProps {
  ParamProps::Initial initial;
  bool drift = true;
  bool diffusion_cov = true;
  CovStructure diffusion_cov_structure = CovStructure::kFull;
  ParamProps::Conditional emissions;
};

/// The E-step of a continuous-time model: the statistics of the equivalent
/// discrete-time model (stats.hpp) with the transitions grouped by step length,
/// stats.dynamics[g] summing those over gaps[g] (gaps ascending; steps within a
/// relative 1e-10 of each other are one group; one empty group when no sequence
/// has two steps). Summable: += merges the gap lists, so batches of sequences
/// (a cluster's shards) may be reduced in any grouping.
struct ContinuousStats {
  std::vector<double> gaps;
  SufficientStats stats;
  ContinuousStats& operator+=(const ContinuousStats& other);
};
ContinuousStats sufficient_stats(const ContinuousParams& params, const std::vector<TimedSequence>& seqs,
                                 int num_threads = 0);
/// The generalized M-step (see fit_em): the closed-form M-step for the trainable
/// initial state and emission parameters, and for trainable F and Q_c
/// `m_step_iters` (>= 1) L-BFGS iterations on sum_g E[log N(z_t | A_g z_{t-1},
/// Sigma_g)] from their current values, so it never lowers the expected
/// complete-data log likelihood.
ContinuousParams m_step(const ContinuousParams& params, const ContinuousProps& props, const ContinuousStats& stats,
                        int m_step_iters = 10, int num_threads = 0);

/// The result of a continuous-time fit.
struct ContinuousFitResult {
  ContinuousParams params;
  std::vector<double> history;  ///< log p(y) entering each iteration (EM) or at each iterate (L-BFGS)
  FitSummary summary;
  double psd_correction = 0.0;  ///< see undiscretize (uniform-step EM only)
};

/// Options of the continuous-time fit_em (every field checked by validate()).
struct ContinuousEmOptions {
  int num_iters = 50;      ///< maximum number of EM iterations (E-steps), >= 0
  double tolerance = 0.0;  ///< stop when |lp_k - lp_{k-1}| <= tolerance * |lp_k|; finite, >= 0; 0 never stops early
  int m_step_iters = 10;   ///< L-BFGS iterations of the generalized M-step for (F, Q_c), >= 1
  bool accelerate = true;  ///< generalized EM only: SQUAREM extrapolation (see fit_em); false for plain EM
  int num_threads = 0;     ///< threads for the E-step and the M-step, >= 0; 0 = all hardware threads
  FitCallback callback;    ///< optional: (iteration, log p(y)); false stops the fit
  /// Throws lgssm::invalid_argument naming the first field out of its range.
  void validate() const;
};

/// EM. When every sequence is observed at one common step s, F and Q_c are both
/// trainable and Q_c has full structure, this is the seed document's EM: the
/// closed-form M-step for (A_s, Sigma_s) of the equivalent discrete model over
/// all sequences (with the initial state and the, possibly per-step, emission
/// parameters), then (F, Q_c) by undiscretize. Otherwise (irregular times,
/// frozen or structured dynamics) it is a generalized EM: the closed-form
/// M-step for the initial state and emissions, and for (F, Q_c) an increase of
/// the expected complete-data log likelihood by L-BFGS with its exact gradient
/// (the adjoint of discretize's scaling and squaring, the derivative of the
/// computed transition: no growing exponential is formed), accelerated by
/// SQUAREM (Varadhan & Roland 2008) with a monotone safeguard. Each E-step is one
/// entry of the history, which is non-decreasing either way.
ContinuousFitResult fit_em(const ContinuousParams& params, const ContinuousProps& props,
                           const std::vector<TimedSequence>& seqs, const ContinuousEmOptions& options = {});

/// Gradient ascent (L-BFGS) on log p(y) over all trainable parameters, with
/// exact gradients (Fisher's identity, then the chain rule backwards through
/// the scaling and squaring of discretize). Emission parameters must be
/// time-invariant when trainable. Every option is checked (max_iters >= 0,
/// memory >= 1, tolerances >= 0, num_threads >= 0; no prior: this fit is
/// maximum likelihood).
ContinuousFitResult fit_lbfgs(const ContinuousParams& params, const ContinuousProps& props,
                              const std::vector<TimedSequence>& seqs, const LbfgsOptions& options = {});

/// The trainable parameters as one unconstrained vector: initial and emission
/// parameters as in learn.hpp, then F's entries (row-major), then Q_c as a
/// covariance of its structure.
Vector to_unconstrained(const ContinuousParams& params, const ContinuousProps& props);
ContinuousParams from_unconstrained(const Vector& x, const ContinuousParams& base, const ContinuousProps& props);

/// log p(y) summed over the sequences, and its gradient w.r.t. the unconstrained vector.
double log_prob_and_gradient(const ContinuousParams& params, const ContinuousProps& props,
                             const std::vector<TimedSequence>& seqs, Vector& gradient, int num_threads = 0);

}  // namespace lgssm
