// The learning layer against independent references: one battery of variants
// (inputs, biases, diagonal and scalar covariances, missing components, wholly
// missing steps, several sequences of different lengths, frozen subsets) on
// which
//   - log_prob_gradient equals central finite differences of log p(y),
//   - EM never decreases log p(y), keeps frozen parameters bitwise and keeps
//     covariance structures exactly;
// and, separately, that batch statistics are sums of per-sequence ones, that
// m_step maximizes an independently written E[log p(z, y)], and that bad
// arguments are named in the errors.
#include "lgssm/learn.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <initializer_list>
#include <limits>
#include <ostream>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "lgssm/error.hpp"
#include "lgssm/fit.hpp"
#include "lgssm/inference.hpp"
#include "lgssm/stats.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

constexpr double kPi = 3.14159265358979323846;
// The tests run the E-step on one thread: they check numbers, not threading
// (parallel_test.cpp does that).
constexpr int kThreads = 1;
constexpr CovStructure kFull = CovStructure::kFull;
constexpr CovStructure kDiagonal = CovStructure::kDiagonal;
constexpr CovStructure kScalar = CovStructure::kScalar;

// ---------------------------------------------------------------------------
// Building variants.

// `props` with the named parameters ("initial.mean", "dynamics.cov",
// "emissions.bias", ...) frozen.
ParamProps freeze(ParamProps props, std::initializer_list<std::string> names) {
  for (const auto& name : names) {
    bool* flag = nullptr;
    if (name == "initial.mean") flag = &props.initial.mean;
    if (name == "initial.cov") flag = &props.initial.cov;
    for (auto [prefix, c] : {std::pair{std::string("dynamics."), &props.dynamics},
                             std::pair{std::string("emissions."), &props.emissions}}) {
      if (name == prefix + "weights") flag = &c->weights;
      if (name == prefix + "bias") flag = &c->bias;
      if (name == prefix + "input_weights") flag = &c->input_weights;
      if (name == prefix + "cov") flag = &c->cov;
    }
    if (flag == nullptr) throw std::logic_error("freeze: unknown parameter " + name);
    *flag = false;
  }
  return props;
}

ParamProps structures(CovStructure initial, CovStructure dynamics, CovStructure emissions) {
  ParamProps props;
  props.initial.cov_structure = initial;
  props.dynamics.cov_structure = dynamics;
  props.emissions.cov_structure = emissions;
  return props;
}

// `cov` made to have structure `s` (its diagonal, or the mean of it times I).
Matrix structured(const Matrix& cov, CovStructure s) {
  if (s == kDiagonal) return Matrix(cov.diagonal().asDiagonal());
  if (s == kScalar) return cov.diagonal().mean() * Matrix::Identity(cov.rows(), cov.cols());
  return cov;
}

void impose_structures(Params& p, const ParamProps& props) {
  p.initial.cov = structured(p.initial.cov, props.initial.cov_structure);
  for (Index k = 0; k < p.dynamics.cov.size(); ++k)
    p.dynamics.cov[k] = structured(p.dynamics.cov[k], props.dynamics.cov_structure);
  for (Index k = 0; k < p.emissions.cov.size(); ++k)
    p.emissions.cov[k] = structured(p.emissions.cov[k], props.emissions.cov_structure);
}

struct Variant {
  std::string name;
  ModelSpec model;  // time-invariant (num_param_steps = 0)
  std::vector<SequenceSpec> sequences;
  ParamProps props;
};

void PrintTo(const Variant& v, std::ostream* os) { *os << v.name; }

Params make_params(const Variant& v) {
  Params p = random_params(v.model);
  impose_structures(p, v.props);
  return p;
}

std::vector<Sequence> make_sequences(const Params& params, const std::vector<SequenceSpec>& specs) {
  std::vector<Sequence> seqs;
  for (const auto& s : specs) seqs.push_back(random_sequence(params, s));
  return seqs;
}

const std::vector<Variant>& variants() {
  static const std::vector<Variant> kVariants = [] {
    std::vector<Variant> v;
    const ParamProps all;
    // ModelSpec: {state_dim, emission_dim, input_dim, num_param_steps, biases, diagonal R,
    //             initial_cov_rank, dynamics_cov_rank, seed}
    // SequenceSpec: {T, missing fraction, missing steps, seed}
    v.push_back({"plain", {2, 3, 0, 0, false, false, -1, -1, 1}, {{10, 0.0, {}, 2}}, all});
    v.push_back({"inputs_and_biases", {2, 3, 2, 0, true, false, -1, -1, 3}, {{10, 0.0, {}, 4}}, all});
    v.push_back({"diagonal_covs",
                 {2, 3, 1, 0, true, true, -1, -1, 5},
                 {{10, 0.0, {}, 6}},
                 structures(kDiagonal, kDiagonal, kDiagonal)});
    v.push_back({"scalar_covs",
                 {2, 3, 1, 0, true, false, -1, -1, 7},
                 {{10, 0.0, {}, 8}},
                 structures(kScalar, kScalar, kScalar)});
    v.push_back({"mixed_structures",
                 {3, 4, 1, 0, true, false, -1, -1, 9},
                 {{10, 0.0, {}, 10}},
                 structures(kFull, kDiagonal, kScalar)});
    v.push_back({"missing_components", {3, 4, 1, 0, true, false, -1, -1, 11}, {{12, 0.3, {}, 12}}, all});
    v.push_back({"missing_components_diagonal_R",
                 {2, 4, 1, 0, true, true, -1, -1, 13},
                 {{12, 0.3, {}, 14}},
                 structures(kFull, kFull, kDiagonal)});
    v.push_back({"missing_components_scalar_R",
                 {2, 4, 0, 0, true, false, -1, -1, 15},
                 {{12, 0.3, {}, 16}},
                 structures(kFull, kFull, kScalar)});
    v.push_back({"wholly_missing_steps", {2, 3, 1, 0, true, false, -1, -1, 17}, {{9, 0.0, {0, 4, 8}, 18}}, all});
    v.push_back({"sequences_of_different_lengths",
                 {2, 3, 1, 0, true, false, -1, -1, 19},
                 {{9, 0.0, {}, 20}, {4, 0.2, {}, 21}, {1, 0.0, {}, 22}, {6, 0.0, {2}, 23}},
                 all});
    v.push_back({"emission_dim_below_state_dim",
                 {3, 2, 1, 0, true, false, -1, -1, 25},
                 {{10, 0.0, {}, 26}, {7, 0.0, {}, 27}},
                 all});
    v.push_back({"frozen_emissions_cov",
                 {2, 3, 1, 0, true, false, -1, -1, 29},
                 {{10, 0.1, {}, 30}, {6, 0.0, {}, 31}},
                 freeze(all, {"emissions.cov"})});
    v.push_back({"frozen_dynamics_weights_and_emissions_bias",
                 {2, 3, 1, 0, true, false, -1, -1, 33},
                 {{10, 0.1, {}, 34}, {6, 0.0, {}, 35}},
                 freeze(all, {"dynamics.weights", "emissions.bias"})});
    v.push_back({"frozen_initial_and_input_weights_diagonal_R",
                 {2, 3, 2, 0, true, true, -1, -1, 37},
                 {{10, 0.0, {3}, 38}, {5, 0.2, {}, 39}},
                 freeze(structures(kFull, kFull, kDiagonal),
                        {"initial.mean", "initial.cov", "dynamics.input_weights", "emissions.input_weights"})});
    v.push_back({"only_emissions_weights_trainable_scalar_Q",
                 {2, 3, 1, 0, true, false, -1, -1, 41},
                 {{10, 0.0, {}, 42}},
                 freeze(structures(kFull, kScalar, kFull),
                        {"initial.mean", "initial.cov", "dynamics.weights", "dynamics.bias", "dynamics.input_weights",
                         "dynamics.cov", "emissions.bias", "emissions.input_weights", "emissions.cov"})});
    // Fixed-size kernels serve state_dim 1-4, the dynamic-size ones the rest.
    v.push_back({"state_dim_1", {1, 3, 1, 0, true, false, -1, -1, 45}, {{10, 0.2, {}, 46}, {4, 0.0, {}, 47}}, all});
    v.push_back({"state_dim_5_dynamic_size",
                 {5, 3, 1, 0, true, false, -1, -1, 49},
                 {{10, 0.2, {}, 50}, {4, 0.0, {1}, 51}},
                 all});
    v.push_back({"all_frozen",
                 {2, 3, 1, 0, true, false, -1, -1, 43},
                 {{8, 0.0, {}, 44}},
                 freeze(all, {"initial.mean", "initial.cov", "dynamics.weights", "dynamics.bias",
                              "dynamics.input_weights", "dynamics.cov", "emissions.weights", "emissions.bias",
                              "emissions.input_weights", "emissions.cov"})});
    return v;
  }();
  return kVariants;
}

