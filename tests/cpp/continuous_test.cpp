// Continuous-time models: discretization against closed forms, its inverse,
// exact gradients against finite differences, and generalized EM.
#include "lgssm/continuous.hpp"

#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <cmath>
#include <random>
#include <regex>
#include <sstream>
#include <unsupported/Eigen/MatrixFunctions>
#include <utility>

#include "lgssm/error.hpp"
#include "lgssm/inference.hpp"
#include "lgssm/information.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

ContinuousParams oscillator(Eigen::Index emission_dim, std::uint64_t seed);

Matrix rotation(double angle) {
  Matrix r(2, 2);
  r << std::cos(angle), -std::sin(angle), std::sin(angle), std::cos(angle);
  return r;
}

TEST(Discretize, OrnsteinUhlenbeckClosedForm) {
  for (double theta : {0.1, 0.7, 3.0})
    for (double sigma : {0.2, 1.5})
      for (double s : {0.01, 0.3, 2.0}) {
        const Discretization d = discretize(Matrix::Constant(1, 1, -theta), Matrix::Constant(1, 1, sigma * sigma), s);
        EXPECT_NEAR(d.weights(0, 0), std::exp(-theta * s), 1e-14);
        const double var = sigma * sigma * (1.0 - std::exp(-2.0 * theta * s)) / (2.0 * theta);
        EXPECT_NEAR(d.cov(0, 0), var, 1e-13 * std::max(1.0, var));
      }
}

TEST(Discretize, DampedRotationClosedForm) {
  // F = -a I + w J (J the 90-degree rotation generator), Q_c = q I:
  // A_s = e^{-a s} R(w s), Sigma_s = q (1 - e^{-2 a s}) / (2 a) I.
  const double a = 0.3, w = 2.0, q = 0.5;
  Matrix f(2, 2);
  f << -a, -w, w, -a;
  for (double s : {0.05, 0.5, 3.0}) {
    const Discretization d = discretize(f, q * Matrix::Identity(2, 2), s);
    EXPECT_MATRIX_NEAR(d.weights, std::exp(-a * s) * rotation(w * s), 1e-13);
    EXPECT_MATRIX_NEAR(d.cov, q * (1 - std::exp(-2 * a * s)) / (2 * a) * Matrix::Identity(2, 2), 1e-13);
  }
}

// Records the worst relative error of a grid (in the XML report, --gtest_output=xml).
void record_worst(double worst) {
  std::ostringstream out;
  out << worst;
  ::testing::Test::RecordProperty("worst_relative_error", out.str());
}

// The scalar Ornstein-Uhlenbeck process dx = f x dt + sqrt(q) dW:
// A = e^{f h}, Sigma = q (e^{2 f h} - 1) / (2 f), with expm1 (no cancellation).
TEST(Discretize, StiffScalarMatchesTheClosedFormOverTheGrid) {
  double worst = 0.0;
  for (double f : {-1e-3, -0.1, -1.0, -10.0, -720.0, -1e3, -1e4})
    for (double h : {1e-9, 1e-6, 1e-3, 1.0, 1e3}) {
      const Discretization d = discretize(Matrix::Constant(1, 1, f), Matrix::Constant(1, 1, 2.0), h);
      const double a = std::exp(f * h), var = 2.0 * std::expm1(2.0 * f * h) / (2.0 * f);
      ASSERT_TRUE(std::isfinite(d.weights(0, 0)) && std::isfinite(d.cov(0, 0))) << "f " << f << " h " << h;
      EXPECT_LE(std::abs(d.weights(0, 0) - a), 1e-10 * a + 1e-300) << "f " << f << " h " << h;
      EXPECT_LE(std::abs(d.cov(0, 0) - var), 1e-10 * var) << "f " << f << " h " << h;
      worst = std::max({worst, std::abs(d.cov(0, 0) - var) / var, a > 0 ? std::abs(d.weights(0, 0) - a) / a : 0.0});
    }
  record_worst(worst);
  // The reproducer: Van Loan's block exponential gave NaN here.
  EXPECT_NEAR(discretize(Matrix::Constant(1, 1, -1000.0), Matrix::Identity(1, 1), 1.0).cov(0, 0), 5e-4, 1e-16);
}

