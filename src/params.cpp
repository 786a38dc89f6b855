#include "lgssm/params.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <cmath>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "lgssm/error.hpp"
#include "checks.hpp"

namespace lgssm {

using internal::shape_str;
using internal::throw_invalid;

MatrixSeries MatrixSeries::constant(const Eigen::Ref<const RowMatrix>& m) {
  MatrixSeries s(1, m.rows(), m.cols());
  s[0] = m;
  return s;
}

std::string number(double x) {
  std::ostringstream out;
  out.precision(6);
  out << x;
  return out.str();
}

void check_count(const char* name, int value, int low) {
  if (value < low) throw_invalid(name, "an integer >= " + std::to_string(low), std::to_string(value));
}

void check_tolerance(const char* name, double value) {
  if (!(std::isfinite(value) && value >= 0)) throw_invalid(name, "a finite value >= 0", number(value));
}

void check_positive(const char* name, double value) {
  if (!(std::isfinite(value) && value > 0)) throw_invalid(name, "a finite value > 0", number(value));
}

void check_unit_interval(const char* name, double value) {
  if (!(value >= 0 && value < 1)) throw_invalid(name, "a value in [0, 1)", number(value));
}

void check_finite(const std::string& name, const Eigen::Ref<const Matrix>& m) {
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      if (!std::isfinite(m(i, j)))
        throw_invalid(name, "finite values", number(m(i, j)) + " at " + shape_str(i, j));
}

namespace {

// The smallest and largest eigenvalue of a symmetric matrix; for a diagonal
// one, its diagonal.
std::pair<double, double> eigen_range(const Eigen::Ref<const Matrix>& m) {
  if (m.isDiagonal(0.0)) return {m.diagonal().minCoeff(), m.diagonal().maxCoeff()};
  Eigen::SelfAdjointEigenSolver<Matrix> eig(m, Eigen::EigenvaluesOnly);
  return {eig.eigenvalues().minCoeff(), eig.eigenvalues().maxCoeff()};
}

// Whether m - shift I has a Cholesky factor: then every eigenvalue exceeds
// `shift` (a fast sufficient test, far cheaper than the eigenvalues).
bool exceeds(const Eigen::Ref<const Matrix>& m, double shift) {
  return Eigen::LLT<Matrix>(m - shift * Matrix::Identity(m.rows(), m.cols())).info() == Eigen::Success;
}

}  // namespace

namespace {

// What check_covariance rejects in a finite matrix: (expected, got), or none.
// All tolerances are relative to the matrix's own scale, so that a covariance
// of 1e-12 is judged as one of 1 is.
std::optional<std::pair<std::string, std::string>> covariance_problem(const Eigen::Ref<const Matrix>& m,
                                                                      Definiteness kind) {
  const double scale = m.cwiseAbs().maxCoeff();
  const double asym = (m - m.transpose()).cwiseAbs().maxCoeff();
  if (asym > kSymmetryTolerance * scale)
    return std::pair{"a symmetric matrix (within " + number(kSymmetryTolerance) + " of its largest entry)",
                     "an asymmetry of " + number(asym) + " against a largest entry of " + number(scale)};
  if (kind == Definiteness::kSemidefinite) {
    const double tol = kSemidefiniteTolerance * std::max(m.diagonal().maxCoeff(), 0.0);
    if (!m.isDiagonal(0.0) && exceeds(m, -tol)) return std::nullopt;
    const auto [lo, hi] = eigen_range(m);
    if (lo < -kSemidefiniteTolerance * std::max(hi, 0.0))
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
    } else if (m.row(i).cwiseAbs().maxCoeff() > 0.0 || m.col(i).cwiseAbs().maxCoeff() > 0.0) {
      return std::pair{std::string("a zero row and column for each zero-variance (exactly observed) component"),
                       "nonzero covariances in row " + std::to_string(i) + ", whose variance is 0"};
    }
  }
  if (positive.empty()) return std::nullopt;
  const Matrix sub = m(positive, positive);
  if (!sub.isDiagonal(0.0) && exceeds(sub, kDefiniteTolerance * sub.trace())) return std::nullopt;
  const auto [lo, hi] = eigen_range(sub);
  if (!(lo > kDefiniteTolerance * hi))
    return std::pair{std::string("a positive definite matrix on the components with nonzero variance (an exactly "
                                 "observed component needs a zero row and column)"),
                     "smallest eigenvalue " + number(lo) + " (largest " + number(hi) + ")"};
  return std::nullopt;
}

}  // namespace

