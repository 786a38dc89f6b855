// Statistical tests of sample and posterior_sample (fixed seeds): empirical
// moments against the dense joint-Gaussian moments, within a few standard
// errors.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "dense_reference.hpp"
#include "lgssm/inference.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

constexpr double kNumSigmas = 5.0;

// Each row of `draws` one draw of a Gaussian vector x. Checks the empirical
// mean and covariance against N(mean, cov) after whitening by the reference:
// w = L^{-1} (x - mean) with cov = L L^T must have mean 0 and covariance I, so
// every entry has the same standard error (1/sqrt(N), and sqrt(2/N) on the
// diagonal of the covariance) however small the entry of cov it probes, e.g. a
// weak cross-time covariance next to large variances.
void expect_moments_match(const Matrix& draws, const Vector& mean, const Matrix& cov) {
  const double num = static_cast<double>(draws.rows());
  const Eigen::LLT<Matrix> llt(cov);
  ASSERT_EQ(llt.info(), Eigen::Success) << "reference covariance not positive definite";
  const Matrix white = llt.matrixL().solve((draws.rowwise() - mean.transpose()).transpose()).transpose();
  const Vector emp_mean = white.colwise().mean().transpose();
  const Matrix centered = white.rowwise() - emp_mean.transpose();
  const Matrix emp_cov = centered.transpose() * centered / (num - 1.0);
  double worst_mean = 0.0, worst_cov = 0.0;
  std::ostringstream failures;
  for (Index i = 0; i < mean.size(); ++i) {
    const double z = std::abs(emp_mean(i)) * std::sqrt(num);
    worst_mean = std::max(worst_mean, z);
    if (z > kNumSigmas) failures << "whitened mean[" << i << "] = " << emp_mean(i) << " (" << z << " SE)\n";
    for (Index j = 0; j <= i; ++j) {
      const double target = i == j ? 1.0 : 0.0;
      const double zc = std::abs(emp_cov(i, j) - target) / std::sqrt((1.0 + target) / num);
      worst_cov = std::max(worst_cov, zc);
      if (zc > kNumSigmas)
        failures << "whitened cov(" << i << ", " << j << ") = " << emp_cov(i, j) << " (" << zc << " SE)\n";
    }
  }
  EXPECT_TRUE(failures.str().empty()) << failures.str();
  ::testing::Test::RecordProperty("worst_mean_z", std::to_string(worst_mean));
  ::testing::Test::RecordProperty("worst_cov_z", std::to_string(worst_cov));
}

// 20000 draws of (z_0..z_3, y_0..y_3) from a time-varying model with inputs
// and biases against the dense joint.
TEST(Sample, MomentsMatchDenseJoint) {
  constexpr Index kT = 4, kDraws = 20000;
  const Params params = random_params({2, 2, 2, kT, true, false, -1, -1, 301});
  const RowMatrix inputs = random_inputs(kT, params.input_dim(), 302);
  const Index n = params.state_dim(), p = params.emission_dim();
  const Index dim = kT * (n + p);
  Matrix draws(kDraws, dim);
  for (Index i = 0; i < kDraws; ++i) {
    const SampleResult s = sample(params, 1000 + static_cast<std::uint64_t>(i), kT, inputs);
    ASSERT_EQ(s.states.rows(), kT);
    ASSERT_EQ(s.states.cols(), n);
    ASSERT_EQ(s.emissions.rows(), kT);
    ASSERT_EQ(s.emissions.cols(), p);
    draws.row(i).head(kT * n) = Eigen::Map<const Vector>(s.states.data(), kT * n).transpose();
    draws.row(i).tail(kT * p) = Eigen::Map<const Vector>(s.emissions.data(), kT * p).transpose();
  }
  const DenseJoint joint = dense_joint(params, kT, inputs);
  expect_moments_match(draws, joint.mean.head(dim), joint.cov.topLeftCorner(dim, dim));
}

TEST(Sample, DeterministicGivenSeed) {
  const Params params = random_params({3, 2, 1, 0, true, false, -1, -1, 311});
  const RowMatrix inputs = random_inputs(5, 1, 312);
  const SampleResult a = sample(params, 42, 5, inputs);
  const SampleResult b = sample(params, 42, 5, inputs);
  const SampleResult c = sample(params, 43, 5, inputs);
  EXPECT_TRUE(a.states == b.states);
  EXPECT_TRUE(a.emissions == b.emissions);
  EXPECT_FALSE(a.states == c.states);
}

// 20000 posterior draws of (z_0..z_4) given data with missing entries against
// the dense smoothed mean and full joint covariance (so including
// Cov[z_{t+1}, z_t | y] and all other cross-time blocks).
TEST(PosteriorSample, MomentsMatchDenseSmoother) {
  constexpr Index kT = 5, kDraws = 20000;
  const Params params = random_params({2, 3, 1, 0, true, false, -1, -1, 401});
  const Sequence seq = random_sequence(params, {kT, 0.2, {2}, 402});
  const MatrixSeries draws = posterior_sample(params, seq, 403, kDraws);
  ASSERT_EQ(draws.size(), kDraws);
  ASSERT_EQ(draws.rows(), kT);
  ASSERT_EQ(draws.cols(), params.state_dim());
  const DenseReference ref = dense_reference(params, seq);
  // Row i of flat() is draw i as (z_0, .., z_{T-1}) stacked, like the reference.
  expect_moments_match(draws.flat(), ref.smoothed_state_mean, ref.smoothed_state_cov);
}

TEST(PosteriorSample, DeterministicGivenSeed) {
  const Params params = random_params({2, 3, 0, 0, false, false, -1, -1, 411});
  const Sequence seq = random_sequence(params, {4, 0.2, {}, 412});
  const MatrixSeries a = posterior_sample(params, seq, 7, 3);
  const MatrixSeries b = posterior_sample(params, seq, 7, 3);
  EXPECT_TRUE(a.flat() == b.flat());
}

}  // namespace
}  // namespace lgssm::test