const Variant& variant(const std::string& name) {
  for (const auto& v : variants())
    if (v.name == name) return v;
  throw std::logic_error("no variant " + name);
}

// ---------------------------------------------------------------------------
// Independent references.

double total_log_prob(const Params& params, const std::vector<Sequence>& seqs) {
  double sum = 0.0;
  for (const auto& s : seqs) sum += marginal_log_prob(params, s);
  return sum;
}

// The documented layout of the unconstrained vector (learn.hpp), one label per
// entry: trainable parameters in the order initial.mean, initial.cov,
// dynamics.{weights, bias, input_weights, cov}, emissions.{...}; a full n x n
// covariance takes n (n + 1) / 2 entries, a diagonal one n, a scalar one 1.
std::vector<std::string> unconstrained_labels(const Params& p, const ParamProps& props) {
  std::vector<std::string> labels;
  auto add = [&](bool trainable, const std::string& name, Index size) {
    if (!trainable) return;
    for (Index i = 0; i < size; ++i) labels.push_back(name + "[" + std::to_string(i) + "]");
  };
  auto cov_size = [](Index n, CovStructure s) { return s == kFull ? n * (n + 1) / 2 : s == kDiagonal ? n : 1; };
  const Index n = p.state_dim(), d = p.emission_dim(), m = p.input_dim();
  add(props.initial.mean, "initial.mean", n);
  add(props.initial.cov, "initial.cov", cov_size(n, props.initial.cov_structure));
  for (auto [name, c, out] : {std::tuple{std::string("dynamics"), props.dynamics, n},
                              std::tuple{std::string("emissions"), props.emissions, d}}) {
    add(c.weights, name + ".weights", out * n);
    add(c.bias, name + ".bias", out);
    add(c.input_weights, name + ".input_weights", out * m);
    add(c.cov, name + ".cov", cov_size(out, c.cov_structure));
  }
  return labels;
}

// sum_{count terms} E[log N(r; 0, cov)] where scatter = sum E[r r^T].
double expected_gaussian_loglik(const Matrix& cov, const Matrix& scatter, double count) {
  const Eigen::LLT<Matrix> llt(cov);
  EXPECT_EQ(llt.info(), Eigen::Success);
  const double logdet = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
  const double quad = llt.solve(scatter).trace();
  return -0.5 * (count * (static_cast<double>(cov.rows()) * std::log(2.0 * kPi) + logdet) + quad);
}

// sum E[(out - W x)(out - W x)^T] from the sums of E[x x^T], E[r x^T] and
// E[r r^T], r = out - w0 x: out - W x = r - (W - w0) x.
Matrix regression_scatter(const RegressionStats& s, const Matrix& w) {
  const Matrix d = w - s.w0;
  return s.rr - d * s.rx.transpose() - s.rx * d.transpose() + d * s.xx * d.transpose();
}

Matrix regression_weights(const LinearGaussianParams& c, Index t) {
  const Index d = c.weights.rows(), n = c.weights.cols(), m = c.input_weights.cols();
  Matrix w(d, n + m + 1);
  w.leftCols(n) = c.weights.at(t);
  w.middleCols(n, m) = c.input_weights.at(t);
  w.col(n + m) = c.bias.vec(t);
  return w;
}

// Q(theta) = E[log p(z, y | theta)] under the law the statistics summarize,
// written from the definitions in stats.hpp:
//   initial:  sum_i E[log N(z_0^i; m, S)]
//   dynamics: sum_t E[log N(z_t; W x_t, Q)],  x_t = [z_{t-1}; u_t; 1]
//   emissions: sum_t E[log N(y_t; W_t x_t, R_t)], x_t = [z_t; u_t; 1]
double expected_complete_loglik(const Params& p, const SufficientStats& s) {
  const Vector& m0 = p.initial.mean;
  const double n0 = s.num_sequences();
  const Matrix scatter0 = regression_scatter(s.initial, m0);
  double q = expected_gaussian_loglik(p.initial.cov, scatter0, n0);
  EXPECT_EQ(s.dynamics.size(), 1u) << "a discrete-time model pools its transitions in one entry";
  for (const RegressionStats& d : s.dynamics)
    if (d.count > 0)
      q += expected_gaussian_loglik(p.dynamics.cov.at(0), regression_scatter(d, regression_weights(p.dynamics, 0)),
                                    d.count);
  for (Index t = 0; t < static_cast<Index>(s.emissions.size()); ++t) {
    const RegressionStats& e = s.emissions[t];
    if (e.count > 0)
      q += expected_gaussian_loglik(p.emissions.cov.at(t), regression_scatter(e, regression_weights(p.emissions, t)),
                                    e.count);
  }
  return q;
}

// ---------------------------------------------------------------------------
// Comparisons.

bool same(const MatrixSeries& a, const MatrixSeries& b) {
  return a.size() == b.size() && a.rows() == b.rows() && a.cols() == b.cols() && a.flat() == b.flat();
}

// Frozen parameters of `after` equal those of `before` bit for bit.
void expect_frozen_unchanged(const Params& before, const Params& after, const ParamProps& props) {
  if (!props.initial.mean) {
    EXPECT_TRUE(after.initial.mean == before.initial.mean) << "initial.mean changed";
  }
  if (!props.initial.cov) {
    EXPECT_TRUE(after.initial.cov == before.initial.cov) << "initial.cov changed";
  }
  for (auto [name, pr, a, b] :
       {std::tuple{std::string("dynamics"), props.dynamics, &after.dynamics, &before.dynamics},
        std::tuple{std::string("emissions"), props.emissions, &after.emissions, &before.emissions}}) {
    if (!pr.weights) {
      EXPECT_TRUE(same(a->weights, b->weights)) << name << ".weights changed";
    }
    if (!pr.bias) {
      EXPECT_TRUE(same(a->bias, b->bias)) << name << ".bias changed";
    }
    if (!pr.input_weights) {
      EXPECT_TRUE(same(a->input_weights, b->input_weights)) << name << ".input_weights changed";
    }
    if (!pr.cov) {
      EXPECT_TRUE(same(a->cov, b->cov)) << name << ".cov changed";
    }
  }
}

