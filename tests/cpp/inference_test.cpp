// Exact inference against the dense joint-Gaussian reference: one battery of
// tests run over every model variant.
#include "lgssm/inference.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "dense_reference.hpp"
#include "lgssm/error.hpp"
#include "lgssm/stats.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

constexpr double kRtol = 1e-9;
constexpr Index kHorizon = 3;  // forecast steps

struct Variant {
  std::string name;
  ModelSpec model;
  SequenceSpec sequence;
};

// Names the variant in gtest's messages instead of dumping its bytes.
void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

// Per-step parameters cover the sequence plus the forecast horizon.
ModelSpec time_varying(ModelSpec spec, Index num_timesteps) {
  spec.num_param_steps = num_timesteps + kHorizon;
  return spec;
}

const std::vector<Variant>& variants() {
  static const std::vector<Variant> kVariants = [] {
    std::vector<Variant> v;
    // {state_dim, emission_dim, input_dim, num_param_steps, biases, diagonal R,
    //  initial_cov_rank, dynamics_cov_rank, seed}; {T, missing fraction, missing steps, seed}
    v.push_back({"time_invariant", {3, 2, 0, 0, false, false, -1, -1, 11}, {6, 0.0, {}, 12}});
    v.push_back({"time_varying", time_varying({3, 2, 1, 0, true, false, -1, -1, 21}, 6), {6, 0.0, {}, 22}});
    v.push_back({"inputs_and_biases", {3, 2, 2, 0, true, false, -1, -1, 31}, {6, 0.0, {}, 32}});
    v.push_back({"diagonal_R", {3, 4, 0, 0, false, true, -1, -1, 41}, {6, 0.0, {}, 42}});
    v.push_back({"full_R", {3, 4, 0, 0, false, false, -1, -1, 51}, {6, 0.0, {}, 52}});
    v.push_back({"emission_dim_above_state_dim", {2, 6, 1, 0, true, false, -1, -1, 61}, {5, 0.0, {}, 62}});
    v.push_back({"emission_dim_below_state_dim", {4, 2, 1, 0, true, false, -1, -1, 71}, {6, 0.0, {}, 72}});
    v.push_back({"missing_components_full_R", {3, 4, 0, 0, true, false, -1, -1, 81}, {8, 0.2, {}, 82}});
    v.push_back({"missing_components_diagonal_R", {3, 4, 0, 0, true, true, -1, -1, 91}, {8, 0.2, {}, 92}});
    v.push_back({"missing_steps", {3, 3, 1, 0, true, false, -1, -1, 101}, {7, 0.0, {0, 3, 6}, 102}});
    v.push_back({"time_varying_inputs_missing",
                 time_varying({3, 4, 2, 0, true, false, -1, -1, 111}, 8),
                 {8, 0.2, {0, 4, 7}, 112}});
    v.push_back({"singular_initial_cov", {3, 2, 0, 0, true, false, 2, -1, 121}, {6, 0.0, {}, 122}});
    v.push_back({"singular_dynamics_cov", {3, 2, 0, 0, true, false, -1, 1, 131}, {6, 0.0, {}, 132}});
    // rank 1 + rank 1 < state_dim: the predicted covariance of z_1 is singular too.
    v.push_back({"singular_predicted_cov", {3, 2, 0, 0, true, false, 1, 1, 141}, {6, 0.1, {}, 142}});
    v.push_back({"single_step", {3, 2, 1, 0, true, false, -1, -1, 151}, {1, 0.0, {}, 152}});
    v.push_back({"all_steps_missing", {3, 2, 1, 0, true, false, -1, -1, 161}, {3, 0.0, {0, 1, 2}, 162}});
    // The filter, smoother and E-step have fixed-size kernels for state_dim 1-4
    // and a dynamic-size one above: both ends.
    v.push_back({"state_dim_1", {1, 3, 1, 0, true, false, -1, -1, 171}, {7, 0.2, {3}, 172}});
    v.push_back({"state_dim_5_dynamic_size", {5, 3, 1, 0, true, false, -1, -1, 181}, {7, 0.2, {3}, 182}});
    v.push_back({"state_dim_6_time_varying_diagonal_R",
                 time_varying({6, 4, 0, 0, true, true, -1, -1, 191}, 6),
                 {6, 0.1, {}, 192}});
    return v;
  }();
  return kVariants;
}

class InferenceVsDense : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    params_ = random_params(GetParam().model);
    seq_ = random_sequence(params_, GetParam().sequence);
    ref_ = dense_reference(params_, seq_);
  }
  Index num_timesteps() const { return seq_.num_timesteps(); }
  Index n() const { return params_.state_dim(); }
  Index p() const { return params_.emission_dim(); }

  Params params_;
  Sequence seq_;
  DenseReference ref_;
};