// exp(F h) and Sigma_h for a diagonalizable F = V D V^{-1} with V, D given
// exactly: A = V e^{D h} V^{-1}, Sigma = V [C_ij h phi(h (d_i + d_j))] V^T with
// C = V^{-1} Q V^{-T} and h phi(h z) = expm1(h z) / z (the Lyapunov integral in
// the eigenbasis, no cancellation).
Discretization eigenbasis_reference(const Matrix& v, const Vector& d, const Matrix& q, double h) {
  const Matrix v_inv = v.inverse();
  const Matrix c = v_inv * q * v_inv.transpose();
  Matrix s(2, 2);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 2; ++j) s(i, j) = c(i, j) * std::expm1(h * (d(i) + d(j))) / (d(i) + d(j));
  return {v * Vector(((h * d).array().exp())).asDiagonal() * v_inv, v * s * v.transpose()};
}

double relative(const Matrix& a, const Matrix& b) { return (a - b).norm() / b.norm(); }

TEST(Discretize, StiffTwoByTwoDriftsMatchTheEigenbasisReference) {
  // Diagonal drifts (exact in floating point) and upper-triangular non-normal
  // ones (F = [[d0, c], [0, d1]], eigenvectors e_0 and (c, d1 - d0)), with
  // eigenvalues from -1e-3 to -1e4 and steps from 1e-9 to 1e3.
  Matrix q(2, 2);
  q << 1.0, 0.3, 0.3, 0.5;
  double worst = 0.0;
  for (double fast : {-1e-3, -1.0, -1e2, -1e4})
    for (double coupling : {0.0, 1.0, 1e2})
      for (double h : {1e-9, 1e-6, 1e-3, 1.0, 1e3}) {
        Vector d(2);
        d << fast, -1e-3 * (fast == -1e-3 ? 2.0 : 1.0);  // distinct eigenvalues
        Matrix f(2, 2), v(2, 2);
        f << d(0), coupling * std::abs(fast), 0.0, d(1);
        v << 1.0, f(0, 1), 0.0, d(1) - d(0);
        const Discretization got = discretize(f, q, h), want = eigenbasis_reference(v, d, q, h);
        const double err = std::max(relative(got.weights, want.weights), relative(got.cov, want.cov));
        EXPECT_LE(err, 1e-10) << "eigenvalues " << d.transpose() << ", coupling " << coupling << ", h " << h;
        EXPECT_GE(Eigen::SelfAdjointEigenSolver<Matrix>(got.cov).eigenvalues().minCoeff(), 0.0);
        EXPECT_EQ(got.cov, got.cov.transpose());
        worst = std::max(worst, err);
      }
  record_worst(worst);
}

TEST(Discretize, NonNormalStiffDriftGivesAFinitePositiveSemidefiniteCovariance) {
  // The reproducer: F = V diag(-1e3, -1e-3) V^{-1}; Van Loan's block gave a
  // Sigma of norm 1e24 with an eigenvalue -7e22.
  Matrix v(2, 2);
  v << 1.0, 0.5, 0.3, 1.0;
  Vector d(2);
  d << -1e3, -1e-3;
  const Matrix f = v * d.asDiagonal() * v.inverse(), q = Matrix::Identity(2, 2);
  const Discretization got = discretize(f, q, 0.1), want = eigenbasis_reference(v, d, q, 0.1);
  EXPECT_LT(relative(got.cov, want.cov), 1e-12);
  EXPECT_LT(relative(got.weights, want.weights), 1e-12);
  EXPECT_GE(Eigen::SelfAdjointEigenSolver<Matrix>(got.cov).eigenvalues().minCoeff(), 0.0);
}

TEST(Discretize, HugeGapsReachTheStationaryCovariance) {
  // F = -0.1 I, Q_c = Q: A = e^{-0.1 s} underflows to 0; Sigma -> Q / 0.2.
  Matrix q(2, 2);
  q << 1.0, 0.2, 0.2, 0.4;
  const Discretization d = discretize(-0.1 * Matrix::Identity(2, 2), q, 1e300);
  EXPECT_TRUE(d.weights.isZero(0.0));
  EXPECT_MATRIX_NEAR(d.cov, q / 0.2, 1e-13);
  ContinuousParams p = oscillator(2, 1);
  p.dynamics.drift = -0.1 * Matrix::Identity(2, 2);
  Vector times(3);
  times << 0.0, 1e300, 1.5e300;
  EXPECT_NO_THROW(validate(to_discrete(p, times)));
}