// Exactly zero off the diagonal (diagonal), and also exactly equal diagonal entries (scalar).
::testing::AssertionResult has_structure(const Matrix& cov, CovStructure s) {
  for (Index i = 0; i < cov.rows(); ++i)
    for (Index j = 0; j < cov.cols(); ++j) {
      if (s != kFull && i != j && cov(i, j) != 0.0)
        return ::testing::AssertionFailure() << "entry (" << i << ", " << j << ") = " << cov(i, j) << "\n" << cov;
      if (s == kScalar && i == j && cov(i, i) != cov(0, 0))
        return ::testing::AssertionFailure()
               << "diagonal entry " << i << " = " << cov(i, i) << " != " << cov(0, 0) << "\n"
               << cov;
    }
  return ::testing::AssertionSuccess();
}

void expect_structures(const Params& p, const ParamProps& props) {
  EXPECT_TRUE(has_structure(p.initial.cov, props.initial.cov_structure)) << "initial.cov";
  for (Index k = 0; k < p.dynamics.cov.size(); ++k)
    EXPECT_TRUE(has_structure(p.dynamics.cov[k], props.dynamics.cov_structure)) << "dynamics.cov[" << k << "]";
  for (Index k = 0; k < p.emissions.cov.size(); ++k)
    EXPECT_TRUE(has_structure(p.emissions.cov[k], props.emissions.cov_structure)) << "emissions.cov[" << k << "]";
}

void expect_params_near(const Params& a, const Params& b, double rtol) {
  EXPECT_MATRIX_NEAR(a.initial.mean, b.initial.mean, rtol);
  EXPECT_MATRIX_NEAR(a.initial.cov, b.initial.cov, rtol);
  for (auto [x, y] : {std::pair{&a.dynamics, &b.dynamics}, std::pair{&a.emissions, &b.emissions}}) {
    EXPECT_MATRIX_NEAR(Matrix(x->weights.flat()), Matrix(y->weights.flat()), rtol);
    EXPECT_MATRIX_NEAR(Matrix(x->bias.flat()), Matrix(y->bias.flat()), rtol);
    EXPECT_MATRIX_NEAR(Matrix(x->input_weights.flat()), Matrix(y->input_weights.flat()), rtol);
    EXPECT_MATRIX_NEAR(Matrix(x->cov.flat()), Matrix(y->cov.flat()), rtol);
  }
}

void expect_stats_near(const SufficientStats& a, const SufficientStats& b, double rtol) {
  std::vector<std::pair<const RegressionStats*, const RegressionStats*>> regs{{&a.initial, &b.initial}};
  EXPECT_MATRIX_NEAR(a.marginal_loglik, b.marginal_loglik, rtol);
  ASSERT_EQ(a.dynamics.size(), b.dynamics.size());
  for (size_t k = 0; k < a.dynamics.size(); ++k) regs.push_back({&a.dynamics[k], &b.dynamics[k]});
  ASSERT_EQ(a.emissions.size(), b.emissions.size());
  for (size_t t = 0; t < a.emissions.size(); ++t) regs.push_back({&a.emissions[t], &b.emissions[t]});
  for (auto [x, y] : regs) {
    EXPECT_MATRIX_NEAR(x->xx, y->xx, rtol);
    EXPECT_MATRIX_NEAR(x->w0, y->w0, rtol);
    EXPECT_MATRIX_NEAR(x->rx, y->rx, rtol);
    EXPECT_MATRIX_NEAR(x->rr, y->rr, rtol);
    EXPECT_EQ(x->count, y->count);
  }
}

// Central differences (step h) of f at x, entry by entry.
Vector central_differences(const std::function<double(const Vector&)>& f, const Vector& x, double h = 1e-5) {
  Vector fd(x.size());
  for (Index i = 0; i < x.size(); ++i) {
    Vector xp = x, xm = x;
    xp(i) += h;
    xm(i) -= h;
    fd(i) = (f(xp) - f(xm)) / (2.0 * h);
  }
  return fd;
}

// ---------------------------------------------------------------------------
// The battery.

class LearnBattery : public ::testing::TestWithParam<Variant> {};

TEST_P(LearnBattery, GradientMatchesFiniteDifferences) {
  const Variant& v = GetParam();
  const Params params = make_params(v);
  const auto seqs = make_sequences(params, v.sequences);
  const auto labels = unconstrained_labels(params, v.props);

  const Vector x = to_unconstrained(params, v.props);
  ASSERT_EQ(x.size(), static_cast<Index>(labels.size())) << "frozen parameters must have no entries";
  expect_params_near(from_unconstrained(x, params, v.props), params, 1e-12);

  const SufficientStats stats = sufficient_stats(params, seqs, false, kThreads);
  EXPECT_MATRIX_NEAR(stats.marginal_loglik, total_log_prob(params, seqs), 1e-10);
  const Vector grad = log_prob_gradient(params, v.props, stats);
  ASSERT_EQ(grad.size(), x.size());

  // Central differences of sum_i log p(y_i) over the unconstrained vector.
  const Vector fd = central_differences(
      [&](const Vector& xi) { return total_log_prob(from_unconstrained(xi, params, v.props), seqs); }, x);
  for (Index i = 0; i < x.size(); ++i)
    EXPECT_LE(std::abs(grad(i) - fd(i)), 1e-6 * std::max(1.0, std::abs(fd(i))))
        << labels[i] << ": gradient " << grad(i) << ", central difference " << fd(i);
}

// The samplers' density log p(y) + log p(params) + log |det J| over the
// unconstrained vector: its gradient equals central differences of its value
// (which checks the prior's and the Jacobian's gradients along with the
// likelihood's), and its Jacobian term is log_det_jacobian's.
TEST_P(LearnBattery, LogPosteriorGradientMatchesFiniteDifferences) {
  const Variant& v = GetParam();
  const Params params = make_params(v);
  const auto seqs = make_sequences(params, v.sequences);
  const auto labels = unconstrained_labels(params, v.props);
  const ConjugatePrior prior = ConjugatePrior::defaults(params.state_dim(), params.emission_dim(), params.input_dim());
  const Vector x = to_unconstrained(params, v.props);
  Vector grad, unused;
  const double f = log_posterior_unconstrained(x, params, v.props, seqs, &prior, grad, kThreads);
  const double log_j = log_det_jacobian(x, params, v.props, unused);
  EXPECT_MATRIX_NEAR(f, total_log_prob(params, seqs) + log_prior(params, prior) + log_j, 1e-12);
  const Vector fd = central_differences(
      [&](const Vector& xi) {
        return log_posterior_unconstrained(xi, params, v.props, seqs, &prior, unused, kThreads);
      },
      x);
  for (Index i = 0; i < x.size(); ++i)
    EXPECT_LE(std::abs(grad(i) - fd(i)), 1e-6 * std::max(1.0, std::abs(fd(i))))
        << labels[i] << ": gradient " << grad(i) << ", central difference " << fd(i);
}

TEST_P(LearnBattery, EmIsMonotoneKeepsFrozenParametersAndStructures) {
  const Variant& v = GetParam();
  const Params params = make_params(v);
  const auto seqs = make_sequences(params, v.sequences);
  EmOptions options;
  options.num_iters = 25;
  options.num_threads = kThreads;
  const FitResult r = fit_em(params, v.props, seqs, options);
  ASSERT_EQ(r.summary.termination, Termination::kMaxIterations) << r.summary.message;
  ASSERT_EQ(r.history.size(), 25u);
  EXPECT_MATRIX_NEAR(r.history[0], total_log_prob(params, seqs), 1e-10);
  for (size_t k = 1; k < r.history.size(); ++k)
    EXPECT_GE(r.history[k], r.history[k - 1] - 1e-8 * std::abs(r.history[k - 1]))
        << "log p(y) decreased at iteration " << k << ": " << r.history[k - 1] << " -> " << r.history[k];
  // The returned parameters are those after the last M-step: at least as good.
  const double final_lp = total_log_prob(r.params, seqs);
  EXPECT_GE(final_lp, r.history.back() - 1e-8 * std::abs(r.history.back()));
  expect_frozen_unchanged(params, r.params, v.props);
  expect_structures(r.params, v.props);
  EXPECT_NO_THROW(validate(r.params, v.props));
}