// The reference against itself by a second route (chain rule of the joint).
TEST_P(InferenceVsDense, ReferenceLoglikMatchesChainRule) {
  EXPECT_MATRIX_NEAR(dense_loglik_chain_rule(params_, seq_), ref_.marginal_loglik, 1e-12);
}

TEST_P(InferenceVsDense, MarginalLogProb) {
  EXPECT_MATRIX_NEAR(marginal_log_prob(params_, seq_), ref_.marginal_loglik, kRtol);
}

TEST_P(InferenceVsDense, Filter) {
  const FilterResult res = filter(params_, seq_);
  EXPECT_MATRIX_NEAR(res.marginal_loglik, ref_.marginal_loglik, kRtol);
  ASSERT_EQ(res.filtered_means.rows(), num_timesteps());
  ASSERT_EQ(res.filtered_covariances.size(), num_timesteps());
  ASSERT_EQ(res.predicted_means.rows(), num_timesteps());
  ASSERT_EQ(res.predicted_covariances.size(), num_timesteps());
  for (Index t = 0; t < num_timesteps(); ++t) {
    SCOPED_TRACE("t = " + std::to_string(t));
    EXPECT_MATRIX_NEAR(res.filtered_means.row(t), ref_.filtered_means.row(t), kRtol);
    EXPECT_MATRIX_NEAR(res.filtered_covariances[t], ref_.filtered_covariances[t], kRtol);
    EXPECT_MATRIX_NEAR(res.predicted_means.row(t), ref_.predicted_means.row(t), kRtol);
    EXPECT_MATRIX_NEAR(res.predicted_covariances[t], ref_.predicted_covariances[t], kRtol);
  }
}

TEST_P(InferenceVsDense, Smoother) {
  const SmootherResult res = smoother(params_, seq_);
  EXPECT_MATRIX_NEAR(res.marginal_loglik, ref_.marginal_loglik, kRtol);
  ASSERT_EQ(res.smoothed_means.rows(), num_timesteps());
  ASSERT_EQ(res.smoothed_covariances.size(), num_timesteps());
  ASSERT_EQ(res.smoothed_cross_covariances.size(), num_timesteps() - 1);
  for (Index t = 0; t < num_timesteps(); ++t) {
    SCOPED_TRACE("t = " + std::to_string(t));
    EXPECT_MATRIX_NEAR(res.filtered_means.row(t), ref_.filtered_means.row(t), kRtol);
    EXPECT_MATRIX_NEAR(res.smoothed_means.row(t), ref_.smoothed_means.row(t), kRtol);
    EXPECT_MATRIX_NEAR(res.smoothed_covariances[t], ref_.smoothed_covariances[t], kRtol);
    if (t + 1 < num_timesteps()) {
      EXPECT_MATRIX_NEAR(res.smoothed_cross_covariances[t], ref_.smoothed_cross_covariances[t], kRtol);
    }
  }
}

TEST_P(InferenceVsDense, PosteriorPredictive) {
  const PosteriorPredictiveResult full = posterior_predictive(params_, seq_, true);
  const PosteriorPredictiveResult diag = posterior_predictive(params_, seq_, false);
  ASSERT_EQ(full.means.rows(), num_timesteps());
  ASSERT_EQ(full.stds.rows(), num_timesteps());
  ASSERT_EQ(full.covariances.size(), num_timesteps());
  ASSERT_EQ(diag.means.rows(), num_timesteps());
  ASSERT_EQ(diag.stds.rows(), num_timesteps());
  for (Index t = 0; t < num_timesteps(); ++t) {
    SCOPED_TRACE("t = " + std::to_string(t));
    const Vector ref_stds = ref_.predictive_covariances[t].diagonal().cwiseSqrt();
    EXPECT_MATRIX_NEAR(full.means.row(t), ref_.predictive_means.row(t), kRtol);
    EXPECT_MATRIX_NEAR(full.stds.row(t), ref_stds, kRtol);
    EXPECT_MATRIX_NEAR(full.covariances[t], ref_.predictive_covariances[t], kRtol);
    EXPECT_MATRIX_NEAR(diag.means.row(t), ref_.predictive_means.row(t), kRtol);
    EXPECT_MATRIX_NEAR(diag.stds.row(t), ref_stds, kRtol);
  }
}

