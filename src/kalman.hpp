// The Kalman filter recursion, one step at a time (private).
#pragma once

#include <Eigen/Cholesky>
#include <limits>
#include <vector>

#include "lgssm/params.hpp"
#include "linalg.hpp"

namespace lgssm::internal {

// Holds the current moments (mean(), cov(), kept as a factor C with cov() = C C^T)
// and the workspaces of a pass: the one step of the filter, which the batch
// functions (inference.cpp) and the streaming filter (streaming.cpp) both run.
// Usage per step t: predict(params, t, u_t) turns the moments into
// p(z_t | y_{0:t-1}) (for t = 0: the initial distribution), then
// update(params, t, y_t, u_t) conditions them on the observed components of
// y_t and returns log p(y_t | y_{0:t-1}).
//
// Predict: m <- F m + B u + b, P <- F P F^T + Q (a sum of semidefinite terms),
// factored P = C C^T (Cholesky, or pivoted LDL^T when P is singular).
//
// Update. The observed components o split into the noisy ones N (R_ii > 0;
// R_NN is positive definite) and the exactly observed ones E (zero row and
// column of R). They are conditioned on in turn, which is exact because their
// noises are independent. Both use the array form of the square-root filter
// (Kailath, Sayed & Hassibi, "Linear Estimation", 2000, Sec. 12.3): an
// orthogonal Theta with
//   [[Rs, Hs C], [0, C]] Theta = [[L, 0], [Kb, C+]],
//   L L^T = Hs P Hs^T + Rs = S,  Kb = P Hs^T L^{-T},  C+ C+^T = P+,
//   w = L^{-1} r,  m+ = m + Kb w,  log p = -(k log 2 pi + log|S| + |w|^2) / 2,
// so the quadratic form is a plain sum of squares (never the cancelling
// |e|^2 - |v|^2) and P+ is semidefinite by construction.
// - Noisy, collapsed first: with R_NN = L_R L_R^T, W = L_R^{-1} H_N = Q1 T
//   (thin QR, Q1 with orthonormal columns, T n x n upper triangular, zero rows
//   when |N| < n) and e = L_R^{-1} r_N, the observation carries the same
//   information about z as e~ = Q1^T e = T z + noise of unit covariance, and
//   e_perp = e - Q1 e~ carries none: Hs = T, Rs = I, r = e~, plus
//   log|R_NN| and |e_perp|^2. Q1, T and log|R_NN| depend only on (H_t, R_t,
//   pattern of N) and are recomputed only when that triple changes: when the
//   pattern or the entry indices of H_t, R_t change, and with
//   `compare_entries` (a stream, whose params may differ between calls) also
//   when the entries' values differ from those the factors were made from
//   (an O(p n + p^2) comparison); forget_factors() drops them.
// - Exact: Hs = H_E, Rs = 0. S_E must be definite: an exactly observed
//   component already determined by the past has no density (an error).
// With `keep_backward`, update() also leaves the terms of the backward
// (Bryson-Frazier / de Jong) recursion of the step, with J = L^{-1} Hs:
//   a = H^T S^{-1} v = J^T w,  Omega = H^T S^{-1} H = J^T J,  A = I - K H = I - Kb J,
// composed over the two stages (a = a_N + A_N^T a_E, Omega = Omega_N +
// A_N^T Omega_E A_N, A = A_E A_N), and a = 0, Omega = 0, A = I with nothing
// observed.
// No predicted covariance is ever inverted.
//
// Steady state. With time-invariant F, Q, H, R and one missing pattern, the
// covariance recursion (the Riccati recursion, contractive) converges to a
// fixed point. Once the predicted covariance has changed by at most 4 ulps
// (of its largest entry) over two consecutive steps, predict() and update()
// keep the step's covariances, factors and gains and run the mean recursion
// alone (O(n^2 + p n) a step instead of O(n^3)); a step of another pattern
// (or with exactly observed components) resumes the full recursion from the
// fixed point, a step with nothing observed leaves it, and the next calm
// steps re-enter it.
//
// Collapsed observations. Given the sequence ahead (look_ahead), a run of
// steps whose noisy components and factors (Q1, T, L_R) are those of the
// current step has its data terms computed at once, as matrix products over
// the run (up to a cache-sized number of steps): with y~_t = L_R^{-1} (y_N -
// D_N u_t - d_N), state-free,
//   z_t = Q1^T y~_t,  e_perp_t = y~_t - Q1 z_t  (Q1^T W = T, so e~ = z_t - T m),
// and each step then costs O(n^2) in p (O(n^3) outside the steady state)
// instead of O(p n + p^2). This needs time-invariant H and R, more noisy
// components than states (otherwise e_perp vanishes and there is nothing to
// collapse), no exactly observed ones, and one column (G = 1).
//
// Columns. The covariances, gains and factors do not depend on the data, so
// sequences that share the parameters, the length and the missing pattern
// share them: with G > 1 columns (G = Eigen::Dynamic, `width` of them at run
// time), the means are an (n, width) matrix, one column per sequence, and
// y_t, u_t are (p, width) and (m, width) matrices whose NaN entries are the
// same in every column (the pattern is read off column 0). Every mean,
// innovation and quadratic form above is then the same operation on all
// columns at once (matrix products instead of matrix-vector ones), and the
// covariance recursion runs once for all of them.
//
// N is the state dimension at compile time, or Eigen::Dynamic (see
// dispatch_state_dim); the instances are compiled in kalman.cpp.
template <int N = Eigen::Dynamic, int G = 1>
class KalmanFilter {
 public:
  using Vec = VectorN<N>;
  using Mat = MatrixN<N>;
  using Means = Eigen::Matrix<double, N, G>;                 // (n, width); Vec when G = 1
  using Columns = Eigen::Matrix<double, Eigen::Dynamic, G>;  // (dim, width); Vector when G = 1
  using Row = Eigen::Matrix<double, 1, G>;                   // one entry per column