INSTANTIATE_TEST_SUITE_P(Variants, LearnBattery, ::testing::ValuesIn(variants()),
                         [](const auto& info) { return info.param.name; });

TEST(Learn, AllFrozenLeavesNothingToFit) {
  const Variant& v = variant("all_frozen");
  const Params params = make_params(v);
  EXPECT_EQ(to_unconstrained(params, v.props).size(), 0);
  const auto seqs = make_sequences(params, v.sequences);
  EXPECT_EQ(log_prob_gradient(params, v.props, sufficient_stats(params, seqs, false, kThreads)).size(), 0);
  EmOptions options;
  options.num_iters = 3;
  options.num_threads = kThreads;
  const FitResult r = fit_em(params, v.props, seqs, options);
  expect_params_near(r.params, params, 0.0);
}

// ---------------------------------------------------------------------------
// Per-step emission parameters.

// Time-invariant dynamics and initial law, emission parameters with
// `num_steps` entries each (input-free, so one sequence makes E[x x^T] PD).
Params per_step_params(Index num_steps, std::uint64_t seed) {
  Params p = random_params({2, 3, 0, 0, true, false, -1, -1, seed});
  std::mt19937_64 rng(seed + 1);
  auto& e = p.emissions;
  e.weights = random_series(num_steps, 3, 2, [&] { return random_matrix(rng, 3, 2); });
  e.bias = random_series(num_steps, 3, 1, [&] { return random_matrix(rng, 3, 1); });
  e.input_weights = MatrixSeries(num_steps, 3, 0);
  e.cov = random_series(num_steps, 3, 3, [&] { return random_cov(rng, 3); });
  return p;
}

TEST(Learn, PerStepEmissionsEmIsMonotone) {
  const Params params = per_step_params(6, 51);
  const auto seqs = make_sequences(
      params,
      {{6, 0.0, {}, 52}, {6, 0.2, {}, 53}, {5, 0.0, {}, 54}, {6, 0.0, {1}, 55}, {4, 0.0, {}, 56}, {6, 0.0, {}, 57}});
  const ParamProps props = freeze({}, {"dynamics.weights", "dynamics.cov"});
  EmOptions options;
  options.num_iters = 20;
  options.num_threads = kThreads;
  const FitResult r = fit_em(params, props, seqs, options);
  ASSERT_EQ(r.summary.termination, Termination::kMaxIterations) << r.summary.message;
  for (size_t k = 1; k < r.history.size(); ++k)
    EXPECT_GE(r.history[k], r.history[k - 1] - 1e-8 * std::abs(r.history[k - 1])) << "iteration " << k;
  expect_frozen_unchanged(params, r.params, props);
  EXPECT_EQ(r.params.emissions.weights.size(), 6);
  // Every step's emission weights moved (each is fitted to its own statistics).
  for (Index t = 0; t < 6; ++t)
    EXPECT_FALSE(Matrix(r.params.emissions.weights[t]) == Matrix(params.emissions.weights[t])) << "step " << t;
}

// ---------------------------------------------------------------------------
// Batches are sums.

TEST(Learn, BatchStatisticsAreSumsOfPerSequenceStatistics) {
  for (bool per_step : {false, true}) {
    SCOPED_TRACE(per_step ? "per-step emissions" : "pooled emissions");
    const Params params = per_step ? per_step_params(9, 61) : make_params(variant("sequences_of_different_lengths"));
    // Per step, every step needs enough sequences to determine its own R_t.
    const auto seqs = make_sequences(
        params, per_step
                    ? std::vector<SequenceSpec>{{9, 0.0, {}, 62},
                                                {9, 0.2, {}, 63},
                                                {7, 0.0, {}, 64},
                                                {9, 0.0, {2}, 65},
                                                {9, 0.1, {}, 66},
                                                {4, 0.0, {}, 67},
                                                {9, 0.0, {}, 68}}
                    : std::vector<SequenceSpec>{
                          {9, 0.0, {}, 62}, {4, 0.2, {}, 63}, {1, 0.0, {}, 64}, {6, 0.0, {2}, 65}, {9, 0.1, {}, 66}});
    SufficientStats summed = sufficient_stats(params, seqs[0], per_step);
    for (size_t i = 1; i < seqs.size(); ++i) summed += sufficient_stats(params, seqs[i], per_step);
    const SufficientStats batch = sufficient_stats(params, seqs, per_step, kThreads);
    ASSERT_EQ(batch.emissions.size(), per_step ? 9u : 1u);
    expect_stats_near(batch, summed, 1e-12);
    EXPECT_EQ(batch.num_sequences(), static_cast<double>(seqs.size()));

    const ParamProps props = per_step ? freeze({}, {"dynamics.weights"}) : ParamProps{};
    const Params from_summed = m_step(params, props, summed);
    expect_params_near(m_step(params, props, batch), from_summed, 1e-12);

    // One EM iteration is the M-step of the summed statistics; the second
    // iteration's log likelihood is that of the M-step's result.
    EmOptions options;
    options.num_iters = 1;
    options.num_threads = kThreads;
    const FitResult one = fit_em(params, props, seqs, options);
    ASSERT_EQ(one.summary.termination, Termination::kMaxIterations) << one.summary.message;
    expect_params_near(one.params, from_summed, 1e-12);
    options.num_iters = 2;
    const FitResult two = fit_em(params, props, seqs, options);
    ASSERT_EQ(two.history.size(), 2u);
    EXPECT_MATRIX_NEAR(two.history[0], total_log_prob(params, seqs), 1e-12);
    EXPECT_MATRIX_NEAR(two.history[1], total_log_prob(from_summed, seqs), 1e-12);
  }
}

// ---------------------------------------------------------------------------
// The M-step maximizes Q.

// `p` with every trainable parameter moved at random by about `scale`,
// keeping each covariance's structure (and positive definiteness).
Params perturb(const Params& p, const ParamProps& props, std::mt19937_64& rng, double scale) {
  Params out = p;
  std::normal_distribution<double> normal(0.0, 1.0);
  auto cov = [&](Matrix c, CovStructure s) -> Matrix {
    if (s == kFull) {
      const Matrix a = Matrix::Identity(c.rows(), c.cols()) + random_matrix(rng, c.rows(), c.cols(), scale);
      c = a * c * a.transpose();
      return 0.5 * (c + c.transpose());
    }
    if (s == kDiagonal) {
      for (Index i = 0; i < c.rows(); ++i) c(i, i) *= std::exp(scale * normal(rng));
      return c;
    }
    return c * std::exp(scale * normal(rng));
  };
  auto shift = [&](MatrixSeries& s) {
    for (Index k = 0; k < s.size(); ++k) s[k] += random_matrix(rng, s.rows(), s.cols(), scale);
  };
  if (props.initial.mean) out.initial.mean += random_matrix(rng, p.state_dim(), 1, scale);
  if (props.initial.cov) out.initial.cov = cov(out.initial.cov, props.initial.cov_structure);
  for (auto [c, pr] : {std::pair{&out.dynamics, props.dynamics}, std::pair{&out.emissions, props.emissions}}) {
    if (pr.weights) shift(c->weights);
    if (pr.bias) shift(c->bias);
    if (pr.input_weights) shift(c->input_weights);
    if (pr.cov)
      for (Index k = 0; k < c->cov.size(); ++k) c->cov[k] = cov(c->cov[k], pr.cov_structure);
  }
  return out;
}