TEST_P(InferenceVsDense, Forecast) {
  const RowMatrix future_inputs = random_inputs(kHorizon, params_.input_dim(), 7);
  const ForecastResult res = forecast(params_, seq_, kHorizon, future_inputs);
  const DenseForecast ref = dense_forecast(params_, seq_, kHorizon, future_inputs);
  ASSERT_EQ(res.means.rows(), kHorizon);
  ASSERT_EQ(res.covariances.size(), kHorizon);
  ASSERT_EQ(res.emission_means.rows(), kHorizon);
  ASSERT_EQ(res.emission_covariances.size(), kHorizon);
  for (Index k = 0; k < kHorizon; ++k) {
    SCOPED_TRACE("k = " + std::to_string(k));
    EXPECT_MATRIX_NEAR(res.means.row(k), ref.means.row(k), kRtol);
    EXPECT_MATRIX_NEAR(res.covariances[k], ref.covariances[k], kRtol);
    EXPECT_MATRIX_NEAR(res.emission_means.row(k), ref.emission_means.row(k), kRtol);
    EXPECT_MATRIX_NEAR(res.emission_covariances[k], ref.emission_covariances[k], kRtol);
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, InferenceVsDense, ::testing::ValuesIn(variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) { return info.param.name; });

// The dense reference itself against a hand-derived closed form: a scalar
// model of two steps, y = (y_0, y_1) ~ N(mu, C) with
//   mu = (h m + d, h (f m + b) + d),
//   C  = [[h^2 s + r, h^2 f s], [h^2 f s, h^2 (f^2 s + q) + r]].
TEST(DenseReference, ScalarTwoStepClosedForm) {
  const double m = 0.3, s = 1.7, f = 0.8, b = -0.4, q = 0.5, h = 1.3, d = 0.2, r = 0.6;
  Params params;
  params.initial.mean = Vector::Constant(1, m);
  params.initial.cov = Matrix::Constant(1, 1, s);
  auto scalar = [](double x) {
    MatrixSeries series(1, 1, 1);
    series[0](0, 0) = x;
    return series;
  };
  params.dynamics = {scalar(f), scalar(b), MatrixSeries(1, 1, 0), scalar(q)};
  params.emissions = {scalar(h), scalar(d), MatrixSeries(1, 1, 0), scalar(r)};
  Sequence seq;
  seq.emissions.resize(2, 1);
  seq.emissions << 1.1, -0.7;

  const double mu0 = h * m + d, mu1 = h * (f * m + b) + d;
  const double c00 = h * h * s + r, c01 = h * h * f * s, c11 = h * h * (f * f * s + q) + r;
  const double det = c00 * c11 - c01 * c01;
  const double e0 = 1.1 - mu0, e1 = -0.7 - mu1;
  const double quad = (c11 * e0 * e0 - 2 * c01 * e0 * e1 + c00 * e1 * e1) / det;
  const double expected = -0.5 * (quad + std::log(det) + 2 * std::log(2 * 3.14159265358979323846));

  const DenseReference ref = dense_reference(params, seq);
  EXPECT_MATRIX_NEAR(ref.marginal_loglik, expected, 1e-13);
  // E[z_1 | y] by the bivariate formula on (z_1, y_0, y_1).
  const double cz0 = h * f * s, cz1 = h * (f * f * s + q);
  const double mean_z1 = (f * m + b) + ((c11 * cz0 - c01 * cz1) * e0 + (c00 * cz1 - c01 * cz0) * e1) / det;
  EXPECT_MATRIX_NEAR(ref.smoothed_means(1, 0), mean_z1, 1e-13);
}

// One batch of sequences of different lengths sharing per-step parameters
// (longer than the shorter sequences need), through the batch functions: each
// result against its own dense reference.
TEST(BatchInference, DifferentLengthsMatchOwnDenseReference) {
  const Params params = random_params({3, 2, 2, 7, true, false, -1, -1, 201});
  const std::vector<Index> lengths = {3, 7, 5};
  std::vector<Sequence> seqs;
  for (std::size_t i = 0; i < lengths.size(); ++i)
    seqs.push_back(random_sequence(params, {lengths[i], 0.2, {}, 210 + i}));

  const std::vector<SmootherResult> smoothed = smoother(params, seqs, 2);
  const std::vector<FilterResult> filtered = filter(params, seqs, 2);
  const std::vector<double> logliks = marginal_log_prob(params, seqs, 2);
  ASSERT_EQ(smoothed.size(), seqs.size());
  ASSERT_EQ(filtered.size(), seqs.size());
  ASSERT_EQ(logliks.size(), seqs.size());
  for (std::size_t i = 0; i < seqs.size(); ++i) {
    SCOPED_TRACE("sequence " + std::to_string(i) + " of length " + std::to_string(lengths[i]));
    const DenseReference ref = dense_reference(params, seqs[i]);
    EXPECT_MATRIX_NEAR(logliks[i], ref.marginal_loglik, kRtol);
    EXPECT_MATRIX_NEAR(filtered[i].marginal_loglik, ref.marginal_loglik, kRtol);
    EXPECT_MATRIX_NEAR(filtered[i].filtered_covariances.flat(), smoothed[i].filtered_covariances.flat(), 0.0);
    EXPECT_MATRIX_NEAR(smoothed[i].marginal_loglik, ref.marginal_loglik, kRtol);
    ASSERT_EQ(smoothed[i].smoothed_means.rows(), lengths[i]);
    ASSERT_EQ(smoothed[i].smoothed_cross_covariances.size(), lengths[i] - 1);
    for (Index t = 0; t < lengths[i]; ++t) {
      SCOPED_TRACE("t = " + std::to_string(t));
      EXPECT_MATRIX_NEAR(smoothed[i].filtered_means.row(t), ref.filtered_means.row(t), kRtol);
      EXPECT_MATRIX_NEAR(smoothed[i].filtered_covariances[t], ref.filtered_covariances[t], kRtol);
      EXPECT_MATRIX_NEAR(smoothed[i].smoothed_means.row(t), ref.smoothed_means.row(t), kRtol);
      EXPECT_MATRIX_NEAR(smoothed[i].smoothed_covariances[t], ref.smoothed_covariances[t], kRtol);
      if (t + 1 < lengths[i]) {
        EXPECT_MATRIX_NEAR(smoothed[i].smoothed_cross_covariances[t], ref.smoothed_cross_covariances[t], kRtol);
      }
    }
  }
}

// Sequences of one length and missing pattern run as the columns of one
// filter and smoother, their covariances computed once (a group of 70 splits
// into blocks); the rest run alone. The batch log likelihoods and E-step equal
// the per-sequence ones, for a fixed-size and a dynamic state dimension, with
// inputs and per-step parameters.
TEST(BatchInference, SharedPatternColumnsEqualPerSequence) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const ModelSpec& spec :
       {ModelSpec{3, 4, 1, 0, true, false, -1, 2, 230}, ModelSpec{6, 4, 1, 12, true, true, -1, -1, 231}}) {
    SCOPED_TRACE("state_dim " + std::to_string(spec.state_dim));
    const Params params = random_params(spec);
    std::vector<Sequence> seqs;
    for (Index i = 0; i < 70; ++i)
      seqs.push_back(random_sequence(params, {12, 0.0, {}, 300 + static_cast<std::uint64_t>(i)}));
    for (Index i = 0; i < 3; ++i) {
      Sequence s = random_sequence(params, {12, 0.0, {4}, 400 + static_cast<std::uint64_t>(i)});
      s.emissions(2, 1) = s.emissions(9, 0) = nan;
      seqs.insert(seqs.begin() + 5 * i, s);
    }
    for (Index i = 0; i < 2; ++i)
      seqs.push_back(random_sequence(params, {7, 0.0, {}, 500 + static_cast<std::uint64_t>(i)}));
    seqs.push_back(random_sequence(params, {12, 0.3, {}, 600}));

    const std::vector<double> logliks = marginal_log_prob(params, seqs, 2);
    const SufficientStats batch = sufficient_stats(params, seqs, false, 2);
    SufficientStats total;
    for (std::size_t i = 0; i < seqs.size(); ++i) {
      EXPECT_MATRIX_NEAR(logliks[i], marginal_log_prob(params, seqs[i]), 1e-12) << "sequence " << i;
      total += sufficient_stats(params, seqs[i]);
    }
    EXPECT_MATRIX_NEAR(batch.marginal_loglik, total.marginal_loglik, 1e-12);
    EXPECT_EQ(batch.num_sequences(), total.num_sequences());
    const std::vector<std::pair<const RegressionStats*, const RegressionStats*>> pairs = {
        {&batch.initial, &total.initial},
        {&batch.dynamics[0], &total.dynamics[0]},
        {&batch.emissions[0], &total.emissions[0]}};
    for (const auto& [got, want] : pairs) {
      EXPECT_EQ(got->count, want->count);
      EXPECT_MATRIX_NEAR(got->xx, want->xx, 1e-12);
      EXPECT_MATRIX_NEAR(got->moment(want->w0), want->rx, 1e-12);
      EXPECT_MATRIX_NEAR(got->scatter(want->w0), want->rr, 1e-12);
    }
  }
}

// The batch functions validate every sequence up front and name the bad one.
TEST(BatchInference, NamesTheInvalidSequence) {
  const Params params = random_params({3, 2, 0, 0, false, false, -1, -1, 220});
  std::vector<Sequence> seqs = {random_sequence(params, {4, 0.0, {}, 221}), random_sequence(params, {5, 0.0, {}, 222})};
  seqs[1].emissions(2, 1) = std::numeric_limits<double>::infinity();
  for (const auto& call : std::vector<std::function<void()>>{
           [&] { filter(params, seqs); }, [&] { smoother(params, seqs); }, [&] { marginal_log_prob(params, seqs); }}) {
    try {
      call();
      ADD_FAILURE() << "nothing thrown";
    } catch (const lgssm::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("emissions[1]: expected finite values or NaN"), std::string::npos)
          << e.what();
    }
  }
}

}  // namespace
}  // namespace lgssm::test
