// Expected sufficient statistics of an LG-SSM: the E-step of EM, and (by
// Fisher's identity) everything the exact gradient of log p(y) needs.
//
// Both conditionals are linear regressions on an augmented regressor:
//   dynamics:  out = z_t,  x = [z_{t-1}; u_t; 1]   (t = 1..T-1)
//   emissions: out = y_t,  x = [z_t;     u_t; 1]   (t = 0..T-1)
// and the statistics are the sums of E[x x^T], E[out x^T], E[out out^T] under
// p(z, y_missing | y_observed). Missing emission components are treated as
// latent variables (their conditional law given z_t and the observed part of
// y_t under the current parameters), which keeps the E-step exact and the
// M-step closed form under missing data (Shumway & Stoffer 2000, Sec. 6.4).
//
// Statistics are summable: the statistics of a batch are the sums of the
// per-sequence statistics, so EM over many sequences (or many machines) is
// per-sequence E-steps, summed, then one M-step.
#pragma once

#include <vector>

#include "lgssm/inference.hpp"
#include "lgssm/params.hpp"

namespace lgssm {

// Sums for one regression out = W x + noise.
struct RegressionStats {
  Matrix xx;           // (k, k): sum E[x x^T], k = state_dim + input_dim + 1
  Matrix yx;           // (d, k): sum E[out x^T]
  Matrix yy;           // (d, d): sum E[out out^T]
  double count = 0.0;  // number of terms summed

  RegressionStats() = default;
  RegressionStats(Eigen::Index out_dim, Eigen::Index regressor_dim);
  RegressionStats& operator+=(const RegressionStats& other);
};

struct SufficientStats {
  Vector initial_sum;       // (state_dim,): sum over sequences of E[z_0]
  Matrix initial_outer;     // (state_dim, state_dim): sum of E[z_0 z_0^T]
  double num_sequences = 0.0;
  // One entry (pooled over time) for discrete-time models; continuous-time
  // models keep one entry per distinct step length (transitions grouped).
  std::vector<RegressionStats> dynamics;
  // One entry (pooled over time), or one per time step when the emission
  // parameters are learned per step (entry t sums step t over sequences).
  std::vector<RegressionStats> emissions;
  double marginal_loglik = 0.0;  // sum of log p(y) over the sequences

  SufficientStats() = default;
  SufficientStats(Eigen::Index state_dim, Eigen::Index emission_dim, Eigen::Index input_dim,
                  Eigen::Index num_emission_entries, Eigen::Index num_dynamics_groups = 1);
  // Adds `other`; dynamics groups and per-step emission entries are added
  // index by index (the shorter list is extended).
  SufficientStats& operator+=(const SufficientStats& other);
};

// The E-step for one sequence: smoother, then expected statistics under the
// posterior. With `per_step_emissions` the emission statistics are kept per
// time step (num_timesteps entries) instead of pooled.
SufficientStats sufficient_stats(const Params& params, const Sequence& seq,
                                 bool per_step_emissions = false);

// The E-step over many sequences (in parallel), summed in sequence order.
SufficientStats sufficient_stats(const Params& params, const std::vector<Sequence>& seqs,
                                 bool per_step_emissions = false, int num_threads = 0);

}  // namespace lgssm
