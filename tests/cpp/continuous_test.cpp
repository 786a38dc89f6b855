// Continuous-time models: discretization against closed forms, its inverse,
// exact gradients against finite differences, and generalized EM.
#include <gtest/gtest.h>

#include <Eigen/Eigenvalues>
#include <cmath>
#include <random>
#include <regex>
#include <unsupported/Eigen/MatrixFunctions>

#include "lgssm/continuous.hpp"
#include "lgssm/error.hpp"
#include "lgssm/inference.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

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
  expect_log_error(singular);                      // eigenvalue 0
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
  const Matrix cov = d.cov - 0.5 * weak.eigenvalues()(0) * weak.eigenvectors().col(0) *
                                 weak.eigenvectors().col(0).transpose();
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

TEST_P(ContinuousGradient, MatchesFiniteDifferences) {
  ContinuousParams p = oscillator(3, 2);
  const ContinuousProps& props = GetParam().props;
  if (props.diffusion_cov_structure == CovStructure::kDiagonal) p.dynamics.diffusion_cov = Matrix(Vector(Vector::Constant(2, 0.2)).asDiagonal());
  const auto seqs = irregular_data(p, 3, 6, 11);
  ContinuousParams start = p;
  start.dynamics.drift(0, 0) = -0.3;  // away from the truth
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

ContinuousProps all_trainable() { return ContinuousProps{}; }
ContinuousProps dynamics_only() {
  ContinuousProps p;
  p.initial = {false, false, CovStructure::kFull};
  p.emissions = {false, false, false, false, CovStructure::kFull};
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
    EXPECT_MATRIX_NEAR(sum.stats.dynamics[g].yx, all.stats.dynamics[g].yx, 1e-12);
    EXPECT_EQ(sum.stats.dynamics[g].count, all.stats.dynamics[g].count);
  }
  EXPECT_MATRIX_NEAR(sum.stats.emissions[0].yx, all.stats.emissions[0].yx, 1e-12);
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
  for (int i = 0; i < 5; ++i) seqs.push_back({{sample(to_discrete(truth, times), 40 + i, 10).emissions, RowMatrix()}, times});
  ContinuousParams start = truth;
  start.dynamics.drift = -0.5 * Matrix::Identity(2, 2);
  ContinuousEmOptions options;
  options.num_iters = 10;
  options.num_threads = 1;
  const ContinuousFitResult r = fit_em(start, ContinuousProps{}, seqs, options);
  // The same EM on the equivalent discrete model, then the inverse map.
  ParamProps dprops;
  dprops.dynamics = {true, false, false, true, CovStructure::kFull};
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

TEST(ContinuousValidate, NamesTheArgument) {
  ContinuousParams p = oscillator(2, 5);
  p.dynamics.diffusion_cov(0, 0) = -1.0;
  try {
    validate(p);
    FAIL();
  } catch (const invalid_argument& e) {
    EXPECT_TRUE(std::regex_search(e.what(), std::regex("^dynamics.diffusion_cov: expected a symmetric positive semidefinite")))
        << e.what();
  }
  EXPECT_THROW(discretize(p.dynamics.drift, Matrix::Identity(2, 2), 0.0), invalid_argument);
}

}  // namespace
}  // namespace lgssm::test
