// The exact diffuse initialization (src/diffuse.hpp) against closed forms: a
// diffuse local level is, after its first observation, the known-initialization
// filter started from N(y_0, sigma2_eps) (Durbin & Koopman 2012, Sec. 2.9 and
// 5.2.3); a diffuse part of rank 0 is a known initialization; the stationary
// covariance solves the Lyapunov equation. tests/python/test_diffuse.py checks
// against statsmodels and a kappa = 1e30 mpmath limit.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lgssm/error.hpp"
#include "lgssm/inference.hpp"
#include "lgssm/learn.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

Params local_level(double eps, double eta, bool diffuse) {
  Params p;
  p.initial.mean = Vector::Zero(1);
  p.initial.cov = Matrix::Zero(1, 1);
  if (diffuse) p.initial.diffuse = Matrix::Identity(1, 1);
  const auto one = [](double v) { return MatrixSeries::constant(RowMatrix::Constant(1, 1, v)); };
  p.dynamics = {one(1.0), one(0.0), MatrixSeries(1, 1, 0), one(eta)};
  p.emissions = {one(1.0), one(0.0), MatrixSeries(1, 1, 0), one(eps)};
  return p;
}

RowMatrix level_data() {
  RowMatrix y(8, 1);
  y << 1120, 1160, 963, 1210, std::numeric_limits<double>::quiet_NaN(), 1160, 813, 1230;
  return y;
}

TEST(Diffuse, LocalLevelIsKnownFilterAfterFirstObservation) {
  const double eps = 15099.0, eta = 1469.1;
  const RowMatrix y = level_data();
  const Params diffuse = local_level(eps, eta, true);
  const FilterResult d = filter(diffuse, Sequence{y, RowMatrix()});
  EXPECT_EQ(d.num_diffuse_timesteps, 1);
  // Step 0: F_inf = 1, a = y_0, P_* = eps; the term -log(2 pi) / 2.
  EXPECT_DOUBLE_EQ(d.filtered_means(0, 0), y(0, 0));
  EXPECT_DOUBLE_EQ(d.filtered_covariances[0](0, 0), eps);
  // The rest: the known filter on y_{1:} from z_1 ~ N(y_0, eps + eta).
  Params known = local_level(eps, eta, false);
  known.initial.mean(0) = y(0, 0);
  known.initial.cov(0, 0) = eps + eta;
  const RowMatrix rest = y.bottomRows(y.rows() - 1);
  const FilterResult k = filter(known, Sequence{rest, RowMatrix()});
  EXPECT_NEAR(d.marginal_loglik, k.marginal_loglik - 0.5 * kLog2Pi, 1e-12 * std::abs(k.marginal_loglik));
  EXPECT_MATRIX_NEAR(Matrix(d.filtered_means.bottomRows(rest.rows())), Matrix(k.filtered_means), 1e-13);
  // Smoothed: the known smoother of y_{1:} conditions z_1 on y_0 through its prior;
  // the diffuse smoother gives the same moments for steps 1.. .
  const SmootherResult ds = smoother(diffuse, Sequence{y, RowMatrix()});
  const SmootherResult ks = smoother(known, Sequence{rest, RowMatrix()});
  EXPECT_MATRIX_NEAR(Matrix(ds.smoothed_means.bottomRows(rest.rows())), Matrix(ks.smoothed_means), 1e-12);
  for (Index t = 1; t < y.rows(); ++t) {
    EXPECT_NEAR(ds.smoothed_covariances[t](0, 0), ks.smoothed_covariances[t - 1](0, 0), 1e-9 * eps);
    if (t + 1 < y.rows()) {
      EXPECT_NEAR(ds.smoothed_cross_covariances[t](0, 0), ks.smoothed_cross_covariances[t - 1](0, 0), 1e-9 * eps);
    }
  }
  // Step 0: z_0 = z_1 - eta_0 with a flat prior: E[z_0 | y] and Var[z_0 | y] from
  // y_0 = z_0 + eps_0 and z_1's smoothed law (a two-source Gaussian combination).
  const double m1 = ks.smoothed_means(0, 0), v1 = ks.smoothed_covariances[0](0, 0);
  // z_0 | z_1, y_0 ~ N((z_1 eps + y_0 eta) / (eps + eta), eps eta / (eps + eta)).
  const double w = eps / (eps + eta);
  EXPECT_NEAR(ds.smoothed_means(0, 0), w * m1 + (1 - w) * y(0, 0), 1e-12 * y(0, 0));
  EXPECT_NEAR(ds.smoothed_covariances[0](0, 0), w * w * v1 + eps * eta / (eps + eta), 1e-9 * eps);
  EXPECT_NEAR(ds.smoothed_cross_covariances[0](0, 0), w * v1, 1e-9 * eps);
}

TEST(Diffuse, RankZeroIsKnown) {
  Params known = local_level(2.0, 0.5, false);
  known.initial.cov(0, 0) = 3.0;
  Params zero = known;
  zero.initial.diffuse = Matrix::Zero(1, 2);
  const Sequence seq{level_data() / 1000.0, RowMatrix()};
  EXPECT_EQ(marginal_log_prob(zero, seq), marginal_log_prob(known, seq));
  EXPECT_EQ(filter(zero, seq).num_diffuse_timesteps, 0);
}

TEST(Diffuse, Refusals) {
  const Params p = local_level(1.0, 1.0, true);
  EXPECT_THROW(sample(p, 0, 5), invalid_argument);
  RowMatrix missing = RowMatrix::Constant(3, 1, std::numeric_limits<double>::quiet_NaN());
  EXPECT_THROW(smoother(p, Sequence{missing, RowMatrix()}), invalid_argument);
  EXPECT_NO_THROW(marginal_log_prob(p, Sequence{missing, RowMatrix()}));
  Params bad = p;
  bad.initial.diffuse = Matrix::Identity(2, 2);
  EXPECT_THROW(validate(bad), invalid_argument);
  ParamProps props;
  props.initial.mean = true;
  EXPECT_THROW(validate(p, props), invalid_argument);
}

TEST(Diffuse, StationaryInitial) {
  Matrix f(2, 2), q(2, 2);
  f << 0.5, 0.3, -0.2, 0.95;
  q << 1.0, 0.2, 0.2, 0.5;
  const Matrix p = stationary_initial(f, q);
  EXPECT_MATRIX_NEAR(p, Matrix(f * p * f.transpose() + q), 1e-12);
  EXPECT_THROW(stationary_initial(Matrix::Identity(2, 2), q), invalid_argument);
}

}  // namespace
}  // namespace lgssm::test