void check_covariance(const std::string& name, const Eigen::Ref<const Matrix>& m, Definiteness kind) {
  check_finite(name, m);
  if (const auto problem = covariance_problem(m, kind)) throw_invalid(name, problem->first, problem->second);
}

bool has_valid_values(const Params& params) {
  const auto finite = [](const MatrixSeries& s) { return s.flat().allFinite(); };
  const auto covs_ok = [](const MatrixSeries& covs, Definiteness kind) {
    for (Eigen::Index k = 0; k < covs.size(); ++k)
      if (covariance_problem(covs[k], kind)) return false;
    return true;
  };
  const auto& d = params.dynamics;
  const auto& e = params.emissions;
  return params.initial.mean.allFinite() && params.initial.cov.allFinite() && finite(d.weights) && finite(d.bias) &&
         finite(d.input_weights) && finite(d.cov) && finite(e.weights) && finite(e.bias) && finite(e.input_weights) &&
         finite(e.cov) && !covariance_problem(params.initial.cov, Definiteness::kSemidefinite) &&
         covs_ok(d.cov, Definiteness::kSemidefinite) && covs_ok(e.cov, Definiteness::kZeroRowsOrDefinite);
}

namespace {

// A vector series (bias) is described as (rows,), a matrix series as (rows, cols).
void check_series(const std::string& name, const MatrixSeries& s, Eigen::Index rows,
                  Eigen::Index cols, bool vector = false) {
  if (s.size() < 1) throw_invalid(name, "at least one entry", "none");
  if (s.rows() != rows || s.cols() != cols) {
    const std::string want = vector ? shape_str(rows) : shape_str(rows, cols);
    const std::string got = vector && s.cols() == 1 ? shape_str(s.rows()) : shape_str(s.rows(), s.cols());
    throw_invalid(name, "shape " + want + " per entry", got);
  }
  for (Eigen::Index k = 0; k < s.size(); ++k)
    check_finite(s.size() == 1 ? name : name + "[" + std::to_string(k) + "]", s[k]);
}

void check_conditional(const std::string& prefix, const LinearGaussianParams& p,
                       Eigen::Index out_dim, Eigen::Index state_dim, Eigen::Index input_dim,
                       Definiteness cov_kind) {
  check_series(prefix + ".weights", p.weights, out_dim, state_dim);
  check_series(prefix + ".bias", p.bias, out_dim, 1, true);
  check_series(prefix + ".input_weights", p.input_weights, out_dim, input_dim);
  check_series(prefix + ".cov", p.cov, out_dim, out_dim);
  for (Eigen::Index i = 0; i < p.cov.size(); ++i) {
    const std::string name = p.cov.size() == 1 ? prefix + ".cov" : prefix + ".cov[" + std::to_string(i) + "]";
    check_covariance(name, p.cov[i], cov_kind);
  }
}

void check_length(const std::string& name, const MatrixSeries& s, Eigen::Index needed,
                  const std::string& what) {
  if (s.size() != 1 && s.size() < needed)
    throw_invalid(name, "1 entry or at least " + std::to_string(needed) + " (" + what + ")",
                  std::to_string(s.size()) + " entries");
}

}  // namespace

