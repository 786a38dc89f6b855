/// @file
/// Residuals and diagnostics of a fitted model: one-step innovations, the
/// disturbance smoother with auxiliary residuals, smoothed state
/// autocovariances at any lag, and the number of free parameters.
///
/// Conventions are those of params.hpp and inference.hpp (NaN marks a missing
/// emission component). The state disturbance of transition t is
///   eta_t = z_{t+1} - F_t z_t - B_t u_{t+1} - b_t ~ N(0, Q_t),   t = 0 .. T-2,
/// (dynamics entry t), the emission disturbance of step t
///   eps_t = y_t - H_t z_t - D_t u_t - d_t ~ N(0, R_t),          t = 0 .. T-1.
/// Every function validates its arguments (lgssm::invalid_argument).
#pragma once

#include "lgssm/inference.hpp"
#include "lgssm/props.hpp"

namespace lgssm {

/// The one-step prediction errors of the emissions and their standardizations.
/// With o the observed components of step t (NaN in every other entry):
///   v_t = y_t - E[y_t | y_{0:t-1}],  F_t = Cov[v_t] = H_o P_{t|t-1} H_o^T + R_oo,
/// standardized by the lower Cholesky factor F_t = L_t L_t^T (L_t^{-1} v_t, the
/// ordering of o; statsmodels' standardized_forecasts_error) and component-wise
/// (v_t,i / sqrt(F_t,ii)). A step with nothing observed is all NaN.
struct InnovationsResult {
  double marginal_loglik = 0.0;  ///< log p(y_{0:T-1}), the filter's
  Vector step_logliks;    ///< (num_timesteps,): log p(y_t | y_{0:t-1}), the filter's terms (0 if nothing observed)
  RowMatrix innovations;  ///< (num_timesteps, emission_dim): v_t
  MatrixSeries
      innovation_covariances;  ///< (num_timesteps, emission_dim, emission_dim): F_t (NaN off the observed block)
  RowMatrix standardized_innovations;  ///< (num_timesteps, emission_dim): L_t^{-1} v_t
  RowMatrix scaled_innovations;        ///< (num_timesteps, emission_dim): v_t,i / sqrt(F_t,ii)
  /// With a diffuse initial state, the steps of the diffuse period, whose
  /// innovations have infinite variance (NaN here; step_logliks hold the
  /// diffuse terms). Residual tests leave them out (statsmodels' nobs_diffuse).
  Eigen::Index num_diffuse_timesteps = 0;
};

/// The smoothed disturbances, their conditional variances and the auxiliary
/// residuals (each smoothed disturbance over the standard deviation of its
/// estimator; NaN where that variance is 0, a component without noise).
struct DisturbancesResult {
  double marginal_loglik = 0.0;                   ///< log p(y_{0:T-1})
  RowMatrix emission_disturbances;                ///< (num_timesteps, emission_dim): E[eps_t | y]
  MatrixSeries emission_disturbance_covariances;  ///< (num_timesteps, emission_dim, emission_dim): Cov[eps_t | y]
  RowMatrix emission_auxiliary_residuals;  ///< (num_timesteps, emission_dim): E[eps_t,i | y] / sd(E[eps_t,i | y])
  RowMatrix dynamics_disturbances;         ///< (num_timesteps - 1, state_dim): E[eta_t | y]
  MatrixSeries dynamics_disturbance_covariances;  ///< (num_timesteps - 1, state_dim, state_dim): Cov[eta_t | y]
  RowMatrix dynamics_auxiliary_residuals;  ///< (num_timesteps - 1, state_dim): E[eta_t,i | y] / sd(E[eta_t,i | y])
};

/// The innovations of `seq` under `params` (the Kalman filter, Durbin & Koopman
/// 2012, Sec. 4.3; standardization Sec. 2.12.1 and 7.5). F_t is factored by
/// Cholesky: it is positive definite whenever the data have a density (R_NN is
/// definite on the noisy components, and the filter refuses exactly observed
/// components already determined by the past); a factorization that fails in
/// floating point throws std::runtime_error naming the step.
/// @param params the model
/// @param seq the emissions (NaN where missing) and inputs
/// @return v_t, F_t, the standardized innovations and the filter's log likelihood terms
/// @note See Sec. 4.3 and 7.5 of Durbin & Koopman (2012).
InnovationsResult innovations(const Params& params, const Sequence& seq);

/// The emissions whose standardized innovations (innovations() above) are
/// `standardized`: the innovations form of the filter (Stoffer & Wall 1991,
/// JASA 86, "Bootstrapping state-space models", Sec. 3), run forward on the
/// emissions it makes. With (m_{t|t-1}, P_{t|t-1}) the predicted moments given
/// the emissions made so far, o the observed components of seq's step t and
/// F_t = L_t L_t^T as in innovations():
///   y*_t,o = H_o m_{t|t-1} + D_o u_t + d_o + L_t w_t,o,
/// then the filter's update on y*_t. The gains and F_t do not depend on the
/// data, so the standardized innovations of the result are w exactly, and w =
/// the standardized innovations of seq gives back seq's emissions. Resampling
/// the rows of w gives Stoffer & Wall's innovations bootstrap.
/// @param params the model
/// @param seq the emissions (only their missing pattern is used: NaN stays NaN) and inputs
/// @param standardized (num_timesteps, emission_dim): w_t at the observed components (others ignored)
/// @return (num_timesteps, emission_dim): y*, NaN where seq is missing
/// Throws for a diffuse initial state (the known filter only).
/// @note See Sec. 3 of Stoffer & Wall (1991).
RowMatrix emissions_from_innovations(const Params& params, const Sequence& seq, const RowMatrix& standardized);

/// The disturbance smoother (Durbin & Koopman 2012, Sec. 4.5; de Jong &
/// Penzer 1998, JASA 93, for the auxiliary residuals), from the
/// smoother's backward recursion (kalman.hpp), with r_t = F_t^T r^-_{t+1} and
/// N_t = F_t^T N^-_{t+1} F_t the score and information about z_t carried by
/// y_{t+1:T-1} (zero at t = T-1) and K_t = P_{t|t-1} H_o^T F_t^{-1}:
///   u_t = F_t^{-1} v_t - K_t^T r_t,   D_t = F_t^{-1} + K_t^T N_t K_t,
///   E[eps_t | y] = R_{.o} u_t,        Var(E[eps_t | y]) = R_{.o} D_t R_{o.},
///   E[eta_t | y] = Q_t r^-_{t+1},     Var(E[eta_t | y]) = Q_t N^-_{t+1} Q_t,
///   Cov[eta_t | y] = Q_t - Q_t N^-_{t+1} Q_t   (symmetrized),
/// the estimators' variances as sums of semidefinite terms. Cov[eps_t | y] is
/// formed without the cancelling R - R D R: the observed components' is
/// H_o P_{t|T} H_o^T (their disturbance is y_o minus a function of z_t), the
/// missing ones' follows from their conditional law given the noisy observed
/// ones (gain G = R_mN R_NN^{-1} and Schur complement S, both from a Cholesky
/// factor of R): G V G^T + S and G V. F_t^{-1} is applied by Cholesky solves,
/// as in innovations(). Accuracy: Cov[eta_t | y] is a difference, accurate to
/// about eps * |Q_t| (statsmodels computes it so too).
/// @param params the model
/// @param seq the emissions (NaN where missing) and inputs
/// @return the smoothed disturbances, their covariances and auxiliary residuals
/// @note See Sec. 4.5 of Durbin & Koopman (2012).
DisturbancesResult disturbances(const Params& params, const Sequence& seq);

/// The smoothed state autocovariances Cov[z_{t+lag}, z_t | y] for
/// t = 0 .. T-1-lag, shape (num_timesteps - lag, state_dim, state_dim); lag 0
/// gives the smoothed covariances. Durbin & Koopman (2012), Sec. 4.7,
/// at the filtered level (P_{t|t-1} L_t^T = P_{t|t} F_t^T with L_t = F_t A_t):
///   Cov[z_{t+k}, z_t | y] = (I - P_{t+k|t+k-1} N^-_{t+k}) F_{t+k-1} A_{t+k-1} ... F_{t+1} A_{t+1} F_t P_{t|t},
/// with A_s = I - K_s H_s the update's transition term; lag 1 is the smoother's
/// cross covariance. No covariance is inverted. O(T lag n^3).
/// @param params the model
/// @param seq the emissions (NaN where missing) and inputs
/// @param lag k, 0 <= k <= num_timesteps - 1
/// @return (num_timesteps - lag, state_dim, state_dim)
/// @note See Sec. 4.7 of Durbin & Koopman (2012).
MatrixSeries smoothed_autocovariances(const Params& params, const Sequence& seq, Eigen::Index lag);

/// The number of free parameters of a fit under `props`: the length of the
/// unconstrained vector over the trainable parameters (to_unconstrained in
/// learn.hpp; a full covariance counts n (n + 1) / 2, a diagonal one n, a scalar
/// one 1, any other parameter its entries, a frozen parameter 0, each entry of a
/// trainable per-step series separately), as statsmodels counts its parameters.
/// @param params the model (its shapes)
/// @param props what is trainable, and the covariance structures
/// @return the number of free parameters
Eigen::Index num_free_parameters(const Params& params, const ParamProps& props);

}  // namespace lgssm