struct MStepCase {
  std::string name;
  ParamProps props;
  bool per_step = false;
};

// Statistics computed at different parameters (different references w0) add
// exactly: the scatter and moment of the sum about any W are the sums of the
// parts' (out - W x = r - (W - w0) x for each part).
TEST(Learn, StatisticsAboutDifferentReferencesAdd) {
  const Params a = make_params(variant("sequences_of_different_lengths"));
  Params b = a;
  b.emissions.weights[0] *= 1.3;
  b.emissions.bias[0].array() += 0.4;
  b.dynamics.weights[0] *= 0.8;
  const auto seqs = make_sequences(a, {{9, 0.2, {}, 71}, {6, 0.0, {}, 72}});
  const SufficientStats sa = sufficient_stats(a, seqs[0]), sb = sufficient_stats(b, seqs[1]);
  ASSERT_FALSE(sa.emissions[0].w0 == sb.emissions[0].w0);
  SufficientStats sum = sa;
  sum += sb;
  std::mt19937_64 rng(5);
  std::normal_distribution<double> normal;
  const std::pair<const RegressionStats*, const RegressionStats*> parts[] = {{&sa.emissions[0], &sb.emissions[0]},
                                                                             {&sa.dynamics[0], &sb.dynamics[0]}};
  const RegressionStats* sums[] = {&sum.emissions[0], &sum.dynamics[0]};
  for (int k = 0; k < 2; ++k) {
    const auto [x, y] = parts[k];
    Matrix w = x->w0;
    for (Index i = 0; i < w.size(); ++i) w(i) += 0.3 * normal(rng);
    EXPECT_MATRIX_NEAR(sums[k]->scatter(w), Matrix(x->scatter(w) + y->scatter(w)), 1e-12);
    EXPECT_MATRIX_NEAR(sums[k]->moment(w), Matrix(x->moment(w) + y->moment(w)), 1e-12);
    EXPECT_MATRIX_NEAR(sums[k]->xx, Matrix(x->xx + y->xx), 1e-12);
    EXPECT_EQ(sums[k]->count, x->count + y->count);
  }
  EXPECT_EQ(sum.num_sequences(), 2.0);
}