  // Workspaces for models of `state_dim` and `emission_dim`; every call takes
  // params of these dimensions, validated, and data of `width` columns.
  KalmanFilter(Eigen::Index state_dim, Eigen::Index emission_dim, bool keep_backward = false,
               bool compare_entries = false, Eigen::Index width = 1);

  // m <- F_{t-1} m + B_{t-1} u + b_{t-1}, P <- F_{t-1} P F_{t-1}^T + Q_{t-1}
  // (dynamics entry t - 1: the transition into step t, t >= 1); the prior at t = 0.
  // `u` is u_t, or empty for zero inputs.
  void predict(const Params& params, Eigen::Index t, const Eigen::Ref<const Columns>& u);
  // Conditions on the observed (non-NaN) components of y (y_t, emission
  // parameters of step t). Returns the sum over the columns of the step's
  // log likelihoods (column_loglik()), -inf for a column whose terms
  // overflow (data too large for doubles).
  double update(const Params& params, Eigen::Index t, const Eigen::Ref<const Columns>& y,
                const Eigen::Ref<const Columns>& u);
  // Each column's log p(y_t | y_{0:t-1}) of the last update.
  const Row& column_loglik() const { return column_loglik_; }
  Eigen::Index width() const { return mean_.cols(); }

  // The next update recomputes the emission factors (params changed).
  void forget_factors() {
    last_weights_ = last_cov_ = noisy_cov_ = -1;
    leave_steady_state();
    run_end_ = run_begin_;
  }
  // The updates that follow are of `seq` (its steps in order; G = 1): they
  // may collapse its observations (see above). Allocates the workspaces.
  void look_ahead(const Sequence& seq);

  const Means& mean() const { return mean_; }
  const Mat& cov() const { return cov_; }
  // Sets the moments (the next predict(params, t >= 1, u) starts from them).
  template <class M, class P>
  void set_moments(const Eigen::MatrixBase<M>& mean, const Eigen::MatrixBase<P>& cov) {
    mean_ = mean;
    cov_ = cov;
    leave_steady_state();
  }
  // The backward-recursion terms of the last update (keep_backward only).
  const Means& backward_a() const { return back_a_; }
  const Mat& backward_omega() const { return back_omega_; }
  const Mat& backward_transition() const { return back_a_mat_; }

