// The fit drivers (fit.hpp). EM on a problem whose iterates are known in closed form:
// the "E-step" returns the parameter, the "M-step" is the linear contraction
// x -> c + M (x - c) toward the maximizer c of the objective -|x - c|^2 / 2,
// which every step raises. Each stopping rule, failure and resumption, and
// SQUAREM's acceleration, are checked against that.
// SGD (run_sgd) on a quadratic: resumption and the non-finite-loss rule.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "lgssm/error.hpp"
#include "lgssm/fit.hpp"

namespace lgssm {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Contraction {
  Vector c = Vector::Constant(2, 1.0);
  Matrix m = (Matrix(2, 2) << 0.9, 0.05, 0.0, 0.8).finished();  // slow: spectral radius 0.9

  Vector step(const Vector& x) const { return c + m * (x - c); }
  double objective(const Vector& x) const { return -0.5 * (x - c).squaredNorm(); }

  EmSteps<Vector, Vector> steps() const {
    EmSteps<Vector, Vector> s;
    s.e_step = [](const Vector& x) { return x; };
    s.objective = [this](const Vector&, const Vector& stats) { return objective(stats); };
    s.m_step = [this](const Vector&, const Vector& stats) { return step(stats); };
    s.to_vector = [](const Vector& x) { return x; };
    s.from_vector = [](const Vector& x) { return x; };
    return s;
  }
};

const Vector kStart = Vector::Constant(2, -3.0);

EmLoopOptions loop(int num_iters, double tolerance = 0.0) {
  EmLoopOptions o;
  o.num_iters = num_iters;
  o.tolerance = tolerance;
  return o;
}

TEST(EmDriver, RecordsTheObjectiveEnteringEachIterationAndReturnsTheLastMStep) {
  const Contraction p;
  EmLoopOptions o = loop(4);
  const EmRun<Vector> run = run_em(p.steps(), kStart, o);
  ASSERT_EQ(run.history.size(), 4u);
  Vector x = kStart;
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(run.history[k], p.objective(x));
    x = p.step(x);
  }
  EXPECT_EQ(run.params, x);  // the fourth M-step's output, not yet evaluated
  EXPECT_EQ(run.summary.iterations, 4);
  EXPECT_EQ(run.summary.termination, Termination::kMaxIterations);
}

TEST(EmDriver, ToleranceAndCallbackStopAtTheRecordedIterate) {
  const Contraction p;
  EmLoopOptions o = loop(1000, 1e-3);
  const EmRun<Vector> run = run_em(p.steps(), kStart, o);
  ASSERT_EQ(run.summary.termination, Termination::kConverged);
  const auto& h = run.history;
  EXPECT_LE(std::abs(h.back() - h[h.size() - 2]), 1e-3 * std::abs(h.back()));
  EXPECT_GT(std::abs(h[h.size() - 2] - h[h.size() - 3]), 1e-3 * std::abs(h[h.size() - 2]));
  EXPECT_EQ(p.objective(run.params), h.back());

  o.tolerance = 0.0;
  o.callback = [](int it, double) { return it < 2; };
  const EmRun<Vector> stopped = run_em(p.steps(), kStart, o);
  EXPECT_EQ(stopped.summary.termination, Termination::kStopped);
  EXPECT_EQ(stopped.history.size(), 3u);
  EXPECT_EQ(p.objective(stopped.params), stopped.history.back());
}

TEST(EmDriver, FailuresReturnTheLastRecordedParameters) {
  const Contraction p;
  EmLoopOptions o = loop(10);
  o.remedy = ". Try X.";
  int calls = 0;
  // A non-finite objective at the third E-step.
  EmSteps<Vector, Vector> s = p.steps();
  s.objective = [&](const Vector&, const Vector& x) { return ++calls == 3 ? kNaN : p.objective(x); };
  EmRun<Vector> run = run_em(s, kStart, o);
  EXPECT_EQ(run.summary.termination, Termination::kNumericalFailure);
  EXPECT_EQ(run.history.size(), 2u);
  EXPECT_EQ(run.params, p.step(kStart));
  EXPECT_NE(run.summary.message.find("log likelihood became nan at iteration 2"), std::string::npos)
      << run.summary.message;

  // A fall of the objective (beyond kEmMaxFall) at the second E-step.
  s = p.steps();
  s.m_step = [&](const Vector& x, const Vector&) { return Vector(x - Vector::Constant(2, 1.0)); };
  run = run_em(s, kStart, o);
  EXPECT_EQ(run.summary.termination, Termination::kNumericalFailure);
  EXPECT_EQ(run.history.size(), 1u);
  EXPECT_EQ(run.params, kStart);
  EXPECT_NE(run.summary.message.find("fell from"), std::string::npos) << run.summary.message;

  // An M-step that leaves the valid set, and an E-step that fails.
  for (bool in_m_step : {true, false}) {
    calls = 0;
    s = p.steps();
    const auto fail_second = [&] {
      if (++calls == 2) throw invalid_argument("cov: expected a positive definite matrix, got one that is not");
    };
    if (in_m_step)
      s.m_step = [&](const Vector&, const Vector& x) {
        fail_second();
        return p.step(x);
      };
    else
      s.e_step = [&](const Vector& x) {
        fail_second();
        return x;
      };
    run = run_em(s, kStart, o);
    EXPECT_EQ(run.summary.termination, Termination::kNumericalFailure);
    EXPECT_EQ(run.history.size(), in_m_step ? 2u : 1u);
    EXPECT_EQ(run.params, in_m_step ? p.step(kStart) : kStart);
    EXPECT_NE(run.summary.message.find("positive definite"), std::string::npos) << run.summary.message;
    EXPECT_NE(run.summary.message.find("Try X."), std::string::npos) << run.summary.message;
  }
}

