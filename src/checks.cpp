// The argument checks shared by the entry points (checks.hpp).
#include "checks.hpp"

#include <Eigen/Eigenvalues>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

#include "lgssm/error.hpp"

namespace lgssm {

using internal::shape_str;
using internal::throw_invalid;

void internal::check_count(const char* name, int value, int low) {
  if (value < low) throw_invalid(name, "an integer >= " + std::to_string(low), std::to_string(value));
}

void internal::check_tolerance(const char* name, double value) {
  if (!(std::isfinite(value) && value >= 0)) throw_invalid(name, "a finite value >= 0", number(value));
}

void internal::check_positive(const char* name, double value) {
  if (!(std::isfinite(value) && value > 0)) throw_invalid(name, "a finite value > 0", number(value));
}

void internal::check_unit_interval(const char* name, double value) {
  if (!(value >= 0 && value < 1)) throw_invalid(name, "a value in [0, 1)", number(value));
}

void internal::check_finite(const std::string& name, const Eigen::Ref<const Matrix>& m) {
  if (all_finite(m)) return;
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      if (!std::isfinite(m(i, j))) throw_invalid(name, "finite values", number(m(i, j)) + " at " + shape_str(i, j));
}

namespace {

// Whether the off-diagonal entries are all zero (one pass along the rows).
bool is_diagonal(const Eigen::Ref<const RowMatrix>& m) {
  for (Eigen::Index i = 0; i < m.rows(); ++i)
    if (!(m.row(i).head(i).array() == 0.0).all() || !(m.row(i).tail(m.cols() - i - 1).array() == 0.0).all())
      return false;
  return true;
}

// The smallest and largest eigenvalue of a symmetric matrix.
std::pair<double, double> eigen_range(const Eigen::Ref<const Matrix>& m) {
  Eigen::SelfAdjointEigenSolver<Matrix> eig(m, Eigen::EigenvaluesOnly);
  return {eig.eigenvalues().minCoeff(), eig.eigenvalues().maxCoeff()};
}

// max |m_ij - m_ji|, by tiles (a transposed sweep of a large matrix misses the cache at every entry).
double max_asymmetry(const Eigen::Ref<const RowMatrix>& m) {
  constexpr Eigen::Index kTile = 32;
  const Eigen::Index n = m.rows();
  double out = 0.0;
  for (Eigen::Index i = 0; i < n; i += kTile)
    for (Eigen::Index j = i; j < n; j += kTile) {
      const Eigen::Index r = std::min(kTile, n - i), c = std::min(kTile, n - j);
      out = std::max(out, (m.block(i, j, r, c) - m.block(j, i, c, r).transpose()).cwiseAbs().maxCoeff());
    }
  return out;
}

// Whether m - shift I has a Cholesky factor: then every eigenvalue exceeds
// `shift` (a fast sufficient test, far cheaper than the eigenvalues).
bool exceeds(const Eigen::Ref<const Matrix>& m, double shift) {
  return Eigen::LLT<Matrix>(m - shift * Matrix::Identity(m.rows(), m.cols())).info() == Eigen::Success;
}

// What internal::check_covariance rejects in a finite matrix: (expected, got), or none.
// All tolerances are relative to the matrix's own scale, so that a covariance
// of 1e-12 is judged as one of 1 is. A diagonal matrix is judged by its
// diagonal alone.
std::optional<std::pair<std::string, std::string>> covariance_problem(const Eigen::Ref<const RowMatrix>& m,
                                                                      internal::Definiteness kind) {
  const bool diagonal = is_diagonal(m);
  if (!diagonal) {
    const double scale = m.cwiseAbs().maxCoeff();
    const double asym = max_asymmetry(m);
    if (asym > internal::kSymmetryTolerance * scale)
      return std::pair{"a symmetric matrix (within " + number(internal::kSymmetryTolerance) + " of its largest entry)",
                       "an asymmetry of " + number(asym) + " against a largest entry of " + number(scale)};
  }
  // The eigenvalue range of m restricted to `rows`; definiteness is read off
  // the transpose (col-major, the same storage): a symmetric matrix's, within
  // the tolerance above.
  const auto range = [&](const std::vector<Eigen::Index>* rows) -> std::pair<double, double> {
    if (diagonal) {
      const Vector d = rows ? Vector(m.diagonal()(*rows)) : Vector(m.diagonal());
      return {d.minCoeff(), d.maxCoeff()};
    }
    return rows ? eigen_range(Matrix(m.transpose()(*rows, *rows))) : eigen_range(m.transpose());
  };
  if (kind == internal::Definiteness::kSemidefinite) {
    const double tol = internal::kSemidefiniteTolerance * std::max(m.diagonal().maxCoeff(), 0.0);
    if (!diagonal && exceeds(m.transpose(), -tol)) return std::nullopt;
    const auto [lo, hi] = range(nullptr);
    if (lo < -internal::kSemidefiniteTolerance * std::max(hi, 0.0))
      return std::pair{std::string("a symmetric positive semidefinite matrix"),
                       "smallest eigenvalue " + number(lo) + " (largest " + number(hi) + ")"};
    return std::nullopt;
  }
  // Zero variance means an exactly observed component: its row and column
  // must be zero; the rest must be definite.
  std::vector<Eigen::Index> positive;
  for (Eigen::Index i = 0; i < m.rows(); ++i) {
    if (m(i, i) != 0.0) {
      positive.push_back(i);
    } else if (!diagonal && (m.row(i).cwiseAbs().maxCoeff() > 0.0 || m.col(i).cwiseAbs().maxCoeff() > 0.0)) {
      return std::pair{std::string("a zero row and column for each zero-variance (exactly observed) component"),
                       "nonzero covariances in row " + std::to_string(i) + ", whose variance is 0"};
    }
  }
  if (positive.empty()) return std::nullopt;
  const bool all = static_cast<Eigen::Index>(positive.size()) == m.rows();
  if (!diagonal) {
    const Matrix sub = all ? Matrix() : Matrix(m.transpose()(positive, positive));
    const Eigen::Ref<const Matrix> s = all ? Eigen::Ref<const Matrix>(m.transpose()) : Eigen::Ref<const Matrix>(sub);
    if (exceeds(s, internal::kDefiniteTolerance * s.trace())) return std::nullopt;
  }
  const auto [lo, hi] = range(all ? nullptr : &positive);
  if (lo > internal::kDefiniteTolerance * hi) return std::nullopt;
  return std::pair{std::string("a positive definite matrix on the components with nonzero variance (an exactly "
                               "observed component needs a zero row and column)"),
                   "smallest eigenvalue " + number(lo) + " (largest " + number(hi) + ")"};
}

}  // namespace

void internal::check_covariance(const std::string& name, const Eigen::Ref<const RowMatrix>& m,
                                internal::Definiteness kind) {
  if (!internal::all_finite(m)) internal::check_finite(name, m);
  if (const auto problem = covariance_problem(m, kind)) throw_invalid(name, problem->first, problem->second);
}

bool internal::is_covariance(const Eigen::Ref<const RowMatrix>& m, Definiteness kind) {
  return internal::all_finite(m) && !covariance_problem(m, kind);
}

void internal::check_known_initial(const Params& params, const std::string& what) {
  if (params.initial.is_diffuse())
    throw_invalid("initial.diffuse", "no diffuse part (" + what + " takes a known initial distribution)",
                  std::to_string(params.initial.diffuse.cols()) + " diffuse column(s)");
}

bool internal::has_valid_values(const Params& params) {
  const auto finite = [](const MatrixSeries& s) { return s.flat().allFinite(); };
  const auto covs_ok = [](const MatrixSeries& covs, internal::Definiteness kind) {
    for (Eigen::Index k = 0; k < covs.size(); ++k)
      if (covariance_problem(covs[k], kind)) return false;
    return true;
  };
  const auto& d = params.dynamics;
  const auto& e = params.emissions;
  return params.initial.mean.allFinite() && params.initial.cov.allFinite() && params.initial.diffuse.allFinite() &&
         finite(d.weights) && finite(d.bias) && finite(d.input_weights) && finite(d.cov) && finite(e.weights) &&
         finite(e.bias) && finite(e.input_weights) && finite(e.cov) &&
         !covariance_problem(params.initial.cov, internal::Definiteness::kSemidefinite) &&
         covs_ok(d.cov, internal::Definiteness::kSemidefinite) &&
         covs_ok(e.cov, internal::Definiteness::kZeroRowsOrDefinite);
}

}  // namespace lgssm