void validate(const Params& params) {
  const Eigen::Index n = params.state_dim();
  if (n < 1) throw_invalid("initial.mean", "state_dim >= 1 entries", shape_str(n));
  check_finite("initial.mean", params.initial.mean);
  if (params.initial.cov.rows() != n || params.initial.cov.cols() != n)
    throw_invalid("initial.cov", "shape " + shape_str(n, n),
                  shape_str(params.initial.cov.rows(), params.initial.cov.cols()));
  check_covariance("initial.cov", params.initial.cov, Definiteness::kSemidefinite);
  const Eigen::Index m = params.dynamics.input_weights.cols();
  check_conditional("dynamics", params.dynamics, n, n, m, Definiteness::kSemidefinite);
  const Eigen::Index p = params.emissions.weights.rows();
  if (p < 1) throw_invalid("emissions.weights", "emission_dim >= 1 rows", shape_str(p, n));
  check_conditional("emissions", params.emissions, p, n, m, Definiteness::kZeroRowsOrDefinite);
}

void check_series_lengths(const Params& params, Eigen::Index num_timesteps) {
  const std::string em = "one per time step, num_timesteps = " + std::to_string(num_timesteps);
  const std::string dy = "one per transition, num_timesteps - 1 = " + std::to_string(num_timesteps - 1);
  const auto& d = params.dynamics;
  const auto& e = params.emissions;
  check_length("dynamics.weights", d.weights, num_timesteps - 1, dy);
  check_length("dynamics.bias", d.bias, num_timesteps - 1, dy);
  check_length("dynamics.input_weights", d.input_weights, num_timesteps - 1, dy);
  check_length("dynamics.cov", d.cov, num_timesteps - 1, dy);
  check_length("emissions.weights", e.weights, num_timesteps, em);
  check_length("emissions.bias", e.bias, num_timesteps, em);
  check_length("emissions.input_weights", e.input_weights, num_timesteps, em);
  check_length("emissions.cov", e.cov, num_timesteps, em);
}

void check_inputs(const Params& params, const RowMatrix& inputs, Eigen::Index num_timesteps,
                  const std::string& name) {
  const Eigen::Index m = params.input_dim();
  if (m == 0) {
    if (inputs.size() != 0)
      throw_invalid(name, "no inputs (the model has input_dim 0)",
                    "shape " + shape_str(inputs.rows(), inputs.cols()));
    return;
  }
  if (inputs.rows() != num_timesteps || inputs.cols() != m)
    throw_invalid(name, "shape " + shape_str(num_timesteps, m),
                  shape_str(inputs.rows(), inputs.cols()));
  check_finite(name, inputs);
}

void validate(const Params& params, const Sequence& seq, const std::string& name) {
  const Eigen::Index p = params.emission_dim();
  const Eigen::Index t = seq.num_timesteps();
  if (t < 1 || seq.emissions.cols() != p)
    throw_invalid(name, "shape (num_timesteps >= 1, emission_dim = " + std::to_string(p) + ")",
                  shape_str(seq.emissions.rows(), seq.emissions.cols()));
  for (Eigen::Index i = 0; i < t; ++i)
    for (Eigen::Index j = 0; j < p; ++j)
      if (std::isinf(seq.emissions(i, j)))
        throw_invalid(name, "finite values or NaN for missing", number(seq.emissions(i, j)) + " at " + shape_str(i, j));
  const std::string inputs_name = name == "emissions" ? "inputs" : "inputs of " + name;
  check_inputs(params, seq.inputs, t, inputs_name);
  check_series_lengths(params, t);
}

void validate(const Params& params, const std::vector<Sequence>& seqs) {
  if (seqs.empty()) throw_invalid("emissions", "at least one sequence", "none");
  for (size_t i = 0; i < seqs.size(); ++i)
    validate(params, seqs[i], seqs.size() == 1 ? "emissions" : "emissions[" + std::to_string(i) + "]");
}

}  // namespace lgssm
