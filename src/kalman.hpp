// The Kalman filter recursion, one step at a time (private).
#pragma once

#include <Eigen/Cholesky>
#include <vector>

#include "lgssm/params.hpp"
#include "linalg.hpp"

namespace lgssm::internal {

// Holds the current moments (mean(), cov(), kept as a factor C with cov() = C C^T)
// and the workspaces of one pass. Usage per step t: predict(t, u_t) turns the
// moments into p(z_t | y_{0:t-1}) (for t = 0: the initial distribution), then
// update(t) conditions them on the observed components of y_t and returns
// log p(y_t | y_{0:t-1}).
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
//   pattern of N) and are recomputed only when that triple changes.
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
// N is the state dimension at compile time, or Eigen::Dynamic (see
// dispatch_state_dim); the instances are compiled in kalman.cpp.
template <int N = Eigen::Dynamic>
class KalmanFilter {
 public:
  using Vec = VectorN<N>;
  using Mat = MatrixN<N>;

  KalmanFilter(const Params& params, const RowMatrix& emissions, bool keep_backward = false);

  // m <- F_t m + B_t u_t + b_t, P <- F_t P F_t^T + Q_t (t >= 1); the prior at t = 0.
  void predict(Eigen::Index t, const Eigen::Ref<const Vector>& u);
  // Conditions on the observed components of y_t (emission parameters of step t).
  // Returns -inf when the terms overflow (data too large for doubles).
  double update(Eigen::Index t, const Eigen::Ref<const Vector>& u);

  const Vec& mean() const { return mean_; }
  const Mat& cov() const { return cov_; }
  // The backward-recursion terms of the last update (keep_backward only).
  const Vec& backward_a() const { return back_a_; }
  const Mat& backward_omega() const { return back_omega_; }
  const Mat& backward_transition() const { return back_a_mat_; }

 private:
  void prepare(Eigen::Index t);
  double update_exact(Eigen::Index t);

  const Params& params_;
  const RowMatrix& emissions_;
  Eigen::Index n_, p_;
  std::vector<char> cov_is_diagonal_;  // per emissions.cov entry

  Vec mean_;
  Mat cov_;
  Mat factor_;  // C with cov_ = C C^T
  PsdFactor<N> psd_;
  // Workspaces.
  Vec tmp_n_;
  Mat tmp_nn_;
  Vector y_hat_;  // (p): D_t u_t + d_t of the current step (H m is added per component)
  Vector resid_;  // (p): head(|N|) = whitened innovation e
  Vector work_;   // (p + 2n): Householder workspace
  // Components of y_t: observed noisy ones, exactly observed ones; and the
  // pattern (0 missing, 1 noisy, 2 exact) for which the factors below hold.
  std::vector<Eigen::Index> noisy_, exact_;
  std::vector<char> pattern_, last_pattern_;
  Eigen::Index last_weights_ = -1, last_cov_ = -1;
  Matrix chol_r_;                                // (p, p): top-left |N| x |N| holds L_R
  std::vector<Eigen::Index> order_;              // rows of W by decreasing norm
  Eigen::Matrix<double, Eigen::Dynamic, N> w_;   // (p, n): W, sorted, then the reflectors
  Eigen::Matrix<double, Eigen::Dynamic, N> q1_;  // (p, n): top |N| x min(|N|, n) holds Q1 (unsorted rows)
  Eigen::Matrix<double, Eigen::Dynamic, N> q1_sorted_;
  Mat t_;  // T, zero rows below min(|N|, n)
  double log_det_r_ = 0.0;
  Vec e_tilde_;
  static constexpr int kTwoN = N == Eigen::Dynamic ? Eigen::Dynamic : 2 * N;
  Eigen::Matrix<double, kTwoN, kTwoN> array_;  // [[I, T C], [0, C]]
  Vec w_n_;
  Mat j_;  // J = L^{-1} T
  // Exactly observed components: the pre-array [H_E C; C], (|E| + n, n).
  Eigen::Matrix<double, Eigen::Dynamic, N> exact_array_;
  Eigen::Matrix<double, Eigen::Dynamic, N> j_exact_;    // (p, n): top |E| rows hold J_E
  Eigen::Matrix<double, Eigen::Dynamic, N> j_exact_a_;  // (p, n): top |E| rows hold J_E A_N
  Vector exact_resid_;
  bool keep_backward_;
  Vec back_a_;
  Mat back_omega_, back_a_mat_;
};

extern template class KalmanFilter<1>;
extern template class KalmanFilter<2>;
extern template class KalmanFilter<3>;
extern template class KalmanFilter<4>;
extern template class KalmanFilter<Eigen::Dynamic>;

}  // namespace lgssm::internal
