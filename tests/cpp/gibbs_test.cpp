// The conjugate draws of the Gibbs sampler against the closed-form MNIW and
// inverse-gamma posteriors (fixed seeds, z-tests on means), and the sampler's
// contract: frozen parameters fixed, determinism over thread counts, errors.
#include "lgssm/gibbs.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "lgssm/error.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

constexpr double kNumSigmas = 4.5;
constexpr int kDraws = 4000;

// A model with state_dim 2, emission_dim 3, input_dim 1, its known states and
// emissions drawn from it, and a non-default prior.
struct Fixture {
  Params params;
  Sequence seq;
  RowMatrix states;
  ConjugatePrior prior;
};

Fixture make_fixture(Index steps) {
  ModelSpec spec;
  spec.state_dim = 2;
  spec.emission_dim = 3;
  spec.input_dim = 1;
  spec.biases = true;
  spec.seed = 7;
  Fixture f{random_params(spec), {}, {}, ConjugatePrior::defaults(2, 3, 1)};
  std::mt19937_64 rng(11);
  f.seq.inputs = random_matrix(rng, steps, 1);
  f.states = random_matrix(rng, steps, 2);
  f.seq.emissions = random_matrix(rng, steps, 3);
  f.prior.emissions.loc = random_matrix(rng, 3, 4, 0.5);
  f.prior.emissions.col_precision = random_cov(rng, 4);
  f.prior.emissions.scale = random_cov(rng, 3);
  f.prior.emissions.df = 5.5;
  return f;
}

// The emission regression's MNIW posterior from raw sums (Gelman et al. 2013,
// Sec. 14.8): K_n = K + X^T X, M_n = (M K + Y^T X) K_n^{-1},
// Psi_n = Psi + Y^T Y + M K M^T - M_n K_n M_n^T, nu_n = nu + N.
struct Mniw {
  Matrix mean, kn, psi;
  double nu;
};

Mniw emission_posterior(const Fixture& f) {
  const Index steps = f.seq.num_timesteps();
  Matrix x(steps, 4);
  x << f.states, f.seq.inputs, Matrix::Ones(steps, 1);
  const Matrix y = f.seq.emissions;
  const MniwPrior& p = f.prior.emissions;
  Mniw post;
  post.kn = p.col_precision + x.transpose() * x;
  post.mean = Eigen::LLT<Matrix>(post.kn).solve((p.loc * p.col_precision + y.transpose() * x).transpose()).transpose();
  post.psi = p.scale + y.transpose() * y + p.loc * p.col_precision * p.loc.transpose() -
             post.mean * post.kn * post.mean.transpose();
  post.nu = p.df + static_cast<double>(steps);
  return post;
}

ParamProps emissions_only(CovStructure s) {
  ParamProps props;
  props.initial.mean = props.initial.cov = false;
  props.dynamics.weights = props.dynamics.bias = props.dynamics.input_weights = props.dynamics.cov = false;
  props.emissions.cov_structure = s;
  return props;
}

// z of the empirical mean of `values` against `mean` with the exact `sd` of one draw.
double z_score(const std::vector<double>& values, double mean, double sd) {
  double sum = 0.0;
  for (double v : values) sum += v;
  return std::abs(sum / static_cast<double>(values.size()) - mean) / (sd / std::sqrt(values.size()));
}

TEST(ConjugateSample, MniwMatchesClosedForm) {
  const Fixture f = make_fixture(30);
  const Mniw post = emission_posterior(f);
  const SufficientStats stats = complete_data_stats(f.params, f.seq, f.states);
  const ParamProps props = emissions_only(CovStructure::kFull);
  const Matrix kinv = Eigen::LLT<Matrix>(post.kn).solve(Matrix::Identity(4, 4));
  const double d = 3.0, denom = post.nu - d - 1.0;
  const Matrix sigma_mean = post.psi / denom;
  std::vector<std::vector<double>> w(12), s(9);
  for (int k = 0; k < kDraws; ++k) {
    const Params p = conjugate_sample(f.params, props, stats, f.prior, 1000 + k);
    Matrix wk(3, 4);
    wk << p.emissions.weights[0], p.emissions.input_weights[0], p.emissions.bias.vec(0);
    for (Index i = 0; i < 12; ++i) w[i].push_back(wk(i % 3, i / 3));
    for (Index i = 0; i < 9; ++i) s[i].push_back(p.emissions.cov[0](i % 3, i / 3));
    ASSERT_EQ(p.dynamics.weights[0], f.params.dynamics.weights[0]);
    ASSERT_EQ(p.initial.cov, f.params.initial.cov);
  }
  for (Index i = 0; i < 12; ++i) {
    const Index r = i % 3, c = i / 3;
    // Var W_rc = (K_n^{-1})_cc E[Sigma_rr] (the matrix-t marginal).
    EXPECT_LT(z_score(w[i], post.mean(r, c), std::sqrt(kinv(c, c) * sigma_mean(r, r))), kNumSigmas) << "W " << i;
  }
  for (Index i = 0; i < 9; ++i) {
    const Index r = i % 3, c = i / 3;
    // IW variance (Press 1982): ((nu-d+1) psi_rc^2 + (nu-d-1) psi_rr psi_cc) / ((nu-d)(nu-d-1)^2(nu-d-3)).
    const double var = ((post.nu - d + 1.0) * post.psi(r, c) * post.psi(r, c) +
                        (post.nu - d - 1.0) * post.psi(r, r) * post.psi(c, c)) /
                       ((post.nu - d) * denom * denom * (post.nu - d - 3.0));
    EXPECT_LT(z_score(s[i], sigma_mean(r, c), std::sqrt(var)), kNumSigmas) << "Sigma " << i;
  }
}