// Runs f, which must throw lgssm::invalid_argument with a message matching `pattern`.
template <class F>
void expect_invalid(F&& f, const std::string& pattern) {
  try {
    f();
    ADD_FAILURE() << "expected lgssm::invalid_argument matching " << pattern;
  } catch (const invalid_argument& e) {
    EXPECT_TRUE(std::regex_search(e.what(), std::regex(pattern))) << e.what() << " !~ " << pattern;
  }
}

TEST(Discretize, RejectsBadArgumentsByName) {
  const Matrix i2 = Matrix::Identity(2, 2), i3 = Matrix::Identity(3, 3);
  // Mismatched shapes corrupted the heap (-I2, I3) or passed (-I3, I2).
  expect_invalid([&] { discretize(-i2, i3, 1.0); }, "^diffusion_covariance: expected shape \\(2, 2\\)");
  expect_invalid([&] { discretize(-i3, i2, 1.0); }, "^diffusion_covariance: expected shape \\(3, 3\\)");
  expect_invalid([&] { discretize(Matrix::Ones(2, 3), i2, 1.0); }, "^drift: expected a square matrix");
  expect_invalid([&] { discretize(Matrix(0, 0), Matrix(0, 0), 1.0); }, "^drift: expected a square matrix");
  expect_invalid([&] { discretize(-i2, -i2, 1.0); },
                 "^diffusion_covariance: expected a symmetric positive semidefinite");
  Matrix asym = i2;
  asym(0, 1) = 0.5;
  expect_invalid([&] { discretize(-i2, asym, 1.0); }, "^diffusion_covariance: expected a symmetric");
  Matrix nan_drift = -i2;
  nan_drift(1, 0) = NAN;
  expect_invalid([&] { discretize(nan_drift, i2, 1.0); }, "^drift: expected finite values");
  expect_invalid([&] { discretize(-i2, i2, 0.0); }, "^dt: expected a finite step > 0");
  expect_invalid([&] { discretize(i2, i2, 1e3); }, "^drift: expected a drift whose transition .* finite");
  expect_invalid([&] { undiscretize(i2, -i2, 1.0); }, "^cov: expected a symmetric positive semidefinite");
  expect_invalid([&] { undiscretize(i2, i3, 1.0); }, "^cov: expected shape \\(2, 2\\)");
  ContinuousParams p = oscillator(2, 1);
  p.dynamics.drift = i2;
  Vector times(2);
  times << 0.0, 1e3;
  expect_invalid([&] { to_discrete(p, times); }, "^times: expected gaps over which .* finite");
  times << -1e308, 1e308;
  expect_invalid([&] { to_discrete(oscillator(2, 1), times); }, "^times: expected finite gaps");
}

TEST(Undiscretize, RoundTripOfAStiffDrift) {
  // Q_c from the linear equations Sigma_s(Q_c) = Sigma: no A^{-T} (of norm
  // about e^{15} here) is formed. (A's eigenvalue e^{-15} is known to a
  // relative 1e-16 / e^{-15} = 3e-10 only, which bounds F's accuracy.)
  Matrix v(2, 2);
  v << 1.0, 0.5, 0.3, 1.0;
  Vector d(2);
  d << -15.0, -0.5;
  Matrix q(2, 2);
  q << 1.0, 0.3, 0.3, 0.5;
  const Matrix f = v * d.asDiagonal() * v.inverse();
  const Discretization disc = discretize(f, q, 1.0);
  const Undiscretization u = undiscretize(disc.weights, disc.cov, 1.0);
  EXPECT_MATRIX_NEAR(u.drift, f, 1e-8);
  EXPECT_MATRIX_NEAR(u.diffusion_cov, q, 1e-8);
}

TEST(Undiscretize, RoundTrip) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal;
  for (int trial = 0; trial < 5; ++trial) {
    const int n = 2 + trial % 3;
    Matrix f(n, n), l(n, n);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        f(i, j) = normal(rng);
        l(i, j) = normal(rng);
      }
    f -= (Eigen::EigenSolver<Matrix>(f).eigenvalues().real().maxCoeff() + 0.5) * Matrix::Identity(n, n);  // stable
    const Matrix qc = l * l.transpose();
    const double dt = 0.1 + 0.2 * trial;
    const Discretization d = discretize(f, qc, dt);
    const Undiscretization u = undiscretize(d.weights, d.cov, dt);
    EXPECT_MATRIX_NEAR(u.drift, f, 1e-10);
    EXPECT_MATRIX_NEAR(u.diffusion_cov, qc, 1e-10);
    EXPECT_EQ(u.psd_correction, 0.0);
  }
}