 private:
  void prepare(const LinearGaussianParams& e, Eigen::Index t);
  bool prepared_for(const LinearGaussianParams& e, Eigen::Index t) const;
  // Whether step t's data terms come from the run (computing the run from t if needed).
  bool collapsed(const LinearGaussianParams& e, Eigen::Index t);
  // Adds the exactly observed components' terms to column_loglik_.
  void update_exact(const LinearGaussianParams& e, Eigen::Index t, const Eigen::Ref<const Columns>& y);

  Eigen::Index n_, p_;

  Means mean_;
  Mat cov_;
  Mat factor_;  // C with cov_ = C C^T
  PsdFactor<N> psd_;
  // Workspaces.
  Means tmp_n_;
  Mat tmp_nn_;
  Columns y_hat_;  // (p, width): D_t u_t + d_t of the current step
  Columns h_m_;    // (p, width): H_t m
  Columns resid_;  // (p, width): top |N| rows = whitened innovation e
  Row quad_, column_loglik_;
  Vector work_;  // (p + 2n): Householder workspace
  // Components of y_t: observed noisy ones, exactly observed ones; and the
  // pattern (0 missing, 1 noisy, 2 exact) for which the factors below hold.
  std::vector<Eigen::Index> noisy_, exact_;
  std::vector<char> pattern_, last_pattern_;
  std::vector<char> positive_var_;  // R_ii > 0 for the entry noisy_cov_ of the emission covariances
  Eigen::Index noisy_cov_ = -1;
  Eigen::Index last_weights_ = -1, last_cov_ = -1;
  bool compare_entries_;
  RowMatrix prepared_h_, prepared_r_;            // with compare_entries_: the H_t, R_t of the factors
  bool noisy_cov_is_diagonal_ = false;           // R_NN diagonal
  Matrix chol_r_;                                // (p, p): top-left |N| x |N| holds L_R
  std::vector<Eigen::Index> order_;              // rows of W by decreasing norm
  Eigen::Matrix<double, Eigen::Dynamic, N> w_;   // (p, n): W, sorted, then the reflectors
  Eigen::Matrix<double, Eigen::Dynamic, N> q1_;  // (p, n): top |N| x min(|N|, n) holds Q1 (unsorted rows)
  Eigen::Matrix<double, Eigen::Dynamic, N> q1_sorted_;
  Mat t_;  // T, zero rows below min(|N|, n)
  double log_det_r_ = 0.0;
  Means e_tilde_;
  static constexpr int kTwoN = N == Eigen::Dynamic ? Eigen::Dynamic : 2 * N;
  Eigen::Matrix<double, kTwoN, kTwoN> array_;  // [[I, T C], [0, C]]
  Means w_n_;                                  // (n, width); also the QR's Householder coefficients (n of them)
  Mat j_;                                      // J = L^{-1} T
  // Exactly observed components: the pre-array [H_E C; C], (|E| + n, n).
  Eigen::Matrix<double, Eigen::Dynamic, N> exact_array_;
  Eigen::Matrix<double, Eigen::Dynamic, N> j_exact_;    // (p, n): top |E| rows hold J_E
  Eigen::Matrix<double, Eigen::Dynamic, N> j_exact_a_;  // (p, n): top |E| rows hold J_E A_N
  Columns exact_resid_;
  bool keep_backward_;
  Means back_a_;
  Mat back_omega_, back_a_mat_;
  // The collapsed run [run_begin_, run_end_) of the sequence ahead: z_t in
  // the columns of run_z_ (top min(|N|, n) rows), |e_perp_t|^2 in run_perp_;
  // run_data_ is the (|N|, steps) workspace of y~.
  const Sequence* ahead_ = nullptr;
  Matrix run_data_, run_z_;
  Vector run_perp_;
  Eigen::Index run_begin_ = 0, run_end_ = 0;
  // The steady state (see the class comment).
  void leave_steady_state();
  double log_det_s_ = 0.0;  // log|L L^T| of the last array
  Mat last_predicted_cov_, last_predicted_factor_, steady_filtered_cov_;
  int calm_steps_ = 0;             // consecutive predicts that changed the covariance by a few ulps at most
  bool steady_ = false;            // the last update ended at the fixed point
  bool predicted_steady_ = false;  // the last predict took the fixed point's moments
};

// The backward recursion of the smoother, one step at a time: the batch
// smoother (inference.cpp) runs it over the whole sequence, the fixed-lag
// smoother (streaming.cpp) over its window. Bryson & Frazier's recursion on
// information in de Jong's form (de Jong 1989, Ann. Statist. 17; Durbin &
// Koopman 2012, Sec. 4.4), written at the filtered level. r_t, N_t are the
// score and information about z_t carried by the data after step t (zero at
// the last step: reset()):
//   m_{t|T} = m_{t|t} + P_{t|t} r_t,   P_{t|T} = P_{t|t} - P_{t|t} N_t P_{t|t},
//   r^-_t = a_t + A_t^T r_t,   N^-_t = Omega_t + A_t^T N_t A_t   (the update of step t),
//   r_{t-1} = F_{t-1}^T r^-_t,  N_{t-1} = F_{t-1}^T N^-_t F_{t-1}   (the transition),
//   Cov[z_t, z_{t-1} | y] = (I - P_{t|t-1} N^-_t) F_{t-1} P_{t-1|t-1},
// with (a_t, A_t, Omega_t) the update's terms (KalmanFilter::backward_*).
// No covariance is inverted: information flows backward through F^T, so
// deterministic dynamics (singular Q) with a contracting F, whose inverse the
// Rauch-Tung-Striebel gain P_{t|t} F^T P_{t+1|t}^{-1} would apply, lose
// nothing. Per step t: smooth_mean (and smooth_cov for the covariances), then,
// for t > 0, transition_mean (and transition_cov, cross_cov). Allocates nothing.
// With G columns (KalmanFilter's), the scores and means are (n, width)
// matrices, one column per sequence; the information terms are shared.
//
// Steady state. Backward, N_{t-1} = F^T Omega F + (A F)^T N_t (A F) with
// the closed-loop A F of the filter (stable): a contraction whose fixed point
// N is reached in the middle of a long sequence once the filter is at its own
// (KalmanFilter's steady state: its P_{t|t}, A_t, Omega_t repeat exactly).
// When the inputs of a step equal the later step's (smooth_cov's `same`) and
// N has changed by at most 4 ulps (of its largest entry) over two such steps,
// the covariance terms (P_{t|T}, N^-_t, N_{t-1}, the cross covariance) are
// kept and only the means run (O(n^2) a step instead of O(n^3)); a step whose
// inputs differ resumes the full recursion.
template <int N = Eigen::Dynamic, int G = 1>
class BackwardRecursion {
 public:
  using Means = Eigen::Matrix<double, N, G>;
  using Mat = MatrixN<N>;