// Diagonal: sigma_r^2 ~ IG((nu_n + d - 1) / 2, Psi_n,rr / 2) (gibbs.hpp), mean
// b / (a - 1), variance b^2 / ((a - 1)^2 (a - 2)); scalar: one IG with
// a = d (nu_n + d + 1) / 2 - 1, b = tr(Psi_n) / 2.
TEST(ConjugateSample, DiagonalAndScalarMatchInverseGamma) {
  const Fixture f = make_fixture(30);
  const Mniw post = emission_posterior(f);
  const SufficientStats stats = complete_data_stats(f.params, f.seq, f.states);
  const double d = 3.0;
  for (CovStructure structure : {CovStructure::kDiagonal, CovStructure::kScalar}) {
    Params start = f.params;
    start.emissions.cov[0] = project(start.emissions.cov[0], structure);
    std::vector<std::vector<double>> v(3);
    for (int k = 0; k < kDraws; ++k) {
      const Params p = conjugate_sample(start, emissions_only(structure), stats, f.prior, 5000 + k);
      const Matrix& cov = p.emissions.cov[0];
      ASSERT_EQ((cov - Matrix(cov.diagonal().asDiagonal())).cwiseAbs().maxCoeff(), 0.0);
      if (structure == CovStructure::kScalar) {
        ASSERT_EQ(cov(0, 0), cov(2, 2));
      }
      for (Index i = 0; i < 3; ++i) v[i].push_back(cov(i, i));
    }
    for (Index i = 0; i < 3; ++i) {
      const double a =
          structure == CovStructure::kDiagonal ? 0.5 * (post.nu + d - 1.0) : 0.5 * d * (post.nu + d + 1.0) - 1.0;
      const double b = structure == CovStructure::kDiagonal ? 0.5 * post.psi(i, i) : 0.5 * post.psi.trace();
      const double mean = b / (a - 1.0), sd = mean / std::sqrt(a - 2.0);
      EXPECT_LT(z_score(v[i], mean, sd), kNumSigmas) << "structure " << static_cast<int>(structure) << " i " << i;
    }
  }
}

// Frozen weights: Sigma | W ~ IW(nu + k + N, Psi + (W - M) K (W - M)^T + residual scatter).
TEST(ConjugateSample, CovGivenFrozenWeightsIsInverseWishart) {
  const Fixture f = make_fixture(30);
  const SufficientStats stats = complete_data_stats(f.params, f.seq, f.states);
  ParamProps props = emissions_only(CovStructure::kFull);
  props.emissions.weights = props.emissions.bias = props.emissions.input_weights = false;
  const Index steps = f.seq.num_timesteps();
  Matrix x(steps, 4), w(3, 4);
  x << f.states, f.seq.inputs, Matrix::Ones(steps, 1);
  w << f.params.emissions.weights[0], f.params.emissions.input_weights[0], f.params.emissions.bias.vec(0);
  const MniwPrior& pr = f.prior.emissions;
  const Matrix resid = f.seq.emissions - x * w.transpose();
  const Matrix psi = pr.scale + (w - pr.loc) * pr.col_precision * (w - pr.loc).transpose() + resid.transpose() * resid;
  const double nu = pr.df + 4.0 + static_cast<double>(steps), d = 3.0;
  std::vector<std::vector<double>> v(3);
  for (int k = 0; k < kDraws; ++k) {
    const Params p = conjugate_sample(f.params, props, stats, f.prior, 9000 + k);
    ASSERT_EQ(p.emissions.weights[0], f.params.emissions.weights[0]);
    ASSERT_EQ(p.emissions.bias[0], f.params.emissions.bias[0]);
    for (Index i = 0; i < 3; ++i) v[i].push_back(p.emissions.cov[0](i, i));
  }
  for (Index i = 0; i < 3; ++i) {
    const double denom = nu - d - 1.0;
    const double var = 2.0 * psi(i, i) * psi(i, i) / (denom * denom * (nu - d - 3.0));
    EXPECT_LT(z_score(v[i], psi(i, i) / denom, std::sqrt(var)), kNumSigmas) << i;
  }
}

