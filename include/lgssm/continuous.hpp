// Continuous-time models: a linear time-invariant SDE observed at discrete times,
//
//   x(t_0) ~ N(initial.mean, initial.cov),   dx = F x dt + L dW,
//   y_k ~ N(H_k x(t_k) + D_k u_k + d_k, R_k)          k = 0 .. T-1,
//
// with F = dynamics.drift and Q_c = L L^T = dynamics.diffusion_cov. Only Q_c is
// identifiable from data (L and L U, U orthogonal, give the same process), so
// the model is parameterized by Q_c. Observation times are any increasing
// times, per sequence. Between t and t + s the state moves by the Gaussian
// transition N(A_s x, Sigma_s) (Van Loan 1978; the seed document's formula), so
// a continuous-time model observed at given times is a discrete-time LG-SSM with
// one transition per gap, and every discrete-time operation applies to it.
#pragma once

#include <string>
#include <vector>

#include "lgssm/learn.hpp"
#include "lgssm/params.hpp"

namespace lgssm {

struct ContinuousDynamics {
  Matrix drift;          // F: (state_dim, state_dim)
  Matrix diffusion_cov;  // Q_c = L L^T: (state_dim, state_dim), positive semidefinite
};

struct ContinuousParams {
  InitialParams initial;           // at the first observation time
  ContinuousDynamics dynamics;
  LinearGaussianParams emissions;  // constant, or one entry per observation index k
  Eigen::Index state_dim() const { return initial.mean.size(); }
};

// Checks shapes, finiteness and definiteness; throws lgssm::invalid_argument.
void validate(const ContinuousParams& params);

// The transition over a step s: A_s = exp(F s) and its covariance Sigma_s.
struct Discretization {
  Matrix weights;  // A_s
  Matrix cov;      // Sigma_s
};

// Van Loan's block exponential: exp([[F, Q_c], [0, -F^T]] s) =
// [[A_s, Sigma_s A_s^{-T}], [0, A_s^{-T}]], computed by scaling and squaring
// (Eigen's MatrixFunctions). Van Loan (1978), Theorem 1; Sarkka & Solin
// (2019), Eq. 6.3.
Discretization discretize(const Matrix& drift, const Matrix& diffusion_cov, double dt);

// The inverse map (A, Sigma, s) -> (F, Q_c): the principal matrix logarithm of
// the block matrix above, divided by s (the seed document's last equation).
// Throws lgssm::invalid_argument when A has an eigenvalue on the closed
// negative real axis (no real principal logarithm exists). A recovered Q_c
// that is not positive semidefinite is replaced by its nearest positive
// semidefinite matrix in the Frobenius norm (Higham 1988: negative
// eigenvalues set to zero); psd_correction is the Frobenius norm of that
// change (0 when none was needed).
struct Undiscretization {
  Matrix drift;
  Matrix diffusion_cov;
  double psd_correction = 0.0;
};
Undiscretization undiscretize(const Matrix& weights, const Matrix& cov, double dt);

// The discrete-time model of `params` observed at `times` (strictly
// increasing, one per step): dynamics entry k is the transition over
// times[k+1] - times[k] (one constant entry when the gaps are all equal),
// each distinct gap discretized once.
Params to_discrete(const ContinuousParams& params, const Vector& times);

// Checks that `times` has `num_timesteps` finite, strictly increasing entries.
void validate_times(const Vector& times, Eigen::Index num_timesteps, const std::string& name);

struct TimedSequence {
  Sequence seq;
  Vector times;  // (num_timesteps,), strictly increasing
};

struct ContinuousProps {
  ParamProps::Initial initial;
  bool drift = true;
  bool diffusion_cov = true;
  CovStructure diffusion_cov_structure = CovStructure::kFull;
  ParamProps::Conditional emissions;
};

// The E-step of a continuous-time model: the statistics of the equivalent
// discrete-time model (stats.hpp) with the transitions grouped by step length,
// stats.dynamics[g] summing those over gaps[g] (gaps ascending; steps within a
// relative 1e-10 of each other are one group; one empty group when no sequence
// has two steps). Summable: += merges the gap lists, so batches of sequences
// (a cluster's shards) may be reduced in any grouping.
struct ContinuousStats {
  std::vector<double> gaps;
  SufficientStats stats;
  ContinuousStats& operator+=(const ContinuousStats& other);
};
ContinuousStats sufficient_stats(const ContinuousParams& params, const std::vector<TimedSequence>& seqs,
                                 int num_threads = 0);
// The generalized M-step (see fit_em): the closed-form M-step for the trainable
// initial state and emission parameters, and for trainable F and Q_c
// `m_step_iters` (>= 1) L-BFGS iterations on sum_g E[log N(z_t | A_g z_{t-1},
// Sigma_g)] from their current values, so it never lowers the expected
// complete-data log likelihood.
ContinuousParams m_step(const ContinuousParams& params, const ContinuousProps& props, const ContinuousStats& stats,
                        int m_step_iters = 10, int num_threads = 0);

struct ContinuousFitResult {
  ContinuousParams params;
  std::vector<double> history;  // log p(y) entering each iteration (EM) or at each iterate (L-BFGS)
  FitSummary summary;
  double psd_correction = 0.0;  // see undiscretize (uniform-step EM only)
};

struct ContinuousEmOptions {
  int num_iters = 50;      // >= 0
  double tolerance = 0.0;  // stop when |lp_k - lp_{k-1}| <= tolerance * |lp_k|
  int m_step_iters = 10;   // L-BFGS iterations of the generalized M-step for (F, Q_c), >= 1
  bool accelerate = true;  // generalized EM only: SQUAREM extrapolation (see fit_em); false for plain EM
  int num_threads = 0;
  FitCallback callback;
};

// EM. When every sequence is observed at one common step s, F and Q_c are both
// trainable and Q_c has full structure, this is the seed document's EM: the
// closed-form M-step for (A_s, Sigma_s) of the equivalent discrete model over
// all sequences (with the initial state and the, possibly per-step, emission
// parameters), then (F, Q_c) by undiscretize. Otherwise (irregular times,
// frozen or structured dynamics) it is a generalized EM: the closed-form
// M-step for the initial state and emissions, and for (F, Q_c) an increase of
// the expected complete-data log likelihood by L-BFGS with its exact gradient
// through the Frechet derivative of the matrix exponential (Al-Mohy & Higham
// 2009: the derivative is a block of exp([[B, E], [0, B]])), accelerated by
// SQUAREM (Varadhan & Roland 2008) with a monotone safeguard. Each E-step is one
// entry of the history, which is non-decreasing either way.
ContinuousFitResult fit_em(const ContinuousParams& params, const ContinuousProps& props,
                           const std::vector<TimedSequence>& seqs, const ContinuousEmOptions& options = {});

// Gradient ascent (L-BFGS) on log p(y) over all trainable parameters, with
// exact gradients (Fisher's identity, then the chain rule through the Van Loan
// exponential). Emission parameters must be time-invariant when trainable.
ContinuousFitResult fit_lbfgs(const ContinuousParams& params, const ContinuousProps& props,
                              const std::vector<TimedSequence>& seqs, const LbfgsOptions& options = {});

// The trainable parameters as one unconstrained vector: initial and emission
// parameters as in learn.hpp, then F's entries (row-major), then Q_c as a
// covariance of its structure.
Vector to_unconstrained(const ContinuousParams& params, const ContinuousProps& props);
ContinuousParams from_unconstrained(const Vector& x, const ContinuousParams& base, const ContinuousProps& props);

// log p(y) summed over the sequences, and its gradient w.r.t. the unconstrained vector.
double log_prob_and_gradient(const ContinuousParams& params, const ContinuousProps& props,
                             const std::vector<TimedSequence>& seqs, Vector& gradient, int num_threads = 0);

}  // namespace lgssm