void expect_log_error(const Matrix& a) {
  try {
    undiscretize(a, Matrix::Identity(a.rows(), a.cols()), 1.0);
    FAIL() << "expected lgssm::invalid_argument";
  } catch (const invalid_argument& e) {
    EXPECT_TRUE(std::regex_search(e.what(), std::regex("^weights: expected .*negative real axis.*, got eigenvalue")))
        << e.what();
  }
}

TEST(Undiscretize, NoRealPrincipalLogarithm) {
  expect_log_error(-0.5 * Matrix::Identity(2, 2));  // negative real eigenvalues
  Matrix singular(2, 2);
  singular << 1, 0, 0, 0;
  expect_log_error(singular);  // eigenvalue 0
  Matrix mixed(2, 2);
  mixed << 0.9, 0, 0, -0.2;
  expect_log_error(mixed);
}

TEST(Undiscretize, ProjectsAnIndefiniteDiffusionToTheNearestPsdMatrix) {
  Matrix f(2, 2);
  f << -0.5, 0.3, -0.2, -0.4;
  const double dt = 0.5;
  // From a singular Q_c, a covariance made smaller in its weakest direction
  // (still positive definite) maps to an indefinite Q_c: the map is linear.
  Matrix qc0 = Matrix::Zero(2, 2);
  qc0(0, 0) = 1.0;
  const Discretization d = discretize(f, qc0, dt);
  const Eigen::SelfAdjointEigenSolver<Matrix> weak(d.cov);
  const Matrix cov =
      d.cov - 0.5 * weak.eigenvalues()(0) * weak.eigenvectors().col(0) * weak.eigenvectors().col(0).transpose();
  // The unprojected Q_c, computed independently from the block logarithm.
  Matrix block(4, 4);
  const Matrix a_inv_t = d.weights.transpose().inverse();
  block << d.weights, cov * a_inv_t, Matrix::Zero(2, 2), a_inv_t;
  Matrix raw = Matrix(block.log()).topRightCorner(2, 2) / dt;
  raw = 0.5 * (raw + raw.transpose());
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(raw);
  ASSERT_LT(eig.eigenvalues().minCoeff(), 0.0) << "the test case must give an indefinite Q_c";
  const double negative_part = eig.eigenvalues().cwiseMin(0.0).norm();

  const Undiscretization u = undiscretize(d.weights, cov, dt);
  EXPECT_NEAR(u.psd_correction, negative_part, 1e-10);
  EXPECT_GE(Eigen::SelfAdjointEigenSolver<Matrix>(u.diffusion_cov).eigenvalues().minCoeff(), -1e-12);
  EXPECT_NEAR((u.diffusion_cov - raw).norm(), negative_part, 1e-10);
}

ContinuousParams oscillator(Eigen::Index emission_dim, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  ContinuousParams p;
  p.initial.mean = Vector::Zero(2);
  p.initial.cov = Matrix::Identity(2, 2);
  p.dynamics.drift.resize(2, 2);
  p.dynamics.drift << 0, 1, -4, -0.4;
  p.dynamics.diffusion_cov.resize(2, 2);
  p.dynamics.diffusion_cov << 0.05, 0.01, 0.01, 0.3;
  RowMatrix h(emission_dim, 2);
  for (Eigen::Index i = 0; i < h.size(); ++i) h.data()[i] = normal(rng);
  p.emissions.weights = MatrixSeries::constant(h);
  p.emissions.bias = MatrixSeries::constant(RowMatrix(Vector::LinSpaced(emission_dim, -1, 1)));
  p.emissions.input_weights = MatrixSeries(1, emission_dim, 0);
  p.emissions.cov = MatrixSeries::constant(RowMatrix(0.1 * Matrix::Identity(emission_dim, emission_dim)));
  return p;
}

