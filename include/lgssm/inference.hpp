/// @file
/// Exact inference in a linear Gaussian state-space model.
///
/// Conventions are those of params.hpp. Missing data: a NaN in any component of
/// y_t marks that component unobserved; the update uses the observed components
/// only, and a step with none observed is a pure prediction step. Every function
/// validates its arguments and throws lgssm::invalid_argument on bad input.
///
/// Numerics: float64, exact for every valid model, including singular
/// dynamics and initial covariances (any rank, 0 included), emission
/// covariances with zero rows and columns (exactly observed components) and
/// ill-conditioned ones. The update is the array form of the square-root
/// filter on the observation collapsed to the state's dimension (a Cholesky
/// factor of R_t whitens the noisy observed components, a thin QR of the
/// whitened emission matrix reduces them to n), so its cost per step is
/// O(n^3 + p n) for diagonal R and O(n^3 + p^2) otherwise, never O(p^3); the
/// log likelihood is a sum of squares, never a difference. The smoother is the
/// Bryson-Frazier / de Jong backward recursion on information, posterior
/// sampling the simulation smoother of Durbin & Koopman (2002): no predicted
/// covariance is inverted anywhere (src/kalman.hpp and src/inference.cpp give
/// the equations). The per-step updates of
/// the filter and the smoother allocate no heap memory (their workspaces are
/// sized once per call; LGSSM_CHECK_NO_MALLOC builds assert it).
#pragma once

#include <cstdint>
#include <vector>

#include "lgssm/params.hpp"

