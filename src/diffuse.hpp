// The exact initial Kalman filter and smoother for a diffuse initial state
// (private; inference.cpp runs them over the diffuse period and hands over to
// KalmanFilter / BackwardRecursion, kalman.hpp).
//
// Model: z_0 ~ N(m, P_* + kappa P_inf), P_inf = A A^T, kappa -> infinity
// (Durbin & Koopman 2012, "Time Series Analysis by State Space Methods", 2nd
// ed., Sec. 5.1). Every quantity is the exact limit kappa -> infinity.
//
// Filter: the univariate (sequential) form of Koopman & Durbin (2000, J. Time
// Series Analysis 21, "Fast filtering and smoothing for multivariate state
// space models", Sec. 4) = Durbin & Koopman (2012), Sec. 6.4.2 / eq. 5.15 for
// one component. The observed components of y_t are processed one at a time;
// they must have independent noises, so with a non-diagonal R_oo they are
// first transformed exactly: R_oo = P^T L D L^T P (pivoted LDL^T, L unit lower
// triangular, so the Jacobian is 1 and the likelihood unchanged), component i
// of y* = L^{-1} P (y_o - D u - d) has row z_i of L^{-1} P H_o and variance D_i.
// For one component (row z, noise variance s2, residual v = y*_i - z a):
//   F_inf = z P_inf z^T = |A^T z|^2,  F_* = z P_* z^T + s2,
//   M_inf = P_inf z^T,  M_* = P_* z^T.
// F_inf > 0 (|A^T z| > 64 eps |A| |z|):
//   K0 = M_inf / F_inf,  K1 = (M_* - K0 F_*) / F_inf,
//   a <- a + K0 v,
//   P_* <- P_* + K0 K0^T F_* - K0 M_*^T - M_* K0^T   (= P_* L0^T + P_inf L1^T),
//   P_inf <- P_inf - M_inf M_inf^T / F_inf,
//   log L += -(log 2 pi + log F_inf) / 2                 (DK 2012 eq. 7.4);
// the P_inf update is done on the factor: an orthogonal Theta with
// Theta^T A^T z = |A^T z| e_1 gives A Theta = [a_1, A'], A' A'^T the new P_inf
// and K0 = a_1 / |A^T z|, so the rank drops by exactly one and the diffuse
// period ends when A has no column left (no tolerance on P_inf = 0).
// F_inf = 0: the ordinary update with K = M_* / F_*: a <- a + K v,
//   P_* <- P_* - K M_*^T, P_inf unchanged, log L += -(log 2 pi + log F_* + v^2 / F_*) / 2.
// An exactly observed component (s2 = 0) with F_inf = 0 and F_* = 0 has no
// density (an error, as in KalmanFilter). Missing (NaN) components are
// skipped. Predict: a <- F a + B u + b, P_* <- F P_* F^T + Q, A <- F A
// (re-compressed by a column-pivoted QR when F A loses rank).
// These are the terms statsmodels' _univariate_diffuse.pyx accumulates
// (loglikelihood -1/2 log(2 pi F_inf) for F_inf > 0, the usual terms else).
//
// Smoother: the exact initial state smoother, univariate form (Koopman &
// Durbin 2000, Sec. 4.2; Durbin & Koopman 2012, Sec. 5.3 eqs. 5.23-5.30 with
// T = I between the components of a step). Going backward over the components
// (r0, r1; N0, N1, N2 the score and information expansions in 1/kappa),
// F_inf > 0, with L0 = I - K0 z, L1 = -K1 z:
//   r1 <- z^T v / F_inf + L0^T r1 + L1^T r0,  r0 <- L0^T r0,
//   N2 <- -z^T z F_* / F_inf^2 + L0^T N2 L0 + L0^T N1 L1 + L1^T N1 L0 + L1^T N0 L1,
//   N1 <- z^T z / F_inf + L0^T N1 L0 + L1^T N0 L0 + L0^T N0 L1,
//   N0 <- L0^T N0 L0;
// F_inf = 0, with L = I - K z: r0 <- z^T v / F_* + L^T r0, r1 <- L^T r1,
//   N0 <- z^T z / F_* + L^T N0 L, N1 <- L^T N1 L, N2 <- L^T N2 L;
// the transition into step t: r_k <- F^T r_k, N_k <- F^T N_k F. At the
// predicted level of step t (P_*, P_inf, a its predicted moments):
//   E[z_t | y] = a + P_* r0 + P_inf r1,
//   Var[z_t | y] = P_* - P_* N0 P_* - P_inf N1 P_* - P_* N1 P_inf - P_inf N2 P_inf
// (DK 2012 eq. 5.24 and 5.30), and the lag-one covariance, from the known-
// initialization identity Cov[z_t, z_{t-1} | y] = (I - P_{t|t-1} N_t) F
// P_{t-1|t-1} expanded in kappa (the orders kappa^2 and kappa vanish):
//   Cov[z_t, z_{t-1} | y] = (I - P_* N0 - P_inf N1) F P'_* - (P_* N1 + P_inf N2) F P'_inf,
// P'_*, P'_inf the filtered moments of step t - 1. The backward recursion
// starts at the last diffuse step d - 1 from the known-period smoother's
// score and information (r0, N0; r1 = 0, N1 = N2 = 0).
#pragma once