TEST(EmDriver, ResumesFromAHistory) {
  const Contraction p;
  EmLoopOptions o = loop(6);
  std::vector<Vector> checkpoints;
  EmSteps<Vector, Vector> s = p.steps();
  s.after_m_step = [&](const Vector& x, const std::vector<double>&) { checkpoints.push_back(x); };
  const EmRun<Vector> all = run_em(s, kStart, o);
  ASSERT_EQ(checkpoints.size(), 6u);
  // Resume after iteration 3 from the checkpoint written there.
  const std::vector<double> head(all.history.begin(), all.history.begin() + 3);
  const EmRun<Vector> resumed = run_em(p.steps(), checkpoints[2], o, head);
  EXPECT_EQ(resumed.history, all.history);
  EXPECT_EQ(resumed.params, all.params);
  EXPECT_EQ(resumed.summary.iterations, 6);
}

TEST(EmDriver, SquaremIsMonotoneAndFaster) {
  const Contraction p;
  EmLoopOptions o = loop(2000, 1e-12);
  const EmRun<Vector> plain = run_em(p.steps(), kStart, o);
  o.accelerate = true;
  const EmRun<Vector> fast = run_em(p.steps(), kStart, o);
  ASSERT_EQ(plain.summary.termination, Termination::kConverged);
  ASSERT_EQ(fast.summary.termination, Termination::kConverged);
  for (size_t k = 1; k < fast.history.size(); ++k) EXPECT_GE(fast.history[k], fast.history[k - 1]) << k;
  EXPECT_LT(fast.history.size() * 3, plain.history.size()) << fast.history.size() << " vs " << plain.history.size();
  EXPECT_LT((fast.params - p.c).norm(), 1e-5);
}

// run_sgd on 0.5 |x - c|^2 per minibatch (two sequences, one per minibatch).
SgdSteps quadratic(const Vector& c, std::vector<Vector>* evaluated = nullptr, int fail_at = -1) {
  SgdSteps s;
  s.loss = [=, calls = 0](const Vector& x, const std::vector<size_t>& batch, double weight, Vector& g) mutable {
    EXPECT_EQ(batch.size(), 1u);
    EXPECT_EQ(weight, 2.0);
    if (evaluated) evaluated->push_back(x);
    if (++calls == fail_at) return std::numeric_limits<double>::infinity();
    g = x - c;
    return 0.5 * (x - c).squaredNorm();
  };
  return s;
}

TEST(SgdDriver, ResumesAndReturnsTheBestParametersOnANonFiniteLoss) {
  const Vector c = Vector::Constant(2, 1.0);
  SgdOptions o;
  o.num_epochs = 6;
  o.adam.learning_rate = 0.1;
  std::vector<std::pair<Vector, AdamState>> saved;
  SgdSteps s = quadratic(c);
  s.after_epoch = [&](const Vector& x, const AdamState& st, const std::vector<double>&) { saved.push_back({x, st}); };
  const SgdRun all = run_sgd(s, 2, kStart, AdamState(2), o);
  ASSERT_EQ(all.history.size(), 6u);
  ASSERT_EQ(saved.size(), 6u);
  for (size_t e = 1; e < 6; ++e) EXPECT_LT(all.history[e], all.history[e - 1]);
  const SgdRun resumed = run_sgd(quadratic(c), 2, saved[2].first, saved[2].second, o,
                                 std::vector<double>(all.history.begin(), all.history.begin() + 3));
  EXPECT_EQ(resumed.history, all.history);
  EXPECT_EQ(resumed.x, all.x);

  std::vector<Vector> evaluated;
  const SgdRun failed = run_sgd(quadratic(c, &evaluated, 5), 2, kStart, AdamState(2), o);
  EXPECT_EQ(failed.summary.termination, Termination::kNumericalFailure);
  EXPECT_EQ(failed.history.size(), 2u);
  ASSERT_EQ(evaluated.size(), 5u);
  EXPECT_EQ(failed.x, evaluated[3]);  // the lowest loss: the last finite one (the loss falls at every update)
  EXPECT_NE(failed.summary.message.find("from epoch 1"), std::string::npos) << failed.summary.message;
}

TEST(SgdDriver, AnUpdateReplacesAdam) {
  // Gradient descent with step 0.25 on 0.5 |x - c|^2 contracts x - c by 0.75 per
  // minibatch, whatever Adam's settings; the update sees each minibatch's loss.
  const Vector c = Vector::Constant(2, 1.0);
  SgdOptions o;
  o.num_epochs = 3;
  std::vector<double> seen;
  o.update = [&](const Vector& grad, double loss, Vector& x) {
    seen.push_back(loss);
    x -= 0.25 * grad;
  };
  const SgdRun run = run_sgd(quadratic(c), 2, kStart, AdamState(2), o);
  ASSERT_EQ(seen.size(), 6u);
  EXPECT_EQ(seen[0], 0.5 * (kStart - c).squaredNorm());
  EXPECT_LT((run.x - (c + std::pow(0.75, 6) * (kStart - c))).norm(), 1e-15);
  EXPECT_EQ(run.history.size(), 3u);
}

}  // namespace
}  // namespace lgssm
