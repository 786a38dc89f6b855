/// @file
/// Online inference: the Kalman filter one observation at a time, and a
/// fixed-lag smoother for streams.
///
/// Time index: that of params.hpp. A stream's steps are numbered t = 0, 1, ...
/// by the number of steps taken; step t uses emission entry t and (for t >= 1)
/// dynamics entry t - 1 of per-step parameters, the input u_t drives the
/// transition into step t and the emission at step t, and step 0 starts from
/// the initial distribution (u_0 enters only y_0). So filter_step over
/// y_0, ..., y_{T-1} with u_0, ..., u_{T-1} gives, step by step, exactly what
/// lgssm::filter gives for the sequence: the same code (the square-root array
/// filter of src/kalman.hpp) runs both. Missing data: NaN components of y_t,
/// as in inference.hpp.
///
/// Cost: a step costs a step of the batch filter and allocates no heap memory
/// (the state holds the workspaces; LGSSM_CHECK_NO_MALLOC builds assert it).
/// filter_step checks dimensions, the step's data and the length of per-step
/// parameters (O(1)); the values of the parameters (definiteness of the
/// covariances) are checked by filter_init and by lgssm::validate, which
/// params passed to filter_step must pass.
///
/// Params may change between steps. Like the batch filter, a step reuses the
/// factors of the emission entries (Cholesky of R_t, QR of the whitened H_t)
/// of the step before when they are the same entry; how "the same" is decided
/// is the state's check_params: true (the default), the entries' values are
/// compared (O(p n + p^2) per step, which exceeds the step's own cost when
/// emission_dim is large and R diagonal); false, the factors are kept while
/// the step gets the same Params object (by address), so its values must not
/// change in place between steps and another object must not take its
/// address (the Python API, which converts each ParamsLGSSM once and keeps the
/// converted object alive, runs so).
#pragma once

#include <memory>

#include "lgssm/params.hpp"

namespace lgssm {

/// The Kalman filter's state between observations of a stream: the filtered
/// moments of the last step, the number of steps taken and log p(y) so far,
/// with the workspaces of a step. Made by filter_init, advanced by filter_step
/// and predict_step; copyable (a copy is an independent snapshot of the stream).
class FilterState {
 public:
  /// A state after `num_timesteps` steps with filtered moments (mean, cov) of
  /// z_{t-1} (t = num_timesteps >= 1): to resume a stream, e.g. from saved
  /// values. For t = 0 the moments are those reported before the first step
  /// (the next step starts from the initial distribution of its params).
  /// @param state_dim the model's state_dim
  /// @param emission_dim its emission_dim
  /// @param input_dim its input_dim (0 without inputs)
  /// @param num_timesteps t >= 0, the steps taken
  /// @param marginal_loglik log p(y_{0:t-1})
  /// @param mean (state_dim,) E[z_{t-1} | y_{0:t-1}]
  /// @param cov (state_dim, state_dim) Cov[z_{t-1} | y_{0:t-1}], symmetric positive semidefinite
  /// @param check_params how steps decide that params are unchanged (see the file's comment)
  FilterState(Eigen::Index state_dim, Eigen::Index emission_dim, Eigen::Index input_dim, Eigen::Index num_timesteps,
              double marginal_loglik, const Vector& mean, const Matrix& cov, bool check_params = true);
  FilterState(const FilterState& other);
  FilterState(FilterState&& other) noexcept;
  FilterState& operator=(const FilterState& other);
  FilterState& operator=(FilterState&& other) noexcept;
  ~FilterState();