  explicit BackwardRecursion(Eigen::Index n, Eigen::Index width = 1)
      : score_(Means::Zero(n, width)),
        score_minus_(n, width),
        info_(Mat::Zero(n, n)),
        info_minus_(n, n),
        smoothed_(n, n),
        cross_(n, n),
        tmp_(n, n),
        tmp2_(n, n) {}

  // r = 0, N = 0: no data after the current step.
  void reset() {
    score_.setZero();
    info_.setZero();
    steady_ = skip_ = same_ = false;
    calm_steps_ = 0;
  }
  // out = m_{t|T}; then r^-_t.
  template <class Mean, class Cov, class A, class AMat, class Out>
  void smooth_mean(const Mean& filtered_mean, const Cov& filtered_cov, const A& a, const AMat& a_mat, Out&& out) {
    out = filtered_mean;
    out.noalias() += columns_product(filtered_cov, score_);
    score_minus_ = a;
    score_minus_.noalias() += columns_product(a_mat.transpose(), score_);
  }
  // out = P_{t|T} (a symmetric matrix, so it may be a row-major entry); then N^-_t.
  // `same`: this step's P_{t|t}, A_t, Omega_t and (for t > 0) F_{t-1},
  // P_{t|t-1}, P_{t-1|t-1} equal the later step's (see the steady state above).
  template <class Cov, class AMat, class Omega, class Out>
  void smooth_cov(const Cov& filtered_cov, const AMat& a_mat, const Omega& omega, Out&& out, bool same = false) {
    same_ = same;
    skip_ = same && steady_;
    if (!same) {
      steady_ = false;
      calm_steps_ = 0;
    }
    if (!skip_) {
      tmp_.noalias() = info_ * filtered_cov;
      smoothed_ = filtered_cov;
      smoothed_.noalias() -= filtered_cov * tmp_;
      symmetrize(smoothed_);
      tmp_.noalias() = info_ * a_mat;
      info_minus_ = omega;
      info_minus_.noalias() += a_mat.transpose() * tmp_;
    }
    out = smoothed_.transpose();
  }
  // r_{t-1}, N_{t-1} after transition_mean / transition_cov (zero after reset()).
  const Means& score() const { return score_; }
  const Mat& info() const { return info_; }
  // r^-_t after smooth_mean, N^-_t after smooth_cov.
  const Means& score_minus() const { return score_minus_; }
  const Mat& info_minus() const { return info_minus_; }
  // r_{t-1} from r^-_t through F = F_{t-1}.
  template <class F>
  void transition_mean(const F& f) {
    score_.noalias() = columns_product(f.transpose(), score_minus_);
  }
  // N_{t-1} from N^-_t through F = F_{t-1}.
  template <class F>
  void transition_cov(const F& f) {
    if (skip_) return;
    tmp_.noalias() = info_minus_ * f;
    tmp2_.noalias() = f.transpose() * tmp_;
    symmetrize(tmp2_);
    const double change = (tmp2_ - info_).cwiseAbs().maxCoeff();
    calm_steps_ = same_ && change <= 4.0 * std::numeric_limits<double>::epsilon() * tmp2_.cwiseAbs().maxCoeff()
                      ? calm_steps_ + 1
                      : 0;
    steady_ = calm_steps_ >= 2;
    info_ = tmp2_;
  }
  // After transition_cov: out = Cov[z_t, z_{t-1} | y] from F_{t-1}, P_{t|t-1} and P_{t-1|t-1}.
  template <class F, class Predicted, class PreviousFiltered, class Out>
  void cross_cov(const F& f, const Predicted& predicted_cov, const PreviousFiltered& previous_filtered_cov, Out&& out) {
    if (!skip_) {
      tmp2_.setIdentity();
      tmp2_.noalias() -= predicted_cov * info_minus_;
      tmp_.noalias() = f * previous_filtered_cov;
      cross_.noalias() = tmp2_ * tmp_;
    }
    out = cross_;
  }

 private:
  Means score_, score_minus_;
  Mat info_, info_minus_, smoothed_, cross_, tmp_, tmp2_;
  // The steady state: calm steps (same inputs, N changed by a few ulps at
  // most), whether N is at its fixed point, whether this step reuses the
  // fixed point's terms, and smooth_cov's `same`.
  int calm_steps_ = 0;
  bool steady_ = false, skip_ = false, same_ = false;
};

extern template class KalmanFilter<1>;
extern template class KalmanFilter<2>;
extern template class KalmanFilter<3>;
extern template class KalmanFilter<4>;
extern template class KalmanFilter<Eigen::Dynamic>;
extern template class KalmanFilter<1, Eigen::Dynamic>;
extern template class KalmanFilter<2, Eigen::Dynamic>;
extern template class KalmanFilter<3, Eigen::Dynamic>;
extern template class KalmanFilter<4, Eigen::Dynamic>;
extern template class KalmanFilter<Eigen::Dynamic, Eigen::Dynamic>;

}  // namespace lgssm::internal
