// Van Loan's transition of a linear SDE over a step, and its inverse
// (continuous.hpp: discretize, undiscretize, validate_dynamics).
#include "vanloan.hpp"

#include <Eigen/Eigenvalues>
#include <complex>
#include <unsupported/Eigen/MatrixFunctions>

#include "checks.hpp"
#include "lgssm/error.hpp"

namespace lgssm {

using internal::shape_str;
using internal::throw_invalid;

namespace internal {

// The adjoint of (F, Q) -> (A_dt, Sigma_dt): from grad_a = dl/dA and grad_sigma =
// dl/dSigma (symmetric), dl/dF and dl/dQ, by the chain rule backwards through
// the doublings and the two series (reverse-mode differentiation of the
// computed map, so the gradient is that of the computed value). `series` and
// `entering` are those recorded by covariance.
void transition_adjoint(const Transition& t, const std::vector<Matrix>& series, const std::vector<Matrix>& entering,
                        Matrix grad_a, Matrix grad_sigma, Matrix& grad_drift, Matrix& grad_diffusion) {
  for (size_t k = t.doubled.size(); k-- > 0;) {
    const Matrix& a = t.doubled[k];
    grad_a = grad_a * a.transpose() + a.transpose() * grad_a + 2.0 * grad_sigma * a * entering[k];
    grad_sigma += a.transpose() * grad_sigma * a;
    symmetrize(grad_sigma);
  }
  // A_tau = I + sum_j T_j with T_j = x T_{j-1} / j, T_0 = I; grad_a is dl/dA_tau.
  Matrix grad_x = Matrix::Zero(t.x.rows(), t.x.cols()), grad_term = grad_a;
  for (int j = t.degree(); j >= 1; --j) {
    grad_x += grad_term * t.powers[j - 1].transpose() / static_cast<double>(j);
    grad_term = grad_a + t.x.transpose() * grad_term / static_cast<double>(j);
  }
  grad_term = grad_sigma;
  for (int k = t.degree(); k >= 1; --k) {
    grad_x += 2.0 * grad_term * series[k - 1] / static_cast<double>(k + 1);
    const Matrix xg = t.x.transpose() * grad_term;
    grad_term = grad_sigma + (xg + xg.transpose()) / static_cast<double>(k + 1);
  }
  grad_drift = t.tau * grad_x;
  grad_diffusion = t.tau * grad_term;
  symmetrize(grad_diffusion);
}

namespace {

template <class S>
Discretization discretize_in(const Matrix& drift, const Matrix& diffusion_cov, double dt) {
  const TransitionS<S> t = transition<S>(drift, dt);
  return {t.weights.template cast<double>(), covariance(t, diffusion_cov).template cast<double>()};
}

}  // namespace

Discretization discretize_unchecked(const Matrix& drift, const Matrix& diffusion_cov, double dt) {
  const bool extended = norm1<double>(drift) * dt > kExtendedFrom;
  return extended ? discretize_in<long double>(drift, diffusion_cov, dt)
                  : discretize_in<double>(drift, diffusion_cov, dt);
}

TransitionDerivatives transition_derivatives(const Matrix& drift, const Matrix& diffusion_cov, const Matrix& drift_k,
                                             const Matrix& diffusion_k, const Matrix& drift_l,
                                             const Matrix& diffusion_l, double dt) {
  const Eigen::Index n = drift.rows();
  Matrix f = Matrix::Zero(4 * n, 4 * n), q = Matrix::Zero(4 * n, 4 * n);
  for (Eigen::Index i = 0; i < 4; ++i) f.block(i * n, i * n, n, n) = drift;
  f.block(0, n, n, n) = f.block(2 * n, 3 * n, n, n) = drift_k;
  f.block(0, 2 * n, n, n) = f.block(n, 3 * n, n, n) = drift_l;
  // lift(Q, Q_k, Q_l, 0) J: Q on the anti-diagonal, Q_l at (0, 1) and (1, 0), Q_k at (0, 2) and (2, 0).
  for (Eigen::Index i = 0; i < 4; ++i) q.block(i * n, (3 - i) * n, n, n) = diffusion_cov;
  q.block(0, n, n, n) = q.block(n, 0, n, n) = diffusion_l;
  q.block(0, 2 * n, n, n) = q.block(2 * n, 0, n, n) = diffusion_k;
  const Discretization d = discretize_unchecked(f, q, dt);
  return {d.weights.block(0, n, n, n), d.weights.block(0, 2 * n, n, n), d.weights.block(0, 3 * n, n, n),
          d.cov.block(0, 2 * n, n, n), d.cov.block(0, n, n, n),         d.cov.block(0, 0, n, n)};
}

}  // namespace internal

namespace {

void check_dt(double dt) {
  if (!(dt > 0.0) || !std::isfinite(dt)) throw_invalid("dt", "a finite step > 0", number(dt));
}

}  // namespace

void validate_dynamics(const Matrix& drift, const Matrix& diffusion_cov, Eigen::Index state_dim,
                       const std::string& drift_name, const std::string& diffusion_name) {
  const Eigen::Index n = state_dim;
  if (n < 1 || drift.rows() != n || drift.cols() != n)
    throw_invalid(drift_name, n < 1 ? "a square matrix of size >= 1" : "shape " + shape_str(n, n),
                  shape_str(drift.rows(), drift.cols()));
  internal::check_finite(drift_name, drift);
  if (diffusion_cov.rows() != n || diffusion_cov.cols() != n)
    throw_invalid(diffusion_name, "shape " + shape_str(n, n) + " (that of " + drift_name + ")",
                  shape_str(diffusion_cov.rows(), diffusion_cov.cols()));
  internal::check_covariance(diffusion_name, diffusion_cov, internal::Definiteness::kSemidefinite);
}

Discretization discretize(const Matrix& drift, const Matrix& diffusion_covariance, double dt) {
  validate_dynamics(drift, diffusion_covariance, drift.rows() == drift.cols() ? drift.rows() : 0, "drift",
                    "diffusion_covariance");
  check_dt(dt);
  Discretization d = internal::discretize_unchecked(drift, diffusion_covariance, dt);
  if (!d.weights.allFinite() || !d.cov.allFinite())
    throw_invalid("drift", "a drift whose transition exp(drift * dt) is finite in double precision",
                  "an overflow over dt = " + number(dt) + " (the drift grows too fast over it)");
  return d;
}

Undiscretization undiscretize(const Matrix& weights, const Matrix& cov, double dt) {
  const Eigen::Index n = weights.rows();
  if (n < 1 || weights.cols() != n)
    throw_invalid("weights", "a square matrix of size >= 1", shape_str(weights.rows(), weights.cols()));
  internal::check_finite("weights", weights);
  if (cov.rows() != n || cov.cols() != n)
    throw_invalid("cov", "shape " + shape_str(n, n) + " (that of weights)", shape_str(cov.rows(), cov.cols()));
  internal::check_covariance("cov", cov, internal::Definiteness::kSemidefinite);
  check_dt(dt);
  const Eigen::EigenSolver<Matrix> eig(weights, false);
  for (Eigen::Index i = 0; i < n; ++i) {
    const std::complex<double> l = eig.eigenvalues()(i);
    if (std::abs(l) == 0.0 || (std::abs(l.imag()) <= 1e-12 * std::abs(l) && l.real() <= 0.0))
      throw_invalid("weights", "no eigenvalue on the closed negative real axis (a real principal logarithm)",
                    "eigenvalue " + number(l.real()) + (l.imag() != 0.0 ? " + " + number(l.imag()) + "i" : ""));
  }
  Undiscretization out;
  out.drift = Matrix(weights.log()) / dt;
  // Q_c solves the linear equations Sigma_dt(Q_c) = cov (Sigma_dt as in
  // discretize, linear in Q_c), over the n (n + 1) / 2 entries of a symmetric
  // Q_c; the matrix of that map is nonsingular when F is a principal
  // logarithm (its eigenvalues are dt phi(dt (l_i + l_j)), phi(z) = (e^z - 1) / z,
  // and |Im dt l| < pi).
  const internal::Transition t = internal::transition(out.drift, dt);
  const Eigen::Index p = n * (n + 1) / 2;
  Matrix map(p, p);
  Vector rhs(p);
  for (Eigen::Index j = 0, col = 0; j < n; ++j)
    for (Eigen::Index i = 0; i <= j; ++i, ++col) {
      Matrix basis = Matrix::Zero(n, n);
      basis(i, j) = basis(j, i) = 1.0;
      const Matrix image = internal::covariance(t, basis);
      for (Eigen::Index jj = 0, row = 0; jj < n; ++jj)
        for (Eigen::Index ii = 0; ii <= jj; ++ii, ++row) map(row, col) = image(ii, jj);
      rhs(col) = 0.5 * (cov(i, j) + cov(j, i));
    }
  const Vector entries = map.colPivHouseholderQr().solve(rhs);
  out.diffusion_cov.resize(n, n);
  for (Eigen::Index j = 0, k = 0; j < n; ++j)
    for (Eigen::Index i = 0; i <= j; ++i, ++k) out.diffusion_cov(i, j) = out.diffusion_cov(j, i) = entries(k);
  const Eigen::SelfAdjointEigenSolver<Matrix> se(out.diffusion_cov);
  if (se.eigenvalues().minCoeff() < 0.0) {
    const Matrix projected =
        se.eigenvectors() * se.eigenvalues().cwiseMax(0.0).asDiagonal() * se.eigenvectors().transpose();
    out.psd_correction = (projected - out.diffusion_cov).norm();
    out.diffusion_cov = projected;
    internal::symmetrize(out.diffusion_cov);
  }
  return out;
}

}  // namespace lgssm