std::vector<TimedSequence> irregular_data(const ContinuousParams& p, int num_sequences, int steps, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::exponential_distribution<double> gap(10.0);
  std::vector<TimedSequence> out;
  for (int i = 0; i < num_sequences; ++i) {
    Vector times(steps);
    times(0) = 0.0;
    for (int k = 1; k < steps; ++k) times(k) = times(k - 1) + gap(rng);
    Sequence seq{sample(to_discrete(p, times), seed + i, steps).emissions, RowMatrix()};
    if (i == 0) seq.emissions(2, 0) = NAN;  // a missing component
    out.push_back({std::move(seq), times});
  }
  return out;
}

TEST(ToDiscrete, OneTransitionPerGap) {
  const ContinuousParams p = oscillator(2, 1);
  Vector uniform = Vector::LinSpaced(5, 0.0, 0.4);
  const Params d = to_discrete(p, uniform);
  ASSERT_EQ(d.dynamics.weights.size(), 1);
  EXPECT_MATRIX_NEAR(d.dynamics.weights[0], discretize(p.dynamics.drift, p.dynamics.diffusion_cov, 0.1).weights, 1e-12);
  Vector irregular(4);
  irregular << 0.0, 0.1, 0.35, 0.4;
  const Params e = to_discrete(p, irregular);
  ASSERT_EQ(e.dynamics.weights.size(), 3);
  for (int k = 0; k < 3; ++k) {
    const Discretization dk = discretize(p.dynamics.drift, p.dynamics.diffusion_cov, irregular(k + 1) - irregular(k));
    EXPECT_MATRIX_NEAR(e.dynamics.weights[k], dk.weights, 1e-12);
    EXPECT_MATRIX_NEAR(e.dynamics.cov[k], dk.cov, 1e-12);
  }
  Vector decreasing(3);
  decreasing << 0.0, 0.2, 0.1;
  EXPECT_THROW(to_discrete(p, decreasing), invalid_argument);
}

struct PropsCase {
  const char* name;
  ContinuousProps props;
};

class ContinuousGradient : public ::testing::TestWithParam<PropsCase> {};

ContinuousProps dynamics_only();

// The gradient of log_prob_and_gradient against central differences.
void expect_gradient_matches_finite_differences(const ContinuousParams& start, const ContinuousProps& props,
                                                const std::vector<TimedSequence>& seqs) {
  const Vector x = to_unconstrained(start, props);
  Vector grad;
  log_prob_and_gradient(start, props, seqs, grad, 1);
  ASSERT_EQ(grad.size(), x.size());
  auto f = [&](const Vector& xx) {
    Vector unused;
    return log_prob_and_gradient(from_unconstrained(xx, start, props), props, seqs, unused, 1);
  };
  const double h = 1e-5;
  for (Eigen::Index i = 0; i < x.size(); ++i) {
    Vector xp = x, xm = x;
    xp(i) += h;
    xm(i) -= h;
    const double fd = (f(xp) - f(xm)) / (2 * h);
    EXPECT_NEAR(grad(i), fd, 1e-6 * std::max(1.0, std::abs(fd))) << "coordinate " << i;
  }
}

TEST_P(ContinuousGradient, MatchesFiniteDifferences) {
  ContinuousParams p = oscillator(3, 2);
  const ContinuousProps& props = GetParam().props;
  if (props.diffusion_cov_structure == CovStructure::kDiagonal)
    p.dynamics.diffusion_cov = Matrix(Vector(Vector::Constant(2, 0.2)).asDiagonal());
  const auto seqs = irregular_data(p, 3, 6, 11);
  ContinuousParams start = p;
  start.dynamics.drift(0, 0) = -0.3;  // away from the truth
  expect_gradient_matches_finite_differences(start, props, seqs);
}

// A stiff drift, eigenvalues -200 and -1 (non-normal), with data at gaps of
// mean 2: about 10 doublings each, the first on B = A - I, the last (once
// |A|_1 <= 1/2) on A.
std::pair<ContinuousParams, std::vector<TimedSequence>> stiff_case() {
  ContinuousParams p = oscillator(3, 8);
  Matrix v(2, 2);
  v << 1.0, 0.5, 0.3, 1.0;
  p.dynamics.drift = v * Vector(Eigen::Vector2d(-200.0, -1.0)).asDiagonal() * v.inverse();
  std::vector<TimedSequence> seqs = irregular_data(p, 2, 6, 13);
  for (auto& s : seqs) s.times *= 20.0;  // gaps of mean 2
  for (auto& s : seqs) s.seq.emissions = sample(to_discrete(p, s.times), 5, s.times.size()).emissions;
  return {p, seqs};
}

