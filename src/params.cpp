#include "lgssm/params.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <cmath>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "lgssm/error.hpp"

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

namespace {

// A vector series (bias) is described as (rows,), a matrix series as (rows, cols).
void check_series(const std::string& name, const MatrixSeries& s, Eigen::Index rows, Eigen::Index cols,
                  bool vector = false) {
  if (s.size() < 1) throw_invalid(name, "at least one entry", "none");
  if (s.rows() != rows || s.cols() != cols) {
    const std::string want = vector ? shape_str(rows) : shape_str(rows, cols);
    const std::string got = vector && s.cols() == 1 ? shape_str(s.rows()) : shape_str(s.rows(), s.cols());
    throw_invalid(name, "shape " + want + " per entry", got);
  }
  if (internal::all_finite(s.flat())) return;
  for (Eigen::Index k = 0; k < s.size(); ++k)
    internal::check_finite(s.size() == 1 ? name : name + "[" + std::to_string(k) + "]", s[k]);
}

void check_conditional(const std::string& prefix, const LinearGaussianParams& p, Eigen::Index out_dim,
                       Eigen::Index state_dim, Eigen::Index input_dim, internal::Definiteness cov_kind) {
  check_series(prefix + ".weights", p.weights, out_dim, state_dim);
  check_series(prefix + ".bias", p.bias, out_dim, 1, true);
  check_series(prefix + ".input_weights", p.input_weights, out_dim, input_dim);
  check_series(prefix + ".cov", p.cov, out_dim, out_dim);
  for (Eigen::Index i = 0; i < p.cov.size(); ++i) {
    const std::string name = p.cov.size() == 1 ? prefix + ".cov" : prefix + ".cov[" + std::to_string(i) + "]";
    internal::check_covariance(name, p.cov[i], cov_kind);
  }
}

void check_length(const std::string& name, const MatrixSeries& s, Eigen::Index needed, const std::string& what) {
  if (s.size() != 1 && s.size() < needed)
    throw_invalid(name, "1 entry or at least " + std::to_string(needed) + " (" + what + ")",
                  std::to_string(s.size()) + " entries");
}

}  // namespace

void validate(const Params& params) {
  const Eigen::Index n = params.state_dim();
  if (n < 1) throw_invalid("initial.mean", "state_dim >= 1 entries", shape_str(n));
  internal::check_finite("initial.mean", params.initial.mean);
  if (params.initial.cov.rows() != n || params.initial.cov.cols() != n)
    throw_invalid("initial.cov", "shape " + shape_str(n, n),
                  shape_str(params.initial.cov.rows(), params.initial.cov.cols()));
  internal::check_covariance("initial.cov", params.initial.cov, internal::Definiteness::kSemidefinite);
  if (params.initial.is_diffuse()) {
    if (params.initial.diffuse.rows() != n)
      throw_invalid("initial.diffuse", "shape (state_dim = " + std::to_string(n) + ", q)",
                    shape_str(params.initial.diffuse.rows(), params.initial.diffuse.cols()));
    internal::check_finite("initial.diffuse", params.initial.diffuse);
  }
  const Eigen::Index m = params.dynamics.input_weights.cols();
  check_conditional("dynamics", params.dynamics, n, n, m, internal::Definiteness::kSemidefinite);
  const Eigen::Index p = params.emissions.weights.rows();
  if (p < 1) throw_invalid("emissions.weights", "emission_dim >= 1 rows", shape_str(p, n));
  check_conditional("emissions", params.emissions, p, n, m, internal::Definiteness::kZeroRowsOrDefinite);
}

Matrix stationary_initial(const Matrix& weights, const Matrix& cov) {
  const Eigen::Index n = weights.rows();
  if (n < 1 || weights.cols() != n)
    throw_invalid("dynamics.weights", "a square matrix", shape_str(weights.rows(), weights.cols()));
  internal::check_finite("dynamics.weights", weights);
  if (cov.rows() != n || cov.cols() != n)
    throw_invalid("dynamics.cov", "shape " + shape_str(n, n), shape_str(cov.rows(), cov.cols()));
  internal::check_covariance("dynamics.cov", cov, internal::Definiteness::kSemidefinite);
  const double radius = weights.eigenvalues().cwiseAbs().maxCoeff();
  if (!(radius < 1.0))
    throw_invalid("dynamics.weights",
                  "a stable matrix (all eigenvalues inside the unit circle) for a stationary distribution",
                  "spectral radius " + number(radius));
  Matrix p = cov, a = weights;
  for (int j = 0; j < 200; ++j) {
    const Matrix term = a * p * a.transpose();
    p += term;
    a = a * a;
    if (term.norm() <= 1e-16 * p.norm()) break;
  }
  p = 0.5 * (p + p.transpose()).eval();
  return p;
}

void internal::check_series_lengths(const Params& params, Eigen::Index num_timesteps) {
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

void internal::check_inputs(const Params& params, const RowMatrix& inputs, Eigen::Index num_timesteps,
                            const std::string& name) {
  const Eigen::Index m = params.input_dim();
  if (m == 0) {
    if (inputs.size() != 0)
      throw_invalid(name, "no inputs (the model has input_dim 0)", "shape " + shape_str(inputs.rows(), inputs.cols()));
    return;
  }
  if (inputs.rows() != num_timesteps || inputs.cols() != m)
    throw_invalid(name, "shape " + shape_str(num_timesteps, m), shape_str(inputs.rows(), inputs.cols()));
  internal::check_finite(name, inputs);
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
  internal::check_inputs(params, seq.inputs, t, inputs_name);
  internal::check_series_lengths(params, t);
}

void validate(const Params& params, const std::vector<Sequence>& seqs) {
  if (seqs.empty()) throw_invalid("emissions", "at least one sequence", "none");
  for (size_t i = 0; i < seqs.size(); ++i)
    validate(params, seqs[i], seqs.size() == 1 ? "emissions" : "emissions[" + std::to_string(i) + "]");
}

}  // namespace lgssm
