// Shared test helpers: the one matrix comparison of the suite and a builder of
// random models and sequences with fixed seeds.
#pragma once

#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "lgssm/params.hpp"

namespace lgssm::test {

using Eigen::Index;

// The comparison rule of EXPECT_MATRIX_NEAR(actual, expected, rtol): shapes
// agree (a row and a column vector of equal length count as equal), nothing is
// NaN, and
//     max_ij |actual_ij - expected_ij| <= rtol * max(1, max_ij |expected_ij|),
// i.e. relative to the largest entry of the reference, and absolute when the
// reference is below 1 in magnitude. On failure prints both matrices and their
// difference.
inline ::testing::AssertionResult matrix_near(const char* actual_expr, const char* expected_expr, const char* rtol_expr,
                                              const Matrix& actual, const Matrix& expected, double rtol) {
  Matrix a = actual;
  const bool both_vectors =
      (a.rows() == 1 || a.cols() == 1) && (expected.rows() == 1 || expected.cols() == 1) && a.size() == expected.size();
  if (both_vectors) a.resize(expected.rows(), expected.cols());
  if (a.rows() != expected.rows() || a.cols() != expected.cols()) {
    return ::testing::AssertionFailure() << actual_expr << " has shape (" << actual.rows() << ", " << actual.cols()
                                         << ") but " << expected_expr << " has shape (" << expected.rows() << ", "
                                         << expected.cols() << ")";
  }
  const double scale = std::max(1.0, expected.size() ? expected.cwiseAbs().maxCoeff() : 0.0);
  const double tol = rtol * scale;
  const Matrix diff = a - expected;
  const bool has_nan = a.hasNaN() || expected.hasNaN();
  const double err = diff.size() ? diff.cwiseAbs().maxCoeff() : 0.0;
  if (!has_nan && err <= tol) return ::testing::AssertionSuccess();
  const Eigen::IOFormat fmt(15, 0, ", ", "\n", "  [", "]");
  return ::testing::AssertionFailure() << "max |" << actual_expr << " - " << expected_expr << "| = " << err
                                       << " exceeds " << rtol_expr << " * max(1, max|expected|) = " << tol
                                       << (has_nan ? " (NaN present)" : "") << "\n"
                                       << actual_expr << " =\n"
                                       << a.format(fmt) << "\n"
                                       << expected_expr << " =\n"
                                       << expected.format(fmt) << "\ndifference =\n"
                                       << diff.format(fmt);
}

inline ::testing::AssertionResult matrix_near(const char* actual_expr, const char* expected_expr, const char* rtol_expr,
                                              double actual, double expected, double rtol) {
  return matrix_near(actual_expr, expected_expr, rtol_expr, Matrix::Constant(1, 1, actual),
                     Matrix::Constant(1, 1, expected), rtol);
}

#define EXPECT_MATRIX_NEAR(actual, expected, rtol) \
  EXPECT_PRED_FORMAT3(::lgssm::test::matrix_near, actual, expected, rtol)
#define ASSERT_MATRIX_NEAR(actual, expected, rtol) \
  ASSERT_PRED_FORMAT3(::lgssm::test::matrix_near, actual, expected, rtol)

// ---------------------------------------------------------------------------
// Random models.

// What random_params builds. Every matrix is drawn from a std::mt19937_64
// seeded with `seed`, so a spec always gives the same model on one platform.
struct ModelSpec {
  Index state_dim = 3;
  Index emission_dim = 2;
  Index input_dim = 0;
  // 0: every parameter constant (a series of one entry). L > 0: every
  // parameter per step, emissions with L entries and dynamics with L - 1,
  // enough for sequences (plus forecast horizons) of up to L steps.
  Index num_param_steps = 0;
  bool biases = false;                 // random biases; otherwise zero
  bool diagonal_emission_cov = false;  // emissions.cov diagonal; otherwise full
  Index initial_cov_rank = -1;         // rank of initial.cov; -1: full (PD)
  Index dynamics_cov_rank = -1;        // rank of dynamics.cov; -1: full (PD)
  std::uint64_t seed = 0;
};

inline Matrix random_matrix(std::mt19937_64& rng, Index rows, Index cols, double scale = 1.0) {
  std::normal_distribution<double> normal(0.0, scale);
  Matrix m(rows, cols);
  for (Index i = 0; i < rows; ++i)
    for (Index j = 0; j < cols; ++j) m(i, j) = normal(rng);
  return m;
}

// A dynamics matrix with spectral norm 0.95 (a stable, not too contracting map).
inline Matrix random_dynamics_weights(std::mt19937_64& rng, Index n) {
  const Matrix g = random_matrix(rng, n, n);
  const double norm = Eigen::JacobiSVD<Matrix>(g).singularValues()(0);
  return (0.95 / norm) * g;
}

// A covariance of the given rank (-1: full rank, eigenvalues >= 0.2). A
// rank-deficient one is A A^T with A of dyadic entries, so it is exactly
// symmetric and exactly singular in floating point.
inline Matrix random_cov(std::mt19937_64& rng, Index n, Index rank = -1) {
  if (rank < 0) {
    const Matrix a = random_matrix(rng, n, n);
    Matrix c = a * a.transpose() / static_cast<double>(n) + 0.2 * Matrix::Identity(n, n);
    return 0.5 * (c + c.transpose());
  }
  Matrix a = random_matrix(rng, n, rank);
  a = (a * 4.0).array().round().matrix() / 4.0;
  for (Index j = 0; j < rank; ++j)  // keep every column nonzero
    if (a.col(j).isZero()) a(j % n, j) = 0.75;
  Matrix c = a * a.transpose() / 2.0;
  return 0.5 * (c + c.transpose());
}

inline Matrix random_diagonal_cov(std::mt19937_64& rng, Index n) {
  std::uniform_real_distribution<double> uniform(0.2, 1.2);
  Vector d(n);
  for (Index i = 0; i < n; ++i) d(i) = uniform(rng);
  return d.asDiagonal();
}

// Fills every entry of `series` with `draw()`.
template <class Draw>
MatrixSeries random_series(Index size, Index rows, Index cols, Draw draw) {
  MatrixSeries s(size, rows, cols);
  for (Index k = 0; k < size; ++k) s[k] = draw();
  return s;
}

inline Params random_params(const ModelSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  const Index n = spec.state_dim, p = spec.emission_dim, m = spec.input_dim;
  const Index num_emission = spec.num_param_steps > 0 ? spec.num_param_steps : 1;
  const Index num_dynamics = spec.num_param_steps > 1 ? spec.num_param_steps - 1 : 1;

  Params params;
  params.initial.mean = random_matrix(rng, n, 1);
  params.initial.cov = random_cov(rng, n, spec.initial_cov_rank);

  auto& dyn = params.dynamics;
  dyn.weights = random_series(num_dynamics, n, n, [&] { return random_dynamics_weights(rng, n); });
  dyn.bias = random_series(num_dynamics, n, 1,
                           [&] { return spec.biases ? random_matrix(rng, n, 1) : Matrix(Matrix::Zero(n, 1)); });
  dyn.input_weights = random_series(num_dynamics, n, m, [&] { return random_matrix(rng, n, m); });
  dyn.cov = random_series(num_dynamics, n, n, [&] { return random_cov(rng, n, spec.dynamics_cov_rank); });

  auto& em = params.emissions;
  em.weights = random_series(num_emission, p, n, [&] { return random_matrix(rng, p, n); });
  em.bias = random_series(num_emission, p, 1,
                          [&] { return spec.biases ? random_matrix(rng, p, 1) : Matrix(Matrix::Zero(p, 1)); });
  em.input_weights = random_series(num_emission, p, m, [&] { return random_matrix(rng, p, m); });
  em.cov = random_series(num_emission, p, p,
                         [&] { return spec.diagonal_emission_cov ? random_diagonal_cov(rng, p) : random_cov(rng, p); });
  return params;
}

// What random_sequence builds.
struct SequenceSpec {
  Index num_timesteps = 5;
  double missing_fraction = 0.0;     // probability that a component is NaN
  std::vector<Index> missing_steps;  // steps with every component NaN
  std::uint64_t seed = 0;
};

// (num_timesteps, input_dim) standard normal inputs; empty when input_dim == 0.
inline RowMatrix random_inputs(Index num_timesteps, Index input_dim, std::uint64_t seed) {
  if (input_dim == 0) return RowMatrix();
  std::mt19937_64 rng(seed);
  return random_matrix(rng, num_timesteps, input_dim);
}

// Emissions are i.i.d. N(0, 1.5^2) (the exactness tests hold for any data),
// with NaNs as the spec asks; inputs as random_inputs.
inline Sequence random_sequence(const Params& params, const SequenceSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  Sequence seq;
  seq.emissions = random_matrix(rng, spec.num_timesteps, params.emission_dim(), 1.5);
  std::bernoulli_distribution missing(spec.missing_fraction);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (Index t = 0; t < spec.num_timesteps; ++t)
    for (Index i = 0; i < params.emission_dim(); ++i)
      if (spec.missing_fraction > 0 && missing(rng)) seq.emissions(t, i) = nan;
  for (Index t : spec.missing_steps) seq.emissions.row(t).setConstant(nan);
  seq.inputs = random_inputs(spec.num_timesteps, params.input_dim(), spec.seed + 1000);
  return seq;
}

}  // namespace lgssm::test
