// The streaming filter and the fixed-lag smoother against the batch filter and
// smoother (for the fixed lag: the smoother of each truncated sequence
// y_{0:t}, an independent computation of the same moments), over model
// variants covering the fixed-size kernels (state_dim 1-4) and the dynamic one.
// The cpp-tests preset (LGSSM_CHECK_NO_MALLOC) also checks that the steps
// allocate nothing.
#include "lgssm/streaming.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include "dense_reference.hpp"
#include "lgssm/error.hpp"
#include "lgssm/inference.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

constexpr double kRtol = 1e-12;

struct Variant {
  std::string name;
  ModelSpec model;
  SequenceSpec sequence;
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

// The fields as in inference_test.cpp: {state_dim, emission_dim, input_dim,
// num_param_steps, biases, diagonal R, initial_cov_rank, dynamics_cov_rank,
// seed}; {T, missing fraction, missing steps, seed}.
const std::vector<Variant>& variants() {
  static const std::vector<Variant> kVariants = {
      {"time_invariant", {3, 2, 0, 0, false, false, -1, -1, 11}, {8, 0.0, {}, 12}},
      {"time_varying_inputs_missing", {3, 4, 2, 9, true, false, -1, -1, 21}, {9, 0.2, {0, 4, 8}, 22}},
      {"diagonal_R_missing", {2, 5, 1, 0, true, true, -1, -1, 31}, {10, 0.3, {5}, 32}},
      {"singular_initial_and_dynamics_cov", {3, 2, 1, 0, true, false, 1, 1, 41}, {8, 0.1, {}, 42}},
      {"state_dim_1", {1, 3, 1, 0, true, false, -1, -1, 51}, {7, 0.2, {3}, 52}},
      {"state_dim_4", {4, 8, 0, 0, true, true, -1, -1, 61}, {7, 0.2, {}, 62}},
      {"state_dim_6_dynamic_size", {6, 4, 1, 7, true, false, -1, -1, 71}, {7, 0.2, {2}, 72}},
  };
  return kVariants;
}

Vector row(const RowMatrix& m, Index t) { return m.size() == 0 ? Vector() : Vector(m.row(t).transpose()); }

Sequence head(const Sequence& seq, Index steps) {
  return {seq.emissions.topRows(steps), seq.inputs.size() ? RowMatrix(seq.inputs.topRows(steps)) : RowMatrix()};
}

class Streaming : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    params_ = random_params(GetParam().model);
    seq_ = random_sequence(params_, GetParam().sequence);
  }
  Index steps() const { return seq_.num_timesteps(); }
  Params params_;
  Sequence seq_;
};

TEST_P(Streaming, StepsEqualBatchFilterAndDenseReference) {
  const FilterResult batch = filter(params_, seq_);
  const DenseReference ref = dense_reference(params_, seq_);
  FilterState state = filter_init(params_);
  EXPECT_EQ(state.num_timesteps(), 0);
  EXPECT_MATRIX_NEAR(state.filtered_mean(), params_.initial.mean, 0.0);
  double loglik = 0.0;
  for (Index t = 0; t < steps(); ++t) {
    loglik += filter_step(params_, state, row(seq_.emissions, t), row(seq_.inputs, t));
    EXPECT_EQ(state.num_timesteps(), t + 1);
    EXPECT_MATRIX_NEAR(state.filtered_mean(), Matrix(batch.filtered_means.row(t)), kRtol) << "t = " << t;
    EXPECT_MATRIX_NEAR(state.filtered_cov(), Matrix(batch.filtered_covariances[t]), kRtol) << "t = " << t;
    EXPECT_MATRIX_NEAR(state.filtered_mean(), Matrix(ref.filtered_means.row(t)), 1e-9) << "t = " << t;
  }
  EXPECT_MATRIX_NEAR(loglik, batch.marginal_loglik, kRtol);
  EXPECT_MATRIX_NEAR(state.marginal_loglik(), batch.marginal_loglik, kRtol);
}

