// The unchecked entry points (private): the computations behind the public
// functions, without their argument checks, for callers that validated already.
#pragma once

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "lgssm/inference.hpp"
#include "lgssm/learn.hpp"
#include "lgssm/parallel.hpp"
#include "lgssm/stats.hpp"

namespace lgssm::internal {

// W = [weights, input_weights, bias] of step t: the regression weights of
// the statistics (stats.hpp).
Matrix stacked(const LinearGaussianParams& c, Eigen::Index t);

// With `transition_score`, also sum_{t >= 1} (r^-_t r^-_t^T - N^-_t) from
// the backward recursion (BackwardRecursion, kalman.hpp): the exact score of
// log p(y) w.r.t. the dynamics noise covariance is half of it (Koopman &
// Shephard 1992, Biometrika 79, "Exact score for time series models in state
// space form"; Durbin & Koopman 2012, Sec. 7.3.3), since
// E[eta eta^T | y] - Q = Q (r r^T - N) Q for eta the noise of the
// transition. Left empty with a diffuse initial state.
SmootherResult smoother_unchecked(const Params& params, const Sequence& seq, Matrix* transition_score = nullptr);

// Whether the E-step keeps one set of emission statistics per step: when every
// emission parameter has one entry per step. Otherwise (all time-invariant, or
// per-step entries that are all frozen) one pooled set: each step's sums about
// its own [weights, input_weights, bias] (stats.cpp), so the time-invariant
// trainable parameters' M-step and gradient are those of the pooled set.
bool per_step_emissions(const LinearGaussianParams& emissions);

// What the smoother's backward recursion (BackwardRecursion, kalman.hpp) used
// at each step t: r^-_t and N^-_t, the score and information about z_t carried
// by y_{t:T-1}, and A_t, the update's transition term.
struct BackwardTrace {
  RowMatrix score;          // (num_timesteps, state_dim): r^-_t
  MatrixSeries info;        // (num_timesteps, state_dim, state_dim): N^-_t
  MatrixSeries transition;  // (num_timesteps, state_dim, state_dim): A_t
};
// smoother_unchecked, also filling `trace` (the diagnostics' disturbance smoother).
SmootherResult smoother_traced(const Params& params, const Sequence& seq, BackwardTrace& trace);
// The smoother without covariances (smoothed means and log p(y) only).
SmootherResult smoothed_means_unchecked(const Params& params, const Sequence& seq);

// One draw of z ~ p(z | y) by the simulation smoother of Durbin & Koopman
// (2002), posterior_sample's: z+ - E[z | y+] + E[z | y] for (z+, y+) drawn
// from the model with y+ missing where y is; `smoothed_means` is E[z | y].
RowMatrix simulation_smoother_draw(const Params& params, const Sequence& seq, const RowMatrix& smoothed_means,
                                   std::mt19937_64& rng);

// The statistics of a sequence whose states are known (smoothed means
// `states`, zero covariances): complete-data sums (stats.hpp), with NaN
// emission components integrated out given the states (missing_law).
SufficientStats path_stats(const Params& params, const Sequence& seq, const RowMatrix& states, bool per_step_emissions);

// The law of the NaN components m of emission row `y` given the state and the
// observed components o (those with r_ii > 0: exactly observed ones have no
// noise correlated with the others'), for emission covariance r: for the
// residual e = y - (H z + D u + d),
//   e_m | e_o ~ N(gain e_o, noise_factor noise_factor^T),
//   gain = R_mo R_oo^{-1} = L_mo L_oo^{-1},  R_mm - R_mo R_oo^{-1} R_om = L_mm L_mm^T,
// from the Cholesky factor L of R over [o; m] (Schur complement as a product,
// never a difference; missing components with r_ii = 0 get zero rows).
struct MissingLaw {
  std::vector<Eigen::Index> observed, missing;
  Matrix gain;          // (missing, observed)
  Matrix noise_factor;  // (missing, missing)
};
MissingLaw missing_law(const Matrix& r, const Eigen::Ref<const RowMatrix>& y);

// The pieces of the (MAP) M-step of learn.cpp that the Gibbs sampler shares.
// w with its columns `free` set to the least-squares solution given the
// others: moment(w) = 0 on those columns.
Matrix solve_free(const RegressionStats& s, Matrix w, const std::vector<Eigen::Index>& free);
// The columns of W = [weights, input_weights, bias] (n state, m input
// columns) that `props` makes trainable, in order.
std::vector<Eigen::Index> free_columns(const ParamProps::Conditional& props, Eigen::Index n, Eigen::Index m);
// Regression statistics plus the MNIW prior's pseudo-observations (s itself
// without a prior): xx + K, rx + (M - W0) K, rr + (M - W0) K (M - W0)^T + Psi,
// count + df + d + k + 1, so that scatter(W) / count is the MAP covariance.
RegressionStats with_prior(const RegressionStats& s, const MniwPrior* p);
// The initial-state statistics plus the NIW prior's pseudo-observations: the
// one-column case of the MNIW prior (col_precision = mean_concentration).
RegressionStats initial_with_prior(const SufficientStats& s, const ConjugatePrior* prior);
// Whether any member of the conditional is trainable.
bool any_trainable(const ParamProps::Conditional& c);
// Whether any member of the conditional has an affine constraint.
bool has_constraints(const ParamProps::Conditional& c);
// The conditional M-step of W (d x k) under vec(W) = a.fixed + a.design beta
// given the covariance `cov` of the noise (an ECM step, Meng & Rubin 1993;
// Holmes 2012, Sec. 4-5, in one vec form). Maximizing
// -1/2 sum E[(out - W x)^T cov^{-1} (out - W x)] over beta gives the normal equations
//   (D^T (xx (x) cov^{-1}) D) beta = D^T vec(cov^{-1} moment(mat(fixed))),
// solved as a correction about W_c, the projection of w onto the constraint:
//   beta = beta_c + (D^T (xx (x) cov^{-1}) D)^{-1} D^T vec(cov^{-1} moment(W_c)),
// so the right-hand side is a residual moment, small near the optimum. Free
// entries may only lie in rows of positive variance, over which cov must be
// positive definite (else lgssm::invalid_argument naming `name`); rows of zero
// variance carry no information on beta. Cost O(nnz(D) d k + k nnz(D) + k^3).
Matrix solve_constrained(const RegressionStats& s, const Matrix& w, const Affine& a, const Matrix& cov,
                         const std::string& name);
// The covariance constraint's MLE given the mean scatter `cov`: its Frobenius
// projection onto the constraint (see Affine in props.hpp); no checks.
Matrix project_cov(const Affine& a, const Matrix& cov);
// Throws unless every free value of a trainable mean, weight, bias or input
// weight lies in a component that `props` does not make deterministic (a
// frozen zero variance, a covariance constraint's fixed zero): the gradient's
// condition (log_prob_gradient).
void check_gradient_rows(const Params& params, const ParamProps& props);
// Throws unless every free entry of `a` lies in a row of positive variance in `cov`.
void check_noisy_rows(const Affine& a, const Matrix& cov, const std::string& name);
// The constraint on vec(W), W = [weights, input_weights, bias] (n state, m
// input columns), that `props` implies: a constrained piece as given, a free
// one with an identity design, a frozen one fixed at its value in w.
Affine stacked_constraint(const ParamProps::Conditional& props, const Matrix& w, Eigen::Index n, Eigen::Index m);
// The dynamics statistics of a discrete-time model (one pooled group).
const RegressionStats& pooled_dynamics(const SufficientStats& s);

// The E-step of one sequence; transition t-1 -> t adds to dynamics group
// dynamics_groups[t - 1] (all to group 0 when the vector is empty).
SufficientStats sufficient_stats_one(const Params& params, const Sequence& seq, bool per_step_emissions,
                                     const std::vector<Eigen::Index>& dynamics_groups,
                                     Eigen::Index num_dynamics_groups);

// Sequences that share the parameters, the number of steps and the missing
// pattern share their covariance recursion: the filter and smoother of
// KalmanFilter's columns run them together, interleaved (step_columns,
// linalg.hpp), the covariances computed once.
//
// seqs[indices[0]], seqs[indices[1]], ... partitioned into blocks of such
// sequences (at most a cache-sized number of columns each) and sequences
// alone (one-entry blocks): all alone with a diffuse initial state (whose
// exact initial filter runs one sequence). In order of first appearance. The
// partition does not depend on the number of threads, so neither do the
// results of the batch functions.
std::vector<std::vector<size_t>> column_blocks(const Params& params, const std::vector<Sequence>& seqs,
                                               const std::vector<size_t>& indices);
// seqs[block[0]], seqs[block[1]], ... (of one length) interleaved: row
// t * width + j of the emissions and inputs is sequence block[j]'s step t.
Sequence interleave(const std::vector<Sequence>& seqs, const std::vector<size_t>& block);
// fn(i, block, seq, width) for each block i of column_blocks, in parallel:
// seq is the sequence itself (width 1) for a block of one, the block
// interleaved otherwise.
template <class Fn>
void for_each_block(const std::vector<std::vector<size_t>>& blocks, const std::vector<Sequence>& seqs, int num_threads,
                    Fn fn) {
  parallel_for(
      static_cast<Eigen::Index>(blocks.size()),
      [&](Eigen::Index i) {
        const std::vector<size_t>& b = blocks[i];
        if (b.size() == 1)
          fn(i, b, seqs[b[0]], Eigen::Index(1));
        else
          fn(i, b, interleave(seqs, b), static_cast<Eigen::Index>(b.size()));
      },
      num_threads);
}
// The smoother of `width` interleaved sequences of a known initial state: the
// smoothed means interleaved like the data, the covariances (one series) and
// marginal_loglik (the sum over the sequences) shared.
// With `transition_score`, that of smoother_unchecked summed over the sequences.
SmootherResult smoother_columns(const Params& params, const Sequence& interleaved, Eigen::Index width,
                                Matrix* transition_score = nullptr);
// log p(y) of each of `width` interleaved sequences of a known initial state.
Vector marginal_log_prob_columns(const Params& params, const Sequence& interleaved, Eigen::Index width);

// The E-step summed over seqs[indices[0]], seqs[indices[1]], ... (in parallel,
// by column_blocks).
SufficientStats sufficient_stats_unchecked(const Params& params, const std::vector<Sequence>& seqs,
                                           const std::vector<size_t>& indices, bool per_step_emissions,
                                           int num_threads);

}  // namespace lgssm::internal