#include <vector>

#include "lgssm/params.hpp"

namespace lgssm::internal {

// A with P_inf = A A^T, reduced to rank(A) columns (column-pivoted QR when
// its columns are dependent; unchanged otherwise).
Matrix compress_diffuse(const Matrix& a);

// The terms of one step's univariate updates, in processing order (what the
// smoother needs).
struct DiffuseStepTerms {
  Eigen::Index count = 0;   // components used
  std::vector<char> kind;   // 1: F_inf > 0, 2: F_inf = 0
  Matrix z;                 // (p, n): the (transformed) rows z_i
  Matrix k0, k1;            // (n, p): K0 (kind 1) or K (kind 2); K1 (kind 1)
  Vector v, f_inf, f_star;  // (p)
};

// The diffuse filter's state: a, P_* and the factor A of P_inf.
class DiffuseFilter {
 public:
  DiffuseFilter(Eigen::Index state_dim, Eigen::Index emission_dim);

  // The moments of step 0: a = m, P_* = initial.cov, A = initial.diffuse (compressed).
  void start(const Params& params);
  // The transition into step t >= 1 (dynamics entry t - 1); `u` is u_t or empty.
  void predict(const Params& params, Eigen::Index t, const Eigen::Ref<const Vector>& u);
  // Conditions on the observed components of y_t; returns the diffuse log
  // likelihood terms of the step. With `terms`, records the components.
  double update(const Params& params, Eigen::Index t, const Eigen::Ref<const Vector>& y,
                const Eigen::Ref<const Vector>& u, DiffuseStepTerms* terms = nullptr);
  // Sets the moments (the smoother replays a step from its predicted moments).
  void set_state(const Eigen::Ref<const Vector>& mean, const Eigen::Ref<const Matrix>& cov, const Matrix& diffuse);

  Eigen::Index rank() const { return diffuse_.cols(); }
  const Vector& mean() const { return mean_; }
  const Matrix& cov() const { return cov_; }          // P_*
  const Matrix& diffuse() const { return diffuse_; }  // A, P_inf = A A^T

 private:
  // One component: row z, residual v, noise variance s2.
  double update_component(const Eigen::Ref<const Vector>& z, double v, double s2, Eigen::Index t, Eigen::Index i,
                          DiffuseStepTerms* terms);

  Eigen::Index n_, p_;
  Vector mean_;
  Matrix cov_, diffuse_;
  Vector m_star_, g_, k0_, k1_;
  Matrix z_o_;
  Vector y_o_, s2_o_;
};

// What the filter keeps of the diffuse period for the smoother.
struct DiffuseTrace {
  Eigen::Index num_steps = 0;             // d: steps 0..d-1 had a diffuse part
  Eigen::Index final_rank = 0;            // rank of P_inf after the last step run (0: the period ended)
  std::vector<Matrix> predicted_diffuse;  // A of the predicted moments, per diffuse step
  std::vector<Matrix> filtered_diffuse;   // A of the filtered moments, per diffuse step
};

// The exact initial smoother over steps d-1..0 (d = trace.num_steps), writing
// the smoothed means and covariances of those steps and the cross covariances
// Cov[z_t, z_{t-1} | y] for t = 1..d-1, from the stored filter moments
// (predicted and filtered means/covariances = a, P_*) and the known period's
// score r and information n about z_{d-1} at its filtered level (zero when d
// is the number of steps). `covariances` false: the means only.
void diffuse_smoother(const Params& params, const Sequence& seq, const DiffuseTrace& trace,
                      const RowMatrix& predicted_means, const MatrixSeries& predicted_covariances,
                      const MatrixSeries& filtered_covariances, const Vector& score, const Matrix& info,
                      bool covariances, RowMatrix& smoothed_means, MatrixSeries* smoothed_covariances,
                      MatrixSeries* smoothed_cross_covariances);

// Throws lgssm::invalid_argument naming `what` when the diffuse part is not
// identified by the data (the period did not end).
void check_diffuse_identified(const DiffuseTrace& trace, const char* what);

}  // namespace lgssm::internal