TEST(ContinuousGradient, StiffDriftMatchesFiniteDifferences) {
  const auto [p, seqs] = stiff_case();
  expect_gradient_matches_finite_differences(p, dynamics_only(), seqs);
}

ContinuousProps all_trainable() { return ContinuousProps{}; }
ContinuousProps dynamics_only() {
  ContinuousProps p;
  p.initial.mean = p.initial.cov = false;
  p.emissions.weights = p.emissions.bias = p.emissions.input_weights = p.emissions.cov = false;
  return p;
}
ContinuousProps drift_frozen_diagonal() {
  ContinuousProps p;
  p.drift = false;
  p.diffusion_cov_structure = CovStructure::kDiagonal;
  p.emissions.cov_structure = CovStructure::kFull;
  return p;
}

INSTANTIATE_TEST_SUITE_P(Props, ContinuousGradient,
                         ::testing::Values(PropsCase{"all", all_trainable()}, PropsCase{"dynamics", dynamics_only()},
                                           PropsCase{"drift_frozen_diagonal", drift_frozen_diagonal()}),
                         [](const auto& info) { return std::string(info.param.name); });

// The information's score over the drift against the adjoint gradient of
// log_prob_and_gradient (an independent, reverse-mode derivative: the drift's
// unconstrained coordinates are its entries, column by column), on
// stiff_case's drift.
TEST(ContinuousInformation, StiffDriftScoreIsTheAdjointGradient) {
  const auto [p, seqs] = stiff_case();
  ContinuousProps props = dynamics_only();
  props.diffusion_cov = false;
  const InformationResult info = information(p, props, seqs, true, 1);
  ASSERT_EQ(info.score.size(), 4);  // the drift's entries, row by row
  Vector grad;
  EXPECT_NEAR(log_prob_and_gradient(p, props, seqs, grad, 1), info.marginal_loglik,
              1e-12 * std::abs(info.marginal_loglik));
  ASSERT_EQ(grad.size(), 4);
  const Matrix by_adjoint = Eigen::Map<const Matrix>(grad.data(), 2, 2);
  for (Eigen::Index i = 0; i < 2; ++i)
    for (Eigen::Index j = 0; j < 2; ++j)
      EXPECT_NEAR(info.score(2 * i + j), by_adjoint(i, j), 1e-8 * std::max(1.0, by_adjoint.cwiseAbs().maxCoeff()))
          << "drift(" << i << ", " << j << ")";
  EXPECT_TRUE(info.hessian.isApprox(info.hessian.transpose(), 1e-12));
}

TEST(ContinuousEm, GeneralizedEmIsMonotoneAndHonoursFrozenParameters) {
  const ContinuousParams truth = oscillator(3, 3);
  const auto seqs = irregular_data(truth, 6, 12, 21);
  ContinuousParams start = truth;
  start.dynamics.drift = -0.2 * Matrix::Identity(2, 2);
  start.dynamics.diffusion_cov = 0.2 * Matrix::Identity(2, 2);
  ContinuousParams per_step = start;  // per-step emission parameters: SQUAREM extrapolates every entry
  for (MatrixSeries* s : {&per_step.emissions.weights, &per_step.emissions.bias, &per_step.emissions.input_weights,
                          &per_step.emissions.cov}) {
    MatrixSeries series(12, s->rows(), s->cols());
    for (Eigen::Index k = 0; k < 12; ++k) series[k] = (*s)[0];
    *s = series;
  }
  ContinuousProps props;
  props.emissions.weights = false;
  for (const ContinuousParams* from : {&start, &per_step}) {
    for (bool accelerate : {false, true}) {
      SCOPED_TRACE(std::string(from == &start ? "constant" : "per-step") + " emissions, accelerate " +
                   (accelerate ? "on" : "off"));
      ContinuousEmOptions options;
      options.num_iters = 8;
      options.num_threads = 1;
      options.accelerate = accelerate;
      const ContinuousFitResult r = fit_em(*from, props, seqs, options);
      ASSERT_EQ(r.history.size(), 8u) << r.summary.message;
      for (size_t k = 1; k < r.history.size(); ++k)
        EXPECT_GE(r.history[k], r.history[k - 1] - 1e-8 * std::abs(r.history[k - 1])) << "iteration " << k;
      EXPECT_TRUE(r.params.emissions.weights.flat() == from->emissions.weights.flat());
      EXPECT_GT(r.history.back(), r.history.front());
    }
  }
}