  Eigen::Index state_dim() const;     ///< n
  Eigen::Index emission_dim() const;  ///< p
  Eigen::Index input_dim() const;     ///< input_dim (0 without inputs)
  /// The number of steps taken t, which is the index of the next step.
  Eigen::Index num_timesteps() const;
  /// log p(y_{0:t-1}) over the observed components (0 before the first step).
  double marginal_loglik() const;
  /// Whether steps compare the emission entries (true) or the params object (false); see the file's comment.
  bool check_params() const;
  /// E[z_{t-1} | y_{0:t-1}] after t >= 1 steps; initial.mean after filter_init.
  Vector filtered_mean() const;
  /// Cov[z_{t-1} | y_{0:t-1}] after t >= 1 steps; initial.cov after filter_init.
  Matrix filtered_cov() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  explicit FilterState(std::unique_ptr<Impl> impl);
  friend class FixedLagSmoother;
  friend FilterState filter_init(const Params& params, bool check_params);
  friend double filter_step(const Params& params, FilterState& state, const Eigen::Ref<const Vector>& emission,
                            const Eigen::Ref<const Vector>& input);
  friend void predict_step(const Params& params, FilterState& state, const Eigen::Ref<const Vector>& input);
};

/// The state of a stream before its first step (t = 0), for `params`
/// (validated; lgssm::invalid_argument names the first bad parameter).
/// @param params the model
/// @param check_params whether steps compare the emission entries' values (true) or
///        only the params object's address (false) to reuse factors (see the file's comment)
/// @return a state with num_timesteps() = 0, whose next step starts from the
///         initial distribution N(initial.mean, initial.cov)
FilterState filter_init(const Params& params, bool check_params = true);

/// One step t = state.num_timesteps() of the Kalman filter, in place: the
/// prediction p(z_t | y_{0:t-1}) (Sarkka 2013, Eq. 4.20: m- = F_{t-1} m +
/// B_{t-1} u_t + b_{t-1}, P- = F_{t-1} P F_{t-1}^T + Q_{t-1}; the initial
/// distribution at t = 0), then the update on the observed components of
/// y_t (Eq. 4.21: v = y - H m- - D u - d, S = H P- H^T + R,
/// K = P- H^T S^{-1}, m = m- + K v, P = P- - K S K^T), in the square-root
/// array form of src/kalman.hpp (no predicted covariance inverted, the log
/// likelihood a sum of squares); log p(y_t | y_{0:t-1}) = log N(v; 0, S)
/// (Sec. 12.2). Exactly lgssm::filter's step t.
/// @param params the model (dimensions those of the state, valid as lgssm::validate checks)
/// @param state advanced to t + 1 steps: its filtered moments become those of z_t given y_{0:t}
/// @param emission (emission_dim,) y_t, NaN for missing components (all NaN: a prediction step)
/// @param input (input_dim,) u_t, or empty for zero inputs
/// @return log p(y_t | y_{0:t-1}) over the observed components (0 if none)
/// @note See Eq. 4.20-4.21 and Sec. 12.2 of Sarkka (2013).
double filter_step(const Params& params, FilterState& state, const Eigen::Ref<const Vector>& emission,
                   const Eigen::Ref<const Vector>& input = Vector());

/// One step t = state.num_timesteps() without an observation, in place:
/// the prediction of Sarkka (2013), Eq. 4.20, so that the state's moments
/// become those of p(z_t | y_{0:t-1}); the same as filter_step with y_t all
/// missing. Repeated calls forecast (lgssm::forecast's state moments).
/// @param params the model
/// @param state advanced to t + 1 steps
/// @param input (input_dim,) u_t, or empty for zero inputs
/// @note See Eq. 4.20 of Sarkka (2013).
void predict_step(const Params& params, FilterState& state, const Eigen::Ref<const Vector>& input = Vector());

/// The fixed-lag smoother of a stream: after observing y_t, the smoothed
/// moments of z_s given y_{0:t} for the window s = max(0, t - lag) .. t.
///
/// Exact, by reprocessing the window: each step runs the filter step of
/// filter_step (keeping the backward terms of its update), then the backward
/// recursion of the batch smoother (Bryson-Frazier / de Jong, the one of
/// lgssm::smoother, src/kalman.hpp) from t down to the window's start, so the
/// window holds what lgssm::smoother returns for y_{0:t} at those steps (the
/// RTS moments, Sarkka 2013, Theorem 8.2). Cost per step O(lag n^3) time and
/// O(lag n^2) memory, allocated once. An augmented state (z_{t-lag..t}, with
/// the filter of dimension (lag + 1) n) would give the same moments at
/// O(lag^3 n^3) per step; the recursion also needs no inverse of a predicted
/// covariance (singular Q, exactly observed components) where the smoothing
/// gain form P F^T P-^{-1} would.
class FixedLagSmoother {
 public:
  /// @param params the model, copied (validated: lgssm::invalid_argument names the first bad parameter)
  /// @param lag L >= 0, the steps smoothed behind the latest observation
  FixedLagSmoother(const Params& params, Eigen::Index lag);
  FixedLagSmoother(const FixedLagSmoother& other);
  FixedLagSmoother(FixedLagSmoother&& other) noexcept;
  FixedLagSmoother& operator=(const FixedLagSmoother& other);
  FixedLagSmoother& operator=(FixedLagSmoother&& other) noexcept;
  ~FixedLagSmoother();

  /// Observes step t = num_timesteps(): filter_step on y_t, u_t, then the
  /// backward pass over the window.
  /// @param emission (emission_dim,) y_t, NaN for missing components
  /// @param input (input_dim,) u_t, or empty for zero inputs
  /// @return log p(y_t | y_{0:t-1})
  double step(const Eigen::Ref<const Vector>& emission, const Eigen::Ref<const Vector>& input = Vector());

  Eigen::Index lag() const;            ///< L
  Eigen::Index num_timesteps() const;  ///< steps observed, t + 1 after step t
  double marginal_loglik() const;      ///< log p(y_{0:t})
  /// The first step s0 = max(0, t - L) of the window (0 before the first step).
  Eigen::Index window_start() const;
  /// E[z_{s0} | y_{0:t}]: the lagged estimate (the window's first row).
  Vector lagged_mean() const;
  /// Cov[z_{s0} | y_{0:t}].
  Matrix lagged_cov() const;
  /// (window_size, state_dim): row i is E[z_{s0+i} | y_{0:t}], window_size = t - s0 + 1
  /// (0 before the first step); row 0 is the lagged estimate, the last row the filtered mean.
  RowMatrix smoothed_means() const;
  /// (window_size, state_dim, state_dim): entry i is Cov[z_{s0+i} | y_{0:t}].
  MatrixSeries smoothed_covariances() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lgssm
