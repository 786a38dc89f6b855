// L-BFGS (src/lbfgs.hpp) on objectives whose minimizers are known: a
// quadratic, Rosenbrock's function, a quadratic behind a wall of +inf (the
// objective's "outside the valid set"), a gradient that lies (the line search
// cannot succeed), and an objective that throws (the error propagates).
#include "lbfgs.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>

#include "test_util.hpp"

namespace lgssm::internal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

LbfgsOptions options(int max_iters = 1000) {
  LbfgsOptions o;
  o.max_iters = max_iters;
  o.gradient_tolerance = 1e-10;
  o.function_tolerance = 0.0;
  return o;
}

// 0.5 (x - c)^T A (x - c), A = diag(1, 10, 100, 1000).
double quadratic(const Vector& x, Vector& g) {
  const Vector a = (Vector(4) << 1.0, 10.0, 100.0, 1000.0).finished();
  const Vector r = x - Vector::Constant(4, 2.0);
  g = a.cwiseProduct(r);
  return 0.5 * r.dot(g);
}

TEST(Lbfgs, MinimizesAQuadratic) {
  std::vector<double> values;
  const LbfgsRun run = minimize_lbfgs(quadratic, Vector::Zero(4), options(), [&](int, double f) {
    values.push_back(f);
    return true;
  });
  ASSERT_EQ(run.termination, Termination::kConverged) << run.message;
  EXPECT_MATRIX_NEAR(run.x, Vector::Constant(4, 2.0), 1e-9);
  for (size_t k = 1; k < values.size(); ++k) EXPECT_LT(values[k], values[k - 1]) << k;
  EXPECT_LT(run.iterations, 40);
  EXPECT_GE(run.evaluations, run.iterations + 1);
}

TEST(Lbfgs, MinimizesRosenbrock) {
  const auto rosenbrock = [](const Vector& x, Vector& g) {
    const double a = 1.0 - x(0), b = x(1) - x(0) * x(0);
    g.resize(2);
    g << -2.0 * a - 400.0 * x(0) * b, 200.0 * b;
    return a * a + 100.0 * b * b;
  };
  const LbfgsRun run = minimize_lbfgs(rosenbrock, (Vector(2) << -1.2, 1.0).finished(), options(), {});
  ASSERT_EQ(run.termination, Termination::kConverged) << run.message;
  EXPECT_MATRIX_NEAR(run.x, Vector::Constant(2, 1.0), 1e-8);
  EXPECT_LT(run.iterations, 100);
}

TEST(Lbfgs, StaysInsideAWallOfInfinity) {
  // The quadratic's minimizer (2, 2, 2, 2) lies beyond x_3 < 1, where the
  // objective is +inf; a barrier -log(1 - x_3) puts the minimum just inside.
  int outside = 0;
  const auto walled = [&](const Vector& x, Vector& g) {
    if (x(3) >= 1.0) {
      ++outside;
      return kInf;
    }
    const double f = quadratic(x, g) - std::log(1.0 - x(3));
    g(3) += 1.0 / (1.0 - x(3));
    return f;
  };
  std::vector<double> values;
  const LbfgsRun run = minimize_lbfgs(walled, Vector::Zero(4), options(), [&](int, double f) {
    values.push_back(f);
    return true;
  });
  ASSERT_EQ(run.termination, Termination::kConverged) << run.message;
  EXPECT_GT(outside, 0) << "the test should have tried steps past the wall";
  // 1000 (x_3 - 2) + 1 / (1 - x_3) = 0  =>  x_3 = (3 - sqrt(1 + 4e-3)) / 2 = 0.999001...
  EXPECT_NEAR(run.x(3), (3.0 - std::sqrt(1.004)) / 2.0, 1e-9);
  EXPECT_MATRIX_NEAR(Vector(run.x.head(3)), Vector::Constant(3, 2.0), 1e-9);
  for (size_t k = 1; k < values.size(); ++k) EXPECT_LE(values[k], values[k - 1]) << k;
}

TEST(Lbfgs, AFailingLineSearchEndsTheRunAtTheBestPoint) {
  // The gradient points the wrong way: no step along -g decreases f.
  const auto lying = [](const Vector& x, Vector& g) {
    g = -x;
    return 0.5 * x.squaredNorm();
  };
  const Vector start = Vector::Constant(3, 1.0);
  const LbfgsRun run = minimize_lbfgs(lying, start, options(), {});
  EXPECT_EQ(run.termination, Termination::kConverged);
  EXPECT_NE(run.message.find("line search could not decrease"), std::string::npos) << run.message;
  EXPECT_EQ(run.x, start);
  EXPECT_EQ(run.iterations, 0);
}

TEST(Lbfgs, AnObjectiveErrorPropagates) {
  const auto broken = [](const Vector& x, Vector& g) -> double {
    if (x(0) > 1.0) throw std::invalid_argument("shape bug");  // reached within the first line search
    return quadratic(x, g);
  };
  EXPECT_THROW(minimize_lbfgs(broken, Vector::Zero(4), options(), {}), std::invalid_argument);
}

TEST(Lbfgs, StopsAtMaxItersAndOnTheCallback) {
  const LbfgsRun capped = minimize_lbfgs(quadratic, Vector::Zero(4), options(3), {});
  EXPECT_EQ(capped.termination, Termination::kMaxIterations);
  EXPECT_EQ(capped.iterations, 3);
  const LbfgsRun stopped = minimize_lbfgs(quadratic, Vector::Zero(4), options(), [](int it, double) { return it < 2; });
  EXPECT_EQ(stopped.termination, Termination::kStopped);
  EXPECT_EQ(stopped.iterations, 2);
  const LbfgsRun nonfinite =
      minimize_lbfgs([](const Vector&, Vector&) { return kInf; }, Vector::Zero(4), options(), {});
  EXPECT_EQ(nonfinite.termination, Termination::kNumericalFailure);
}

}  // namespace
}  // namespace lgssm::internal