TEST(ContinuousStats, SumOfBatchesIsTheStatisticsOfAllSequences) {
  const ContinuousParams truth = oscillator(3, 5);
  const auto seqs = irregular_data(truth, 6, 9, 31);
  const std::vector<TimedSequence> head(seqs.begin(), seqs.begin() + 2), tail(seqs.begin() + 2, seqs.end());
  const ContinuousStats all = sufficient_stats(truth, seqs, 1);
  ContinuousStats sum = sufficient_stats(truth, tail, 1);
  sum += sufficient_stats(truth, head, 1);  // the gap lists interleave
  ASSERT_EQ(sum.gaps, all.gaps);
  ASSERT_EQ(all.gaps.size(), 6u * 8u);  // exponential gaps: all distinct
  ASSERT_EQ(sum.stats.dynamics.size(), all.stats.dynamics.size());
  for (size_t g = 0; g < all.gaps.size(); ++g) {
    EXPECT_MATRIX_NEAR(sum.stats.dynamics[g].xx, all.stats.dynamics[g].xx, 1e-12);
    EXPECT_MATRIX_NEAR(sum.stats.dynamics[g].rx, all.stats.dynamics[g].rx, 1e-12);
    EXPECT_MATRIX_NEAR(sum.stats.dynamics[g].rr, all.stats.dynamics[g].rr, 1e-12);
    EXPECT_EQ(sum.stats.dynamics[g].count, all.stats.dynamics[g].count);
  }
  EXPECT_MATRIX_NEAR(sum.stats.emissions[0].rx, all.stats.emissions[0].rx, 1e-12);
  EXPECT_NEAR(sum.stats.marginal_loglik, all.stats.marginal_loglik, 1e-10 * std::abs(all.stats.marginal_loglik));
}

TEST(ContinuousEm, GeneralizedEmIsTheLoopOfThePublicEAndMSteps) {
  const ContinuousParams truth = oscillator(3, 6);
  auto seqs = irregular_data(truth, 2, 6, 43);  // of different lengths, the shortest first
  for (auto& s : irregular_data(truth, 4, 10, 41)) seqs.push_back(std::move(s));
  ContinuousParams p = truth;
  p.dynamics.drift = -0.3 * Matrix::Identity(2, 2);
  ContinuousProps props;
  props.emissions.weights = false;
  ContinuousEmOptions options;
  options.num_iters = 3;
  options.num_threads = 1;
  options.accelerate = false;
  const ContinuousFitResult r = fit_em(p, props, seqs, options);
  for (int it = 0; it < 3; ++it) {
    const ContinuousStats stats = sufficient_stats(p, seqs, 1);
    EXPECT_EQ(stats.stats.marginal_loglik, r.history[it]);
    p = m_step(p, props, stats, options.m_step_iters, 1);
  }
  EXPECT_MATRIX_NEAR(p.dynamics.drift, r.params.dynamics.drift, 0.0);
  EXPECT_MATRIX_NEAR(p.dynamics.diffusion_cov, r.params.dynamics.diffusion_cov, 0.0);
}

TEST(ContinuousEm, MStepNamesMismatchedStatistics) {
  const ContinuousParams truth = oscillator(3, 7);
  ContinuousStats stats = sufficient_stats(truth, irregular_data(truth, 2, 5, 51), 1);
  stats.gaps.pop_back();
  EXPECT_THROW(
      {
        try {
          m_step(truth, ContinuousProps{}, stats);
        } catch (const invalid_argument& e) {
          EXPECT_NE(std::string(e.what()).find("stats"), std::string::npos) << e.what();
          throw;
        }
      },
      invalid_argument);
}