TEST_P(Streaming, RestoredStateContinuesTheStream) {
  FilterState state = filter_init(params_);
  const Index half = steps() / 2;
  for (Index t = 0; t < half; ++t) filter_step(params_, state, row(seq_.emissions, t), row(seq_.inputs, t));
  FilterState restored(state.state_dim(), state.emission_dim(), state.input_dim(), state.num_timesteps(),
                       state.marginal_loglik(), state.filtered_mean(), state.filtered_cov());
  FilterState copied = state;
  for (Index t = half; t < steps(); ++t) {
    for (FilterState* s : {&state, &restored, &copied})
      filter_step(params_, *s, row(seq_.emissions, t), row(seq_.inputs, t));
  }
  for (const FilterState* s : {&restored, &copied}) {
    EXPECT_EQ(s->filtered_mean(), state.filtered_mean());
    EXPECT_EQ(s->filtered_cov(), state.filtered_cov());
    EXPECT_EQ(s->marginal_loglik(), state.marginal_loglik());
  }
}

TEST_P(Streaming, PredictStepEqualsForecast) {
  ModelSpec spec = GetParam().model;
  if (spec.num_param_steps > 0) spec.num_param_steps = steps() + 2;  // per-step parameters over the horizon
  const Params params = random_params(spec);
  const RowMatrix future = random_inputs(2, params.input_dim(), 5);
  const ForecastResult f = forecast(params, seq_, 2, future);
  FilterState state = filter_init(params);
  for (Index t = 0; t < steps(); ++t) filter_step(params, state, row(seq_.emissions, t), row(seq_.inputs, t));
  for (Index k = 0; k < 2; ++k) {
    predict_step(params, state, row(future, k));
    EXPECT_MATRIX_NEAR(state.filtered_mean(), Matrix(f.means.row(k)), kRtol);
    EXPECT_MATRIX_NEAR(state.filtered_cov(), Matrix(f.covariances[k]), kRtol);
  }
}

