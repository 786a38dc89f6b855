// The continuous-time transition over a step, (A_dt, Sigma_dt), by scaling and
// squaring on the pair (private; the equations are in continuous.hpp at
// discretize), with the records its adjoint needs.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "lgssm/continuous.hpp"
#include "linalg.hpp"

namespace lgssm::internal {

// ---- Discretization by scaling and squaring on the pair (A, Sigma) ----
//
// The small step tau = dt / 2^s has |F tau|_1 <= kTheta. There A_tau - I and
// Sigma_tau are Taylor series (see the header); then s doublings
//   A_{2h} = A_h^2,   Sigma_{2h} = A_h Sigma_h A_h^T + Sigma_h.
// While |A_h|_1 > 1/2 the doubling is carried on B_h = A_h - I,
// B_{2h} = 2 B_h + B_h^2, which keeps the slow modes' relative accuracy (A_h
// itself would round them to the identity); once |A_h|_1 <= 1/2, on A_h, which
// keeps the fast modes' relative accuracy. A_h = 0 is a fixed point: the
// remaining doublings leave Sigma unchanged.
//
// Where the problem's condition number |F|_1 dt is large, float64 rounding in
// the doublings alone moves the result by about 2^-53 |F|_1 dt relative (3e-10
// at |F|_1 dt = 3e6); there the value is computed in long double (x87:
// 2^-64), which keeps it within 1e-10 up to |F|_1 dt ~ 1e9 (kExtendedFrom).
constexpr double kTheta = 0.5;
constexpr double kExtendedFrom = 1e5;

template <class S>
using MatrixS = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic>;

template <class S>
S norm1(const MatrixS<S>& m) {
  return m.cwiseAbs().colwise().sum().maxCoeff();
}

// The smallest degree m whose truncation error (2t)^{m+1} e^{4t} / (m+2)!
// (relative to tau |Q|; a bound for both series at |F tau|_1 = t) is below
// half the unit roundoff u.
inline int taylor_degree(double t, double u) {
  int m = 0;
  double bound = 2.0 * t * std::exp(4.0 * t) / 2.0;  // m = 0: (2t)^1 e^{4t} / 2!
  while (bound > 0.5 * u && m < 60) {
    ++m;
    bound *= 2.0 * t / (m + 2);
  }
  return m;
}

// exp(F dt) by the scheme above, with what the covariance and the adjoint need.
template <class S>
struct TransitionS {
  S tau = 0;
  MatrixS<S> x;                     // F tau
  std::vector<MatrixS<S>> powers;   // (F tau)^j / j!, j = 0 .. degree - 1
  std::vector<MatrixS<S>> doubled;  // A_{2^k tau} entering doubling k, k = 0 .. (doublings done) - 1
  MatrixS<S> weights;               // A_dt
  int degree() const { return static_cast<int>(powers.size()); }
};
using Transition = TransitionS<double>;

template <class S = double>
TransitionS<S> transition(const Matrix& drift, double dt) {
  const Eigen::Index n = drift.rows();
  const MatrixS<S> identity = MatrixS<S>::Identity(n, n);
  const double norm = norm1<double>(drift);
  // s from log2 |F| + log2 dt, which does not overflow where |F| dt would.
  const int s =
      norm > 0.0 ? std::max(0, static_cast<int>(std::ceil(std::log2(norm) + std::log2(dt) - std::log2(kTheta)))) : 0;
  TransitionS<S> t;
  t.tau = std::ldexp(static_cast<S>(dt), -s);
  t.x = drift.cast<S>() * t.tau;
  const int degree =
      taylor_degree(static_cast<double>(norm1<S>(t.x)), static_cast<double>(std::numeric_limits<S>::epsilon()));
  MatrixS<S> b = MatrixS<S>::Zero(n, n), term = identity;  // b = sum_{j=1}^{degree} (F tau)^j / j!
  for (int j = 1; j <= degree; ++j) {
    t.powers.push_back(term);
    term = t.x * term / static_cast<S>(j);
    b += term;
  }
  MatrixS<S> a = identity + b;
  bool near_identity = norm1<S>(a) > 0.5;
  for (int k = 0; k < s && !a.isZero(0); ++k) {
    t.doubled.push_back(a);
    if (near_identity) {
      b = 2 * b + b * b;
      a = identity + b;
      near_identity = norm1<S>(a) > 0.5;
    } else {
      a = a * a;
    }
  }
  t.weights = std::move(a);
  return t;
}

// Sigma_dt = int_0^dt e^{F u} Q e^{F^T u} du for this Q (linear in Q): at the
// small step the series sum_{k>=0} S_k, S_0 = tau Q,
// S_k = (F tau S_{k-1} + S_{k-1} tau F^T) / (k + 1) (= tau^{k+1} L^k(Q) / (k+1)!
// with L(X) = F X + X F^T), then the doublings. `series` receives S_0 ..
// S_{degree-1} and `entering` Sigma entering each doubling, for the adjoint.
template <class S>
MatrixS<S> covariance(const TransitionS<S>& t, const Matrix& q, std::vector<MatrixS<S>>* series = nullptr,
                      std::vector<MatrixS<S>>* entering = nullptr) {
  MatrixS<S> term = t.tau * q.cast<S>();
  symmetrize(term);
  MatrixS<S> sigma = term;
  for (int k = 1; k <= t.degree(); ++k) {
    if (series) series->push_back(term);
    const MatrixS<S> xs = t.x * term;
    term = (xs + xs.transpose()) / static_cast<S>(k + 1);
    sigma += term;
  }
  for (const MatrixS<S>& a : t.doubled) {
    if (entering) entering->push_back(sigma);
    MatrixS<S> spread = a * sigma * a.transpose();
    symmetrize(spread);
    sigma += spread;
  }
  return sigma;
}

// The adjoint of (F, Q) -> (A_dt, Sigma_dt): from grad_a = dl/dA and grad_sigma =
// dl/dSigma (symmetric), dl/dF and dl/dQ, by the chain rule backwards through
// the doublings and the two series (reverse-mode differentiation of the
// computed map, so the gradient is that of the computed value). `series` and
// `entering` are those recorded by covariance.
void transition_adjoint(const Transition& t, const std::vector<Matrix>& series, const std::vector<Matrix>& entering,
                        Matrix grad_a, Matrix grad_sigma, Matrix& grad_drift, Matrix& grad_diffusion);

// (A_dt, Sigma_dt) without argument checks, in long double where
// |F|_1 dt > kExtendedFrom; not finite only where exp(F dt) overflows.
Discretization discretize_unchecked(const Matrix& drift, const Matrix& diffusion_cov, double dt);

// The derivatives of (A_dt, Sigma_dt) at (F, Q) along two directions
// (F_k, Q_k) and (F_l, Q_l): the first along each and the mixed second
// d^2 / dk dl, exact derivatives of the computed map. They are blocks of the
// same scaling and squaring (discretize_unchecked) applied to the hyper-dual
// numbers F + e1 F_k + e2 F_l, Q + e1 Q_k + e2 Q_l (e1^2 = e2^2 = 0, e1 e2 != 0;
// Fike & Alonso 2011) in their matrix representation
//   lift(X, X1, X2, X12) = [[X, X1, X2, X12], [0, X, 0, X2], [0, 0, X, X1], [0, 0, 0, X]],
// an algebra homomorphism (lift(X Y) = lift(X) lift(Y)), so exp(lift(F) dt) =
// lift(A, A_k, A_l, A_kl). With J the block reversal, lift(X^T) = J lift(X)^T J,
// hence Sigma's lift times J is the covariance of the lifted drift and the
// (symmetric, indefinite) lifted Q = lift(Q, Q_k, Q_l, 0) J:
//   lift(Sigma, Sigma_k, Sigma_l, Sigma_kl) J = int_0^dt e^{lift(F) u} lift(Q) J e^{lift(F)^T u} du,
// whose first block row is [Sigma_kl, Sigma_l, Sigma_k, Sigma]. k = l gives the
// first derivatives along one direction and the second along it.
struct TransitionDerivatives {
  Matrix weights_k, weights_l, weights_kl;  // A_k, A_l, A_kl
  Matrix cov_k, cov_l, cov_kl;              // Sigma_k, Sigma_l, Sigma_kl
};
TransitionDerivatives transition_derivatives(const Matrix& drift, const Matrix& diffusion_cov, const Matrix& drift_k,
                                             const Matrix& diffusion_k, const Matrix& drift_l,
                                             const Matrix& diffusion_l, double dt);

}  // namespace lgssm::internal