namespace lgssm {

/// The Kalman filter's moments and log likelihood. With a diffuse initial
/// state (InitialParams::diffuse), marginal_loglik is the diffuse log
/// likelihood and, over the first num_diffuse_timesteps steps (the diffuse
/// period, while P_inf != 0), the covariances hold the finite part P_* of
/// P_* + kappa P_inf (statsmodels' and KFAS's convention); the means are exact.
struct FilterResult {
  double marginal_loglik = 0.0;            ///< log p(y_{0:T-1}) over the observed components
  Eigen::Index num_diffuse_timesteps = 0;  ///< steps with a diffuse part (statsmodels' nobs_diffuse); 0 if known
  RowMatrix filtered_means;                ///< (num_timesteps, state_dim): E[z_t | y_{0:t}]
  MatrixSeries filtered_covariances;       ///< (num_timesteps, state_dim, state_dim)
  RowMatrix predicted_means;               ///< (num_timesteps, state_dim): E[z_t | y_{0:t-1}]
  MatrixSeries predicted_covariances;      ///< (num_timesteps, state_dim, state_dim)
};

/// The filter's results and the smoothed moments.
struct SmootherResult : FilterResult {
  RowMatrix smoothed_means;                 ///< (num_timesteps, state_dim): E[z_t | y]
  MatrixSeries smoothed_covariances;        ///< (num_timesteps, state_dim, state_dim)
  MatrixSeries smoothed_cross_covariances;  ///< (num_timesteps-1, state_dim, state_dim):
                                            // Cov[z_{t+1}, z_t | y]
};

/// A joint draw of states and emissions.
struct SampleResult {
  RowMatrix states;     ///< (num_timesteps, state_dim)
  RowMatrix emissions;  ///< (num_timesteps, emission_dim)
};

/// The moments of y_t under the smoothed state.
struct PosteriorPredictiveResult {
  RowMatrix means;           ///< (num_timesteps, emission_dim): E[y_t | y]
  RowMatrix stds;            ///< (num_timesteps, emission_dim): sqrt(diag Var[y_t | y])
  MatrixSeries covariances;  ///< (num_timesteps, emission_dim, emission_dim), if requested
};

/// Predictive moments of states and emissions beyond the data.
struct ForecastResult {
  RowMatrix means;                    ///< (num_forecast_timesteps, state_dim)
  MatrixSeries covariances;           ///< (num_forecast_timesteps, state_dim, state_dim)
  RowMatrix emission_means;           ///< (num_forecast_timesteps, emission_dim)
  MatrixSeries emission_covariances;  ///< (num_forecast_timesteps, emission_dim, emission_dim)
};

/// log p(y_{0:T-1}): the Kalman filter without storing anything, so memory does
/// not grow with T. Sarkka (2013), "Bayesian Filtering and Smoothing", Eq. 4.20-4.21
/// and Sec. 12.2.
/// @param params the model, validated (lgssm::invalid_argument names the first bad parameter)
/// @param seq the emissions (NaN where missing) and inputs
/// @return log p(y_{0:T-1}) over the observed components
/// @note See Eq. 4.20-4.21 of Sarkka (2013).
double marginal_log_prob(const Params& params, const Sequence& seq);

/// The Kalman filter: filtered and one-step predicted moments and log p(y).
/// Sarkka (2013), Theorem 4.2.
/// @param params the model
/// @param seq the emissions (NaN where missing) and inputs
/// @return filtered and predicted means and covariances, and log p(y)
/// @note See Theorem 4.2 of Sarkka (2013).
FilterResult filter(const Params& params, const Sequence& seq);

/// The smoothed moments p(z_t | y_{0:T-1}) (the Rauch-Tung-Striebel smoother's,
/// Sarkka 2013, Theorem 8.2), with the lag-one cross covariances
/// Cov[z_{t+1}, z_t | y] that the EM E-step needs, computed by the backward
/// recursion on information of Bryson & Frazier in de Jong's form (Durbin &
/// Koopman 2012, Sec. 4.4), which needs no inverse of a predicted covariance.
/// @param params the model
/// @param seq the emissions (NaN where missing) and inputs
/// @return the filter's results, the smoothed moments and the lag-one cross covariances
/// @note See Sec. 4.4 of Durbin & Koopman (2012).
SmootherResult smoother(const Params& params, const Sequence& seq);

/// A joint draw of (z_{0:T-1}, y_{0:T-1}); `inputs` is (num_timesteps, input_dim),
/// or empty without inputs. Deterministic given `seed`.
/// @param params the model
/// @param seed the seed of the generator (the same seed, the same draw)
/// @param num_timesteps T >= 1
/// @param inputs (T, input_dim), or empty without inputs
/// @return the states (T, state_dim) and emissions (T, emission_dim)
SampleResult sample(const Params& params, std::uint64_t seed, Eigen::Index num_timesteps,
                    const RowMatrix& inputs = RowMatrix());

/// `num_samples` draws of z_{0:T-1} ~ p(z | y) by the simulation smoother of
/// Durbin & Koopman (2002): z+ - E[z | y+] + E[z | y] for (z+, y+) drawn from
/// the model. Returns a series of shape (num_samples, num_timesteps, state_dim).
/// @param params the model
/// @param seq the emissions (NaN where missing) and inputs
/// @param seed the seed of the generator
/// @param num_samples the number of draws, >= 1
/// @return the draws, (num_samples, num_timesteps, state_dim)
MatrixSeries posterior_sample(const Params& params, const Sequence& seq, std::uint64_t seed, Eigen::Index num_samples);

/// The distribution of y_t under p(z_t | y_{0:T-1}): mean H_t m_{t|T} + D_t u_t + d_t,
/// covariance H_t P_{t|T} H_t^T + R_t (also for missing entries: an imputation).
/// @param params the model
/// @param seq the emissions (NaN where missing) and inputs
/// @param full_covariances whether to return the full covariances, not only the standard deviations
/// @return means, standard deviations and (if requested) covariances of y_t given y
PosteriorPredictiveResult posterior_predictive(const Params& params, const Sequence& seq,
                                               bool full_covariances = false);

/// Exact predictive moments of z_{T..T+K-1} and y_{T..T+K-1} given y_{0:T-1}.
/// Per-step parameters are indexed by absolute time, so they must extend over
/// the horizon; `forecast_inputs` is (K, input_dim) or empty without inputs.
/// @param params the model
/// @param seq the observed emissions and inputs
/// @param num_forecast_timesteps K >= 0, the horizon
/// @param forecast_inputs (K, input_dim), or empty without inputs
/// @return predictive moments of the states and emissions over the horizon
ForecastResult forecast(const Params& params, const Sequence& seq, Eigen::Index num_forecast_timesteps,
                        const RowMatrix& forecast_inputs = RowMatrix());

/// Batch versions of marginal_log_prob, filter and smoother: the arguments are
/// validated once (sequences named "emissions[i]"), then the sequences are
/// processed in parallel on up to `num_threads` threads (0: all hardware threads).
std::vector<double> marginal_log_prob(const Params& params, const std::vector<Sequence>& seqs, int num_threads = 0);
std::vector<FilterResult> filter(const Params& params, const std::vector<Sequence>& seqs, int num_threads = 0);
std::vector<SmootherResult> smoother(const Params& params, const std::vector<Sequence>& seqs, int num_threads = 0);

}  // namespace lgssm