TEST_P(Streaming, FixedLagEqualsSmootherOfTruncatedData) {
  for (Index lag : {Index(0), Index(2), steps()}) {
    FixedLagSmoother fixed(params_, lag);
    for (Index t = 0; t < steps(); ++t) {
      const double ll = fixed.step(row(seq_.emissions, t), row(seq_.inputs, t));
      const SmootherResult ref = smoother(params_, head(seq_, t + 1));
      const Index s0 = std::max<Index>(0, t - lag);
      ASSERT_EQ(fixed.window_start(), s0);
      const RowMatrix means = fixed.smoothed_means();
      const MatrixSeries covs = fixed.smoothed_covariances();
      ASSERT_EQ(means.rows(), t - s0 + 1);
      ASSERT_EQ(covs.size(), t - s0 + 1);
      for (Index s = s0; s <= t; ++s) {
        EXPECT_MATRIX_NEAR(Matrix(means.row(s - s0)), Matrix(ref.smoothed_means.row(s)), kRtol)
            << "lag " << lag << ", t " << t << ", s " << s;
        EXPECT_MATRIX_NEAR(Matrix(covs[s - s0]), Matrix(ref.smoothed_covariances[s]), kRtol)
            << "lag " << lag << ", t " << t << ", s " << s;
      }
      EXPECT_MATRIX_NEAR(fixed.lagged_mean(), Matrix(ref.smoothed_means.row(s0)), kRtol);
      EXPECT_MATRIX_NEAR(fixed.lagged_cov(), Matrix(ref.smoothed_covariances[s0]), kRtol);
      EXPECT_MATRIX_NEAR(fixed.marginal_loglik(), ref.marginal_loglik, kRtol);
      (void)ll;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, Streaming, ::testing::ValuesIn(variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) { return info.param.name; });

// Params that change between steps (here: two constant models, alternating)
// equal the batch filter on the per-step parameters they make: the cached
// emission factors must follow the values, not the entry index.
TEST(StreamingParams, MayChangeBetweenSteps) {
  const Params a = random_params({3, 4, 0, 0, true, false, -1, -1, 81});
  const Params b = random_params({3, 4, 0, 0, true, false, -1, -1, 82});
  const Index steps = 7;
  Params stacked = a;
  auto& d = stacked.dynamics;
  auto& e = stacked.emissions;
  d = {MatrixSeries(steps - 1, 3, 3), MatrixSeries(steps - 1, 3, 1), MatrixSeries(steps - 1, 3, 0),
       MatrixSeries(steps - 1, 3, 3)};
  e = {MatrixSeries(steps, 4, 3), MatrixSeries(steps, 4, 1), MatrixSeries(steps, 4, 0), MatrixSeries(steps, 4, 4)};
  const auto at = [&](Index t) -> const Params& { return t % 2 == 0 ? a : b; };
  for (Index t = 0; t < steps; ++t) {
    e.weights[t] = at(t).emissions.weights[0];
    e.bias[t] = at(t).emissions.bias[0];
    e.cov[t] = at(t).emissions.cov[0];
    if (t == 0) continue;
    d.weights[t - 1] = at(t).dynamics.weights[0];
    d.bias[t - 1] = at(t).dynamics.bias[0];
    d.cov[t - 1] = at(t).dynamics.cov[0];
  }
  const Sequence seq = random_sequence(a, {steps, 0.0, {}, 83});
  const FilterResult batch = filter(stacked, seq);
  for (bool check : {true, false}) {  // values compared, or the objects (a and b are two)
    FilterState state = filter_init(a, check);
    for (Index t = 0; t < steps; ++t) {
      filter_step(at(t), state, row(seq.emissions, t));
      EXPECT_MATRIX_NEAR(state.filtered_mean(), Matrix(batch.filtered_means.row(t)), kRtol)
          << "t = " << t << ", check_params " << check;
    }
  }
  // With check_params, one object changed in place between steps is seen too.
  Params changing = a;
  FilterState state = filter_init(changing);
  for (Index t = 0; t < steps; ++t) {
    changing = at(t);
    filter_step(changing, state, row(seq.emissions, t));
    EXPECT_MATRIX_NEAR(state.filtered_mean(), Matrix(batch.filtered_means.row(t)), kRtol) << "t = " << t;
  }
}

// An exactly observed component (zero row and column of R) with singular Q.
TEST(StreamingParams, ExactlyObservedComponentAndSingularQ) {
  Params params = random_params({3, 3, 0, 0, true, false, -1, 1, 91});
  auto r = params.emissions.cov[0];
  r.row(1).setZero();
  r.col(1).setZero();
  const Sequence seq = random_sequence(params, {9, 0.2, {4}, 92});
  const FilterResult batch = filter(params, seq);
  FilterState state = filter_init(params);
  for (Index t = 0; t < seq.num_timesteps(); ++t) {
    filter_step(params, state, row(seq.emissions, t));
    EXPECT_MATRIX_NEAR(state.filtered_cov(), Matrix(batch.filtered_covariances[t]), kRtol) << "t = " << t;
  }
  EXPECT_MATRIX_NEAR(state.marginal_loglik(), batch.marginal_loglik, kRtol);
}

TEST(StreamingErrors, NameTheArgument) {
  const Params params = random_params({3, 2, 1, 4, true, false, -1, -1, 101});
  FilterState state = filter_init(params);
  const auto message = [](auto fn) -> std::string {
    try {
      fn();
    } catch (const invalid_argument& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_EQ(message([&] { filter_step(params, state, Vector::Zero(3), Vector::Zero(1)); }),
            "emission: expected shape (2) (emission_dim), got (3)");
  EXPECT_EQ(message([&] { filter_step(params, state, Vector::Zero(2), Vector::Zero(2)); }),
            "input: expected shape (1) (input_dim) or none, got (2)");
  Vector y = Vector::Zero(2);
  y(1) = std::numeric_limits<double>::infinity();
  EXPECT_EQ(message([&] { filter_step(params, state, y); }),
            "emission: expected finite values or NaN for missing, got inf at (1)");
  const Params other = random_params({2, 2, 1, 0, true, false, -1, -1, 102});
  EXPECT_EQ(message([&] { filter_step(other, state, Vector::Zero(2)); }),
            "params: expected a model of (state_dim, emission_dim, input_dim) = (3, 2, 1) (the state's), got (2, 2, "
            "1)");
  EXPECT_EQ(state.num_timesteps(), 0);  // nothing happened
  for (Index t = 0; t < 4; ++t) filter_step(params, state, Vector::Zero(2));
  EXPECT_EQ(message([&] { filter_step(params, state, Vector::Zero(2)); }),
            "dynamics.weights: expected 1 entry or at least 4 (one per transition, num_timesteps - 1 = 4), got 3 "
            "entries");
  EXPECT_EQ(message([&] { FixedLagSmoother(params, -1); }), "lag: expected an integer >= 0, got -1");
  EXPECT_EQ(message([&] { FixedLagSmoother(params, 1).lagged_mean(); }),
            "smoother: expected a step observed, got none");
}

}  // namespace
}  // namespace lgssm::test
