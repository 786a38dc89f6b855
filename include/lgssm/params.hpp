/// @file
/// Model parameters of a linear Gaussian state-space model (LG-SSM).
///
/// Time-index convention (the one used by every function of lgssm; 0-based):
///
///   z_0     ~ N(initial.mean, initial.cov)
///   z_t     ~ N(F_t z_{t-1} + B_t u_t + b_t, Q_t)        t = 1 .. T-1
///   y_t     ~ N(H_t z_t     + D_t u_t + d_t, R_t)        t = 0 .. T-1
///
/// where (F, B, b, Q) = dynamics.(weights, input_weights, bias, cov) and
/// (H, D, d, R) = emissions.(weights, input_weights, bias, cov). The input u_t
/// drives both the transition *into* step t and the emission *at* step t, so
/// u_0 only enters y_0.
///
/// Any parameter may vary with time. A parameter is a MatrixSeries of one
/// entry (constant) or of one entry per use: emission parameters have one entry
/// per step t = 0..T-1; dynamics parameters have one entry per transition, entry
/// k governing the transition from z_k to z_{k+1} (k = 0..T-2). A series longer
/// than needed is fine (its leading entries are used), so one set of per-step
/// parameters can serve sequences of different lengths.
#pragma once

#include <string>
#include <vector>

#include "lgssm/series.hpp"

namespace lgssm {

/// z_0 ~ N(mean, cov), or with a diffuse part z_0 ~ N(mean, cov + kappa A A^T),
/// kappa -> infinity (Durbin & Koopman 2012, Sec. 5.1: P_* = cov, P_inf = A A^T).
/// The diffuse directions (the columns of A = `diffuse`) carry no prior
/// information; inference takes the limit exactly (the exact initial Kalman
/// filter and smoother, src/diffuse.hpp) and the log likelihood is the diffuse
/// one, lim_{kappa -> inf} log p(y) + (q/2) log kappa (Durbin & Koopman 2012,
/// Sec. 7.2.2), q = rank A. An empty `diffuse` (no columns) is a known
/// initial distribution.
struct InitialParams {
  Vector mean;       ///< (state_dim,)
  Matrix cov;        ///< (state_dim, state_dim), symmetric positive semidefinite
  Matrix diffuse{};  ///< (state_dim, q): A, with P_inf = A A^T; q = 0 (empty): known initialization

  /// Whether the initial distribution has a diffuse part (A has a column).
  bool is_diffuse() const { return diffuse.cols() > 0; }
};

/// The conditional Gaussian N(weights x + input_weights u + bias, cov): the
/// dynamics (x = z_{t-1}) or the emissions (x = z_t). Each member is constant
/// (one entry) or per step (see the convention above).
struct LinearGaussianParams {
  MatrixSeries weights;        ///< (out_dim, state_dim)
  MatrixSeries bias;           ///< (out_dim,)
  MatrixSeries input_weights;  ///< (out_dim, input_dim); input_dim may be 0
  MatrixSeries cov;            ///< (out_dim, out_dim); dynamics: PSD, emissions: PD
};

/// The parameters of a discrete-time LG-SSM (conventions at the top of this file).
struct Params {
  InitialParams initial;
  LinearGaussianParams dynamics;
  LinearGaussianParams emissions;

  Eigen::Index state_dim() const { return initial.mean.size(); }
  Eigen::Index emission_dim() const { return emissions.weights.rows(); }
  Eigen::Index input_dim() const { return dynamics.input_weights.cols(); }
};

/// Checks shapes, finiteness, symmetry and definiteness of every parameter and
/// throws lgssm::invalid_argument naming the first offending one, e.g.
/// "dynamics.cov: expected a symmetric positive semidefinite matrix, got an
/// eigenvalue -0.3". Called by every entry point.
void validate(const Params& params);

/// One observed sequence: emissions (num_timesteps, emission_dim) with NaN for
/// missing components, and inputs (num_timesteps, input_dim) or an empty
/// matrix when the model has no inputs.
struct Sequence {
  RowMatrix emissions;
  RowMatrix inputs;
  Eigen::Index num_timesteps() const { return emissions.rows(); }
};

/// The stationary covariance P of z_t = F z_{t-1} + noise(Q): the solution of the
/// discrete Lyapunov equation P = F P F^T + Q, by the doubling algorithm
/// (P = sum_k F^k Q F^kT summed as P_{j+1} = P_j + A_j P_j A_j^T, A_{j+1} = A_j^2,
/// Anderson & Moore 1979, "Optimal Filtering", Sec. 6.7; a sum of semidefinite
/// terms, so P is semidefinite), until the added term is below 1e-16 relative.
/// For `initial.cov` of a stationary model (or its stationary block with the rest
/// diffuse); it is computed once, not tracked as F and Q change during a fit.
/// Throws lgssm::invalid_argument unless F is square and stable (spectral radius
/// < 1) and Q a symmetric positive semidefinite matrix of F's size.
Matrix stationary_initial(const Matrix& weights, const Matrix& cov);

/// Checks `seq` against already validated `params` (shapes, finite inputs, no
/// infinite emissions, per-step parameters long enough); `name` prefixes the
/// messages, e.g. "emissions[3]".
void validate(const Params& params, const Sequence& seq, const std::string& name = "emissions");

/// Checks every sequence of a batch, naming them "emissions[i]" (or
/// "emissions" for a batch of one); a batch must not be empty.
void validate(const Params& params, const std::vector<Sequence>& seqs);

}  // namespace lgssm