TEST(ContinuousEm, UniformStepsUseTheClosedFormEmAndMatchDiscreteEm) {
  const ContinuousParams truth = oscillator(3, 4);
  std::vector<TimedSequence> seqs;
  const Vector times = Vector::LinSpaced(10, 0.0, 0.9);
  for (int i = 0; i < 5; ++i)
    seqs.push_back({{sample(to_discrete(truth, times), 40 + i, 10).emissions, RowMatrix()}, times});
  ContinuousParams start = truth;
  start.dynamics.drift = -0.5 * Matrix::Identity(2, 2);
  ContinuousEmOptions options;
  options.num_iters = 10;
  options.num_threads = 1;
  const ContinuousFitResult r = fit_em(start, ContinuousProps{}, seqs, options);
  // The same EM on the equivalent discrete model, then the inverse map.
  ParamProps dprops;
  dprops.dynamics.bias = dprops.dynamics.input_weights = false;  // weights and cov trainable, full
  std::vector<Sequence> plain;
  for (const auto& s : seqs) plain.push_back(s.seq);
  EmOptions eo;
  eo.num_iters = 10;
  eo.num_threads = 1;
  const FitResult d = fit_em(to_discrete(start, times), dprops, plain, eo);
  ASSERT_EQ(r.history.size(), d.history.size());
  for (size_t k = 0; k < d.history.size(); ++k) EXPECT_NEAR(r.history[k], d.history[k], 1e-9 * std::abs(d.history[k]));
  const Undiscretization u = undiscretize(d.params.dynamics.weights[0], d.params.dynamics.cov[0], 0.1);
  EXPECT_MATRIX_NEAR(r.params.dynamics.drift, u.drift, 1e-10);
  EXPECT_MATRIX_NEAR(r.params.dynamics.diffusion_cov, u.diffusion_cov, 1e-10);
}

TEST(ContinuousFit, ValidatesEveryOptionByName) {
  const ContinuousParams p = oscillator(3, 9);
  const auto seqs = irregular_data(p, 2, 5, 61);
  LbfgsOptions lbfgs;
  lbfgs.max_iters = -1;  // ran with no cap
  expect_invalid([&] { fit_lbfgs(p, ContinuousProps{}, seqs, lbfgs); },
                 "^max_iters: expected an integer >= 0, got -1$");
  lbfgs = {};
  lbfgs.gradient_tolerance = -1.0;
  expect_invalid([&] { fit_lbfgs(p, ContinuousProps{}, seqs, lbfgs); },
                 "^gradient_tolerance: expected a finite value >= 0, got -1$");
  lbfgs = {};
  lbfgs.function_tolerance = NAN;
  expect_invalid([&] { fit_lbfgs(p, ContinuousProps{}, seqs, lbfgs); },
                 "^function_tolerance: expected a finite value >= 0");
  lbfgs = {};
  lbfgs.memory = 0;
  expect_invalid([&] { fit_lbfgs(p, ContinuousProps{}, seqs, lbfgs); }, "^memory: expected an integer >= 1, got 0$");
  lbfgs = {};
  lbfgs.prior = ConjugatePrior{};
  expect_invalid([&] { fit_lbfgs(p, ContinuousProps{}, seqs, lbfgs); }, "^prior: expected none");
  ContinuousEmOptions em;
  em.num_iters = -1;
  expect_invalid([&] { fit_em(p, ContinuousProps{}, seqs, em); }, "^num_iters: expected an integer >= 0, got -1$");
  em = {};
  em.tolerance = -1e-3;
  expect_invalid([&] { fit_em(p, ContinuousProps{}, seqs, em); },
                 "^tolerance: expected a finite value >= 0, got -0.001$");
  em = {};
  em.m_step_iters = 0;
  expect_invalid([&] { fit_em(p, ContinuousProps{}, seqs, em); }, "^m_step_iters: expected an integer >= 1, got 0$");
  em = {};
  em.num_threads = -2;
  expect_invalid([&] { fit_em(p, ContinuousProps{}, seqs, em); }, "^num_threads: expected an integer >= 0, got -2$");
  auto short_times = seqs;
  short_times[1].times.conservativeResize(3);
  Vector unused;
  expect_invalid([&] { log_prob_and_gradient(p, ContinuousProps{}, short_times, unused); },
                 "^times\\[1\\]: expected shape \\(5\\)");
}

TEST(ContinuousValidate, NamesTheArgument) {
  ContinuousParams p = oscillator(2, 5);
  p.dynamics.diffusion_cov(0, 0) = -1.0;
  try {
    validate(p);
    FAIL();
  } catch (const invalid_argument& e) {
    EXPECT_TRUE(
        std::regex_search(e.what(), std::regex("^dynamics.diffusion_cov: expected a symmetric positive semidefinite")))
        << e.what();
  }
  EXPECT_THROW(discretize(p.dynamics.drift, Matrix::Identity(2, 2), 0.0), invalid_argument);
}

}  // namespace
}  // namespace lgssm::test
