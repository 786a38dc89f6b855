// The Kalman filter recursion, one step at a time (private).
#pragma once

#include <Eigen/Cholesky>
#include <vector>

#include "lgssm/params.hpp"
#include "linalg.hpp"

namespace lgssm::internal {

// Holds the current moments (mean(), cov()) and the workspaces of one pass.
// Usage per step t: predict(t, u_t) turns the moments into p(z_t | y_{0:t-1})
// (for t = 0: the initial distribution), then update(t) conditions them on the
// observed components of y_t and returns log p(y_t | y_{0:t-1}).
//
// The update is the square-root information form of the Kalman update. With
// the observed components o, R_oo = L_R L_R^T, W = L_R^{-1} H_o, G = W^T W,
// e = L_R^{-1} r (r the innovation) and P = C C^T, put M = I + C^T G C = U^T U:
//   P+ = C M^{-1} C^T,  m+ = m + C M^{-1} C^T W^T e,
//   log|S| = log|R_oo| + log|M|,  r^T S^{-1} r = e^T e - |U^{-T} C^T W^T e|^2,
// (S = H_o P H_o^T + R_oo; Woodbury's identity), so only n x n systems are
// factored per step. W and G depend only on (H_t, R_t, pattern of o) and are
// recomputed only when that triple changes.
//
// N is the state dimension at compile time, or Eigen::Dynamic (see
// dispatch_state_dim); the instances are compiled in kalman.cpp.
template <int N = Eigen::Dynamic>
class KalmanFilter {
 public:
  using Vec = VectorN<N>;
  using Mat = MatrixN<N>;

  KalmanFilter(const Params& params, const RowMatrix& emissions);

  // m <- F_t m + B_t u_t + b_t, P <- F_t P F_t^T + Q_t (t >= 1); the prior at t = 0.
  void predict(Eigen::Index t, const Eigen::Ref<const Vector>& u);
  // Conditions on the observed components of y_t (emission parameters of step t).
  double update(Eigen::Index t, const Eigen::Ref<const Vector>& u);

  const Vec& mean() const { return mean_; }
  const Mat& cov() const { return cov_; }

 private:
  void prepare_whitening(Eigen::Index t);

  const Params& params_;
  const RowMatrix& emissions_;
  Eigen::Index n_, p_;
  std::vector<char> cov_is_diagonal_;  // per emissions.cov entry

  Vec mean_;
  Mat cov_;
  // Workspaces.
  Vec tmp_n_;
  Mat tmp_nn_;
  Vector y_hat_;             // (p)
  Vector resid_;             // (p): head(po) = whitened innovation e
  std::vector<char> observed_, last_observed_;
  Eigen::Index num_observed_ = 0;
  Eigen::Index last_weights_ = -1, last_cov_ = -1;
  Matrix chol_r_;            // (p, p): top-left po x po holds L_R (or diag sqrt)
  Eigen::Matrix<double, Eigen::Dynamic, N> whitened_;  // (p, n): top po rows hold W
  Mat gram_;                 // G
  double log_det_r_ = 0.0;
  PsdFactor<N> factor_;
  Mat m_mat_;                // M
  Eigen::LLT<Mat> llt_m_;
  Mat c_u_;                  // C U^{-1}
  Vec v_;
};

extern template class KalmanFilter<1>;
extern template class KalmanFilter<2>;
extern template class KalmanFilter<3>;
extern template class KalmanFilter<4>;
extern template class KalmanFilter<Eigen::Dynamic>;

}  // namespace lgssm::internal