TEST(FitBlockedGibbs, FrozenStayFixedAndThreadCountDoesNotMatter) {
  ModelSpec spec;
  spec.state_dim = 2;
  spec.emission_dim = 2;
  spec.seed = 3;
  const Params params = random_params(spec);
  std::vector<Sequence> seqs;
  for (Index i = 0; i < 3; ++i)
    seqs.push_back(random_sequence(params, {8 + 3 * i, 0.2, {2}, static_cast<std::uint64_t>(40 + i)}));
  ParamProps props;
  props.dynamics.weights = false;
  props.emissions.cov = false;
  props.initial.mean = false;
  const ConjugatePrior prior = ConjugatePrior::defaults(2, 2, 0);
  GibbsOptions one, two;
  one.num_threads = 1;
  two.num_threads = 2;
  const GibbsResult a = fit_blocked_gibbs(params, props, seqs, prior, 20, 5, one);
  const GibbsResult b = fit_blocked_gibbs(params, props, seqs, prior, 20, 5, two);
  ASSERT_EQ(a.samples.size(), 20u);
  ASSERT_EQ(a.marginal_loglik.size(), 19u);
  EXPECT_EQ(a.samples[0].dynamics.cov[0], params.dynamics.cov[0]);  // the first sample is the start
  for (size_t i = 0; i < a.samples.size(); ++i) {
    EXPECT_EQ(a.samples[i].dynamics.weights[0], params.dynamics.weights[0]);
    EXPECT_EQ(a.samples[i].emissions.cov[0], params.emissions.cov[0]);
    EXPECT_EQ(a.samples[i].initial.mean, params.initial.mean);
    EXPECT_EQ(a.samples[i].dynamics.cov[0], b.samples[i].dynamics.cov[0]);
    EXPECT_EQ(a.samples[i].emissions.weights[0], b.samples[i].emissions.weights[0]);
  }
  EXPECT_NE(a.samples[1].dynamics.cov[0], params.dynamics.cov[0]);
}

TEST(FitBlockedGibbs, CallbackStops) {
  ModelSpec spec;
  spec.state_dim = 1;
  spec.emission_dim = 1;
  const Params params = random_params(spec);
  GibbsOptions o;
  o.callback = [](int i, double) { return i < 2; };
  const GibbsResult r = fit_blocked_gibbs(params, ParamProps(), {random_sequence(params, {10, 0.0, {}, 1})},
                                          ConjugatePrior::defaults(1, 1, 0), 50, 1, o);
  EXPECT_EQ(r.samples.size(), 4u);
  EXPECT_EQ(r.summary.termination, Termination::kStopped);
}

TEST(FitBlockedGibbs, BadArgumentsAreNamed) {
  ModelSpec spec;
  spec.state_dim = 1;
  spec.emission_dim = 1;
  const Params params = random_params(spec);
  const std::vector<Sequence> seqs{random_sequence(params, {10, 0.0, {}, 1})};
  const ConjugatePrior prior = ConjugatePrior::defaults(1, 1, 0);
  auto message = [&](auto call) {
    try {
      call();
    } catch (const invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([&] { fit_blocked_gibbs(params, ParamProps(), seqs, prior, 0, 1); }).find("sample_size"),
            std::string::npos);
  ConjugatePrior bad = prior;
  bad.dynamics.df = 0.0;
  EXPECT_NE(message([&] { fit_blocked_gibbs(params, ParamProps(), seqs, bad, 5, 1); }).find("prior.dynamics.df"),
            std::string::npos);
  GibbsOptions o;
  o.num_threads = -1;
  EXPECT_NE(message([&] { fit_blocked_gibbs(params, ParamProps(), seqs, prior, 5, 1, o); }).find("num_threads"),
            std::string::npos);
  EXPECT_NE(message([&] { complete_data_stats(params, seqs[0], RowMatrix::Zero(3, 1)); }).find("states"),
            std::string::npos);
}

}  // namespace
}  // namespace lgssm::test