TEST(Learn, MStepMaximizesExpectedCompleteLogLikelihood) {
  const ParamProps all;
  const std::vector<MStepCase> cases = {
      {"all_trainable", all},
      {"diagonal", structures(kDiagonal, kDiagonal, kDiagonal)},
      {"scalar", structures(kScalar, kScalar, kScalar)},
      {"mixed_structures", structures(kDiagonal, kScalar, kFull)},
      {"frozen_emissions_cov", freeze(all, {"emissions.cov"})},
      {"frozen_dynamics_weights_emissions_bias", freeze(all, {"dynamics.weights", "emissions.bias"})},
      {"frozen_initial_mean_input_weights_emissions_weights_diagonal",
       freeze(structures(kFull, kDiagonal, kDiagonal),
              {"initial.mean", "dynamics.input_weights", "emissions.weights"})},
      {"frozen_covs", freeze(all, {"initial.cov", "dynamics.cov", "emissions.cov"})},
      {"frozen_dynamics_bias_emissions_input_weights_scalar_R",
       freeze(structures(kFull, kFull, kScalar), {"dynamics.bias", "emissions.input_weights"})},
      {"per_step_emissions", all, true},
      {"per_step_emissions_frozen_bias_diagonal", freeze(structures(kFull, kFull, kDiagonal), {"emissions.bias"}),
       true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    // A random model; statistics of random data under another random model.
    Params params = c.per_step ? per_step_params(8, 71) : random_params({2, 3, 2, 0, true, false, -1, -1, 71});
    impose_structures(params, c.props);
    Params other = c.per_step ? per_step_params(8, 72) : random_params({2, 3, 2, 0, true, false, -1, -1, 72});
    const auto seqs = make_sequences(
        other, {{8, 0.2, {}, 73}, {8, 0.0, {3}, 74}, {8, 0.0, {}, 75}, {5, 0.0, {}, 76}, {8, 0.0, {}, 77}});
    const SufficientStats stats = sufficient_stats(other, seqs, c.per_step, kThreads);

    const Params best = m_step(params, c.props, stats);
    expect_frozen_unchanged(params, best, c.props);
    expect_structures(best, c.props);
    const double q_best = expected_complete_loglik(best, stats);
    EXPECT_GE(q_best, expected_complete_loglik(params, stats));

    std::mt19937_64 rng(78);
    for (double scale : {1e-4, 1e-2, 0.3}) {
      for (int k = 0; k < 30; ++k) {
        const Params moved = perturb(best, c.props, rng, scale);
        const double q = expected_complete_loglik(moved, stats);
        EXPECT_LT(q, q_best) << "scale " << scale << ", draw " << k << ": Q " << q << " above Q(m_step) " << q_best;
      }
    }
    // Second route: the gradient of Q (log_prob_gradient is linear in the
    // statistics) vanishes at the maximizer.
    if (!c.per_step) {
      const Vector g = log_prob_gradient(best, c.props, stats);
      EXPECT_LE(g.lpNorm<Eigen::Infinity>(), 1e-8 * std::max(1.0, stats.dynamics[0].count)) << g.transpose();
    }
  }
}

// An affine constraint from a pattern: entry (i, j) of M is free value
// ids(i, j) >= 0 or fixed at 0.5 (ids < 0); vec stacks the columns.
Affine pattern(const Eigen::MatrixXi& ids, Index num_free) {
  Affine a{Vector::Constant(ids.size(), 0.5), Matrix::Zero(ids.size(), num_free)};
  for (Index j = 0; j < ids.cols(); ++j)
    for (Index i = 0; i < ids.rows(); ++i)
      if (ids(i, j) >= 0) {
        a.fixed(j * ids.rows() + i) = 0.0;
        a.design(j * ids.rows() + i, ids(i, j)) = 1.0;
      }
  return a;
}

// Random moves of the unconstrained values away from `best` (three scales)
// lower the expected complete-data log likelihood.
void expect_maximum_over_x(const Params& best, const ParamProps& props, const SufficientStats& stats, unsigned seed) {
  const double q_best = expected_complete_loglik(best, stats);
  const Vector x = to_unconstrained(best, props);
  std::mt19937_64 rng(seed);
  for (double scale : {1e-4, 1e-2, 0.3})
    for (int k = 0; k < 20; ++k) {
      const Params moved = from_unconstrained(x + random_matrix(rng, x.size(), 1, scale), best, props);
      EXPECT_LT(expected_complete_loglik(moved, stats), q_best) << "scale " << scale << ", draw " << k;
    }
}

// The constrained M-step (solve_constrained): with the covariances held, it
// maximizes the expected complete-data log likelihood over beta, and its
// output satisfies the constraints; the identity constraint is the
// unconstrained M-step.
TEST(Learn, ConstrainedMStepMaximizesOverBeta) {
  Params params = random_params({2, 3, 2, 0, true, false, -1, -1, 91});
  const Params other = random_params({2, 3, 2, 0, true, false, -1, -1, 92});
  const auto seqs = make_sequences(other, {{12, 0.2, {}, 93}, {9, 0.0, {4}, 94}});
  const SufficientStats stats = sufficient_stats(other, seqs, false, kThreads);
  ParamProps props = freeze(ParamProps(), {"initial.cov", "dynamics.cov", "emissions.cov"});
  Eigen::MatrixXi h(3, 2), f(2, 2), d(3, 1), b(2, 2);
  h << 0, -1, 1, 2, 1, 3;  // lower-triangular loadings, rows 1 and 2 tied in column 0
  f << 0, -1, -1, 0;       // F = diag(f, f) + 0.5 off the diagonal
  d << 0, 0, 1;
  b << 0, 1, -1, 2;
  props.emissions.weights_constraint = pattern(h, 4);
  props.dynamics.weights_constraint = pattern(f, 1);
  props.emissions.bias_constraint = pattern(d, 2);
  props.dynamics.input_weights_constraint = pattern(b, 3);
  props.initial.mean_constraint = Affine{Vector::Zero(2), Matrix::Constant(2, 1, 1.0)};
  params = project_constraints(params, props);

  const Params best = m_step(params, props, stats);
  expect_params_near(project_constraints(best, props), best, 1e-12);
  const Vector x = to_unconstrained(best, props);
  EXPECT_EQ(x.size(), 1 + (1 + 2 + 3) + (4 + 2 + 6));  // mean; F, b, B; H, d, D (b and D free)
  expect_maximum_over_x(best, props, stats, 95);
  const Vector g = log_prob_gradient(best, props, stats);
  EXPECT_LE(g.lpNorm<Eigen::Infinity>(), 1e-8 * log_prob_gradient(params, props, stats).lpNorm<Eigen::Infinity>());

  ParamProps identity;  // every entry free, through the constrained path
  identity.emissions.weights_constraint = Affine{Vector::Zero(6), Matrix::Identity(6, 6)};
  identity.initial.mean_constraint = Affine{Vector::Zero(2), Matrix::Identity(2, 2)};
  expect_params_near(m_step(params, identity, stats), m_step(params, ParamProps(), stats), 1e-12);
}

// The covariance M-step under a constraint (project_cov): with the weights
// held it maximizes the expected complete-data log likelihood over the free
// values, through both maps of the gradient fits (log standard deviations for
// Q = diag(a, a); the exponential map for R = blockdiag([[v, c], [c, v]], w)).
TEST(Learn, ConstrainedCovarianceMStepMaximizesOverBeta) {
  Params params = random_params({2, 3, 2, 0, true, false, -1, -1, 96});
  const Params other = random_params({2, 3, 2, 0, true, false, -1, -1, 97});
  const auto seqs = make_sequences(other, {{12, 0.2, {}, 98}, {9, 0.0, {4}, 99}});
  const SufficientStats stats = sufficient_stats(other, seqs, false, kThreads);
  ParamProps props = freeze(
      ParamProps(), {"initial.mean", "initial.cov", "dynamics.weights", "dynamics.bias", "dynamics.input_weights",
                     "emissions.weights", "emissions.bias", "emissions.input_weights"});
  Affine q{Vector::Zero(4), Matrix::Zero(4, 1)};
  q.design(0, 0) = q.design(3, 0) = 1.0;
  Affine r{Vector::Zero(9), Matrix::Zero(9, 3)};
  r.design(0, 0) = r.design(4, 0) = 1.0;  // v at (0, 0) and (1, 1)
  r.design(1, 1) = r.design(3, 1) = 1.0;  // c at (1, 0) and (0, 1)
  r.design(8, 2) = 1.0;                   // w at (2, 2)
  props.dynamics.cov_constraint = q;
  props.emissions.cov_constraint = r;
  params = project_constraints(params, props);

  const Params best = m_step(params, props, stats);
  expect_params_near(project_constraints(best, props), best, 1e-12);
  EXPECT_EQ(best.emissions.cov[0](2, 0), 0.0);
  const Vector x = to_unconstrained(best, props);
  ASSERT_EQ(x.size(), 4);
  expect_params_near(from_unconstrained(x, params, props), best, 1e-12);
  expect_maximum_over_x(best, props, stats, 100);
  const Vector g = log_prob_gradient(best, props, stats);
  EXPECT_LE(g.lpNorm<Eigen::Infinity>(), 1e-8 * log_prob_gradient(params, props, stats).lpNorm<Eigen::Infinity>());
}

// ---------------------------------------------------------------------------
// Errors name the offending argument.

template <class Fn>
void expect_invalid(Fn fn, const std::string& name) {
  try {
    fn();
    ADD_FAILURE() << "expected lgssm::invalid_argument naming " << name;
  } catch (const invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Learn, ErrorsNameTheArgument) {
  const Params params = random_params({2, 3, 1, 0, true, false, -1, -1, 81});
  const auto seqs = make_sequences(params, {{6, 0.0, {}, 82}});

  // Trainable per-step dynamics parameters cannot be learned.
  Params tv = random_params({2, 3, 1, 6, true, false, -1, -1, 83});
  const auto tv_seqs = make_sequences(tv, {{6, 0.0, {}, 84}});
  const ParamProps dyn_frozen =
      freeze({}, {"dynamics.weights", "dynamics.bias", "dynamics.input_weights", "dynamics.cov"});
  expect_invalid([&] { fit_em(tv, ParamProps{}, tv_seqs); }, "dynamics.weights");
  expect_invalid([&] { validate(tv, freeze({}, {"dynamics.weights", "dynamics.bias", "dynamics.input_weights"})); },
                 "dynamics.cov");
  EmOptions one;
  one.num_iters = 1;
  EXPECT_NO_THROW(fit_em(tv, dyn_frozen, tv_seqs, one));

  // A structure that the initial value does not have.
  expect_invalid([&] { fit_em(params, structures(kFull, kFull, kDiagonal), seqs); }, "emissions.cov");
  expect_invalid([&] { validate(params, structures(kScalar, kFull, kFull)); }, "initial.cov");

  // An unconstrained vector longer or shorter than the trainable parameters.
  const Index size = to_unconstrained(params, {}).size();
  expect_invalid([&] { from_unconstrained(Vector::Zero(size + 1), params, {}); }, "x");
  expect_invalid([&] { from_unconstrained(Vector::Zero(size - 1), params, {}); }, "x");
}

// Every option of every fit is checked at the entry point, before any work,
// with a message naming it and printing integers as integers.
TEST(Learn, FitOptionsAreValidated) {
  const Params params = random_params({2, 3, 1, 0, true, false, -1, -1, 85});
  const auto seqs = make_sequences(params, {{6, 0.0, {}, 86}});
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  auto expect_message = [](const std::function<void()>& fn, const std::string& message) {
    try {
      fn();
      ADD_FAILURE() << "expected lgssm::invalid_argument: " << message;
    } catch (const invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  };
  auto em = [&](const std::function<void(EmOptions&)>& change, const std::string& message) {
    EmOptions o;
    change(o);
    expect_message([&] { fit_em(params, {}, seqs, o); }, message);
  };
  em([](EmOptions& o) { o.num_iters = -1; }, "num_iters: expected an integer >= 0, got -1");
  em([&](EmOptions& o) { o.tolerance = -1.0; }, "tolerance: expected a finite value >= 0, got -1");
  em([&](EmOptions& o) { o.tolerance = nan; }, "tolerance: expected a finite value >= 0, got nan");
  em([&](EmOptions& o) { o.tolerance = inf; }, "tolerance: expected a finite value >= 0, got inf");
  em([](EmOptions& o) { o.num_threads = -2; }, "num_threads: expected an integer >= 0, got -2");

  auto sgd = [&](const std::function<void(SgdOptions&)>& change, const std::string& message) {
    SgdOptions o;
    change(o);
    expect_message([&] { fit_sgd(params, {}, seqs, o); }, message);
  };
  sgd([](SgdOptions& o) { o.batch_size = 0; }, "batch_size: expected an integer >= 1, got 0");
  sgd([](SgdOptions& o) { o.num_epochs = -3; }, "num_epochs: expected an integer >= 0, got -3");
  sgd([](SgdOptions& o) { o.num_threads = -1; }, "num_threads: expected an integer >= 0, got -1");
  sgd([](SgdOptions& o) { o.adam.learning_rate = 0.0; }, "learning_rate: expected a finite value > 0, got 0");
  sgd([](SgdOptions& o) { o.adam.learning_rate = -0.25; }, "learning_rate: expected a finite value > 0, got -0.25");
  sgd([&](SgdOptions& o) { o.adam.learning_rate = inf; }, "learning_rate: expected a finite value > 0, got inf");
  sgd([](SgdOptions& o) { o.adam.b1 = 1.0; }, "b1: expected a value in [0, 1), got 1");
  sgd([&](SgdOptions& o) { o.adam.b2 = nan; }, "b2: expected a value in [0, 1), got nan");
  sgd([](SgdOptions& o) { o.adam.eps = 0.0; }, "eps: expected a finite value > 0, got 0");

  auto lbfgs = [&](const std::function<void(LbfgsOptions&)>& change, const std::string& message) {
    LbfgsOptions o;
    change(o);
    expect_message([&] { fit_lbfgs(params, {}, seqs, o); }, message);
  };
  lbfgs([](LbfgsOptions& o) { o.max_iters = -1; }, "max_iters: expected an integer >= 0, got -1");
  lbfgs([](LbfgsOptions& o) { o.memory = 0; }, "memory: expected an integer >= 1, got 0");
  lbfgs([](LbfgsOptions& o) { o.gradient_tolerance = -1.0; },
        "gradient_tolerance: expected a finite value >= 0, got -1");
  lbfgs([&](LbfgsOptions& o) { o.function_tolerance = nan; },
        "function_tolerance: expected a finite value >= 0, got nan");
  lbfgs([](LbfgsOptions& o) { o.num_threads = -1; }, "num_threads: expected an integer >= 0, got -1");

  // The boundary values are accepted.
  EmOptions em0;
  em0.num_iters = 0;
  EXPECT_TRUE(fit_em(params, {}, seqs, em0).history.empty());
  LbfgsOptions lb0;
  lb0.max_iters = 0;
  lb0.gradient_tolerance = 0.0;
  lb0.function_tolerance = 0.0;
  EXPECT_EQ(fit_lbfgs(params, {}, seqs, lb0).summary.termination, Termination::kMaxIterations);
}

// When the loss becomes non-finite, fit_sgd returns the parameters with the
// lowest loss, not the last ones with a finite loss. A model whose only free
// parameter is s = log sqrt(R) for y_t ~ N(0, R) (H = 0) has the per-entry loss
// f(s) = log(2 pi) / 2 + s + m2 exp(-2 s) / 2, m2 = mean y^2 = e (minimum at
// s = 1/2). Adam with b2 = 0 divides the momentum of the early, large
// gradients by the current one, so from s = -2.5 with learning rate 2 the
// iterates are s = -2.5, -0.5, 60.2, 304.3 (losses 200.1, 4.11, 61.1, 305.2),
// then s = 477, where R = exp(2 s) overflows: far from any threshold, so the
// same on every machine.
TEST(Learn, SgdReturnsTheBestParametersWhenTheLossBecomesNonFinite) {
  Params params = random_params({1, 1, 0, 0, false, false, -1, -1, 87});
  params.emissions.weights[0].setZero();
  params.emissions.cov[0](0, 0) = std::exp(-5.0);
  const double a = std::sqrt(std::exp(1.0));
  Sequence seq;
  seq.emissions.resize(2, 1);
  seq.emissions << a, -a;
  const std::vector<Sequence> seqs{seq};
  const ParamProps props =
      freeze({}, {"initial.mean", "initial.cov", "dynamics.weights", "dynamics.bias", "dynamics.input_weights",
                  "dynamics.cov", "emissions.weights", "emissions.bias", "emissions.input_weights"});
  SgdOptions sgd;
  sgd.num_epochs = 20;
  sgd.num_threads = kThreads;
  sgd.adam = {2.0, 0.9, 0.0, 1e-8};
  const FitResult r = fit_sgd(params, props, seqs, sgd);
  ASSERT_EQ(r.summary.termination, Termination::kNumericalFailure) << r.summary.message;
  ASSERT_EQ(r.history.size(), 4u);
  auto loss = [&](double s) { return 0.5 * std::log(2 * kPi) + s + 0.5 * std::exp(1.0 - 2 * s); };
  const double expected_s[] = {-2.5, -0.5, 60.225, 304.297};
  for (size_t e = 0; e < 4; ++e) EXPECT_NEAR(r.history[e], loss(expected_s[e]), 1e-3) << "epoch " << e;
  EXPECT_NE(r.summary.message.find("non-finite in epoch 4"), std::string::npos) << r.summary.message;
  EXPECT_NE(r.summary.message.find("from epoch 1"), std::string::npos) << r.summary.message;
  // The parameters entering epoch 1, whose loss is history[1].
  EXPECT_NEAR(std::log(r.params.emissions.cov[0](0, 0)) / 2, -0.5, 1e-9);  // eps moves the step by 5e-11
  EXPECT_MATRIX_NEAR(-total_log_prob(r.params, seqs) / 2, r.history[1], 1e-12);
  expect_frozen_unchanged(params, r.params, props);
}

// EM on data with two emission components equal to within 1e-6 (a residual
// variance 1e-12 times the data's): emissions.cov is nearly singular after
// the first M-step, which the summary's warnings say once, naming it and the
// remedies. The same model on independent components gives no warning, nor
// does a start that is near singular already (the caller's choice).
TEST(Learn, EmWarnsOnceWhenACovarianceNearsSingularity) {
  Params params = random_params({1, 3, 0, 0, true, false, -1, -1, 88});
  Sequence seq = random_sequence(params, {200, 0.0, {}, 89});
  EmOptions em;
  em.num_iters = 10;
  em.num_threads = kThreads;
  const FitResult plain = fit_em(params, {}, {seq}, em);
  EXPECT_TRUE(plain.summary.warnings.empty()) << plain.summary.warnings.front();
  Params near_singular_start = params;
  near_singular_start.emissions.cov[0] = Matrix(Eigen::Vector3d(1.0, 1.0, 1e-12).asDiagonal());
  const FitResult chosen = fit_em(near_singular_start, {}, {seq}, em);
  EXPECT_TRUE(chosen.summary.warnings.empty()) << chosen.summary.warnings.front();

  std::mt19937_64 rng(90);
  std::normal_distribution<double> noise(0.0, 1e-6);
  for (Index t = 0; t < seq.emissions.rows(); ++t) seq.emissions(t, 1) = seq.emissions(t, 0) + noise(rng);
  const FitResult r = fit_em(params, {}, {seq}, em);
  ASSERT_FALSE(r.history.empty());
  for (size_t k = 1; k < r.history.size(); ++k)
    EXPECT_GE(r.history[k], r.history[k - 1] - kEmMaxFall * std::abs(r.history[k - 1])) << "iteration " << k;
  ASSERT_EQ(r.summary.warnings.size(), 1u);
  const std::string& w = r.summary.warnings[0];
  for (const char* part :
       {"emissions.cov is nearly singular at iteration 1", "prior", "diagonal or scalar", "fit_lbfgs"})
    EXPECT_NE(w.find(part), std::string::npos) << part << " not in: " << w;
}

// ---------------------------------------------------------------------------
// Gradient fits keep structure and frozen parameters too; tolerance stops EM.

TEST(Learn, GradientFitsKeepStructuresAndFrozenParameters) {
  const ParamProps props = freeze(structures(kDiagonal, kScalar, kDiagonal), {"dynamics.weights", "emissions.bias"});
  Params params = random_params({2, 3, 1, 0, true, true, -1, -1, 91});
  impose_structures(params, props);
  const auto seqs = make_sequences(params, {{10, 0.1, {}, 92}, {7, 0.0, {}, 93}});
  const double lp0 = total_log_prob(params, seqs);

  SgdOptions sgd;
  sgd.num_epochs = 30;
  sgd.num_threads = kThreads;
  sgd.adam.learning_rate = 1e-2;
  const FitResult s = fit_sgd(params, props, seqs, sgd);
  ASSERT_EQ(s.summary.termination, Termination::kMaxIterations) << s.summary.message;
  expect_frozen_unchanged(params, s.params, props);
  expect_structures(s.params, props);
  EXPECT_GT(total_log_prob(s.params, seqs), lp0);

  LbfgsOptions lb;
  lb.max_iters = 30;
  lb.num_threads = kThreads;
  const FitResult l = fit_lbfgs(params, props, seqs, lb);
  EXPECT_NE(l.summary.termination, Termination::kNumericalFailure) << l.summary.message;
  expect_frozen_unchanged(params, l.params, props);
  expect_structures(l.params, props);
  // L-BFGS history is log p(y) at its iterates, non-decreasing (Wolfe steps).
  ASSERT_FALSE(l.history.empty());
  EXPECT_MATRIX_NEAR(l.history.front(), lp0, 1e-10);
  EXPECT_MATRIX_NEAR(l.history.back(), total_log_prob(l.params, seqs), 1e-10);
  for (size_t k = 1; k < l.history.size(); ++k) EXPECT_GE(l.history[k], l.history[k - 1]) << "iteration " << k;
}

// The pieces fit_sgd is made of (and lgssm.distributed reuses): minibatches
// that partition the sequences, the minibatch loss against finite differences
// of an independently computed objective, and Adam's update in closed form.
TEST(Learn, SgdPieces) {
  using Batches = std::vector<std::vector<size_t>>;
  EXPECT_EQ(sgd_minibatches(10, 3, false, 7, 4), (Batches{{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}}));
  EXPECT_EQ(sgd_minibatches(3, 5, true, 7, 4), (Batches{{0, 1, 2}}));  // one batch: nothing to shuffle
  std::vector<Batches> epochs;
  for (int epoch = 0; epoch < 3; ++epoch) {
    const Batches b = sgd_minibatches(10, 3, true, 7, epoch);
    ASSERT_EQ(b.size(), 4u);
    EXPECT_EQ(b.back().size(), 1u);
    std::vector<size_t> all;
    for (const auto& batch : b) all.insert(all.end(), batch.begin(), batch.end());
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i) << "epoch " << epoch;
    EXPECT_EQ(b, sgd_minibatches(10, 3, true, 7, epoch));  // a function of (seed, epoch)
    epochs.push_back(b);
  }
  EXPECT_NE(epochs[0], epochs[1]);
  EXPECT_NE(epochs[0], sgd_minibatches(10, 3, true, 8, 0));
  expect_invalid([] { sgd_minibatches(10, 0, false, 0, 0); }, "batch_size");

  // minibatch_loss: f = -(w log p(y_batch) + log p(params)) / scale, and its gradient.
  const Params params = random_params({2, 2, 1, 0, true, true, -1, -1, 97});
  const auto seqs = make_sequences(params, {{8, 0.1, {}, 98}, {5, 0.0, {}, 99}});
  const ConjugatePrior prior = ConjugatePrior::defaults(2, 2, 1);
  const ParamProps props = freeze({}, {"dynamics.bias"});
  const double w = 3.0, scale = 26.0;
  auto objective = [&](const Vector& x) {
    const Params p = from_unconstrained(x, params, props);
    return -(w * total_log_prob(p, seqs) + log_prior(p, prior)) / scale;
  };
  const Vector x = to_unconstrained(params, props);
  Vector grad;
  const double f =
      minibatch_loss(params, props, sufficient_stats(params, seqs, false, kThreads), w, scale, &prior, grad);
  EXPECT_MATRIX_NEAR(f, objective(x), 1e-12);
  ASSERT_EQ(grad.size(), x.size());
  const Vector fd = central_differences(objective, x);
  for (Index i = 0; i < x.size(); ++i)
    EXPECT_LE(std::abs(grad(i) - fd(i)), 1e-6 * std::max(1.0, std::abs(fd(i)))) << "entry " << i;

  // Two Adam steps: m_1 = (1-b1) g1, v_1 = (1-b2) g1^2, then the bias-corrected ratio.
  const AdamOptions adam{0.1, 0.8, 0.9, 1e-3};
  Vector y(2), g1(2), g2(2);
  y << 1.0, -2.0;
  g1 << 0.5, -4.0;
  g2 << -1.0, 2.0;
  AdamState state(2);
  Vector z = y;
  adam_update(adam, g1, z, state);
  adam_update(adam, g2, z, state);
  EXPECT_EQ(state.step, 2);
  for (Index i = 0; i < 2; ++i) {
    const double step1 = 0.1 * g1(i) / (std::abs(g1(i)) + 1e-3);
    const double m2 = 0.8 * 0.2 * g1(i) + 0.2 * g2(i), v2 = 0.9 * 0.1 * g1(i) * g1(i) + 0.1 * g2(i) * g2(i);
    const double step2 = 0.1 * (m2 / (1 - 0.64)) / (std::sqrt(v2 / (1 - 0.81)) + 1e-3);
    EXPECT_MATRIX_NEAR(z(i), y(i) - step1 - step2, 1e-14);
  }
  expect_invalid([&] { adam_update(adam, Vector::Zero(3), z, state); }, "grad");
  expect_invalid([] { AdamOptions{0.1, 1.0, 0.9, 1e-8}.validate(); }, "b1");
}

TEST(Learn, EmToleranceStopsEarly) {
  // Data drawn from a model, fitted from another one with the emission weights
  // frozen at the truth (which fixes the latent basis, so EM converges fast
  // instead of creeping along a ridge of similar models).
  const Params truth = random_params({2, 3, 0, 0, true, false, -1, -1, 95});
  std::vector<Sequence> seqs;
  for (std::uint64_t seed : {96, 97, 98}) seqs.push_back({sample(truth, seed, 40).emissions, RowMatrix()});
  Params params = random_params({2, 3, 0, 0, true, false, -1, -1, 99});
  params.emissions.weights = truth.emissions.weights;
  const ParamProps props = freeze({}, {"emissions.weights"});
  EmOptions options;
  options.num_iters = 500;
  options.num_threads = kThreads;
  options.tolerance = 1e-6;
  const FitResult r = fit_em(params, props, seqs, options);
  EXPECT_EQ(r.summary.termination, Termination::kConverged) << r.summary.message;
  EXPECT_LT(r.summary.iterations, 500);
  ASSERT_GE(r.history.size(), 2u);
  const double last = r.history.back(), prev = r.history[r.history.size() - 2];
  EXPECT_LE(std::abs(last - prev), 1e-6 * std::abs(last));
}

}  // namespace
}  // namespace lgssm::test
