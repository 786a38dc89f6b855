// Innovations, the disturbance smoother and the smoothed autocovariances
// against the dense joint Gaussian (dense_reference.hpp), over time-varying
// models with inputs, missing data, correlated emission noise and singular
// dynamics noise.
#include "lgssm/diagnostics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dense_reference.hpp"
#include "lgssm/error.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

struct Variant {
  ModelSpec model;
  SequenceSpec seq;
};

std::vector<Variant> variants() {
  std::vector<Variant> v;
  v.push_back({ModelSpec{}, SequenceSpec{6, 0.0, {}, 1}});
  ModelSpec tv;
  tv.input_dim = 2;
  tv.num_param_steps = 7;
  tv.biases = true;
  tv.dynamics_cov_rank = 1;
  tv.seed = 3;
  v.push_back({tv, SequenceSpec{7, 0.3, {2}, 4}});
  ModelSpec wide;
  wide.state_dim = 2;
  wide.emission_dim = 4;
  wide.biases = true;
  wide.seed = 5;
  v.push_back({wide, SequenceSpec{6, 0.35, {0, 5}, 6}});
  return v;
}

// E and Cov given y of A x + c for the dense joint's posterior.
void linear_moments(const Gaussian& post, const Matrix& a, const Vector& c, Vector& mean, Matrix& cov) {
  mean = a * post.mean + c;
  cov = a * post.cov * a.transpose();
}

TEST(Diagnostics, InnovationsMatchTheDenseJoint) {
  for (const auto& var : variants()) {
    const Params params = random_params(var.model);
    const Sequence seq = random_sequence(params, var.seq);
    const InnovationsResult r = innovations(params, seq);
    const DenseJoint joint = dense_joint(params, seq.num_timesteps(), seq.inputs);
    EXPECT_NEAR(r.marginal_loglik, dense_reference(params, seq).marginal_loglik, 1e-9);
    EXPECT_NEAR(r.step_logliks.sum(), r.marginal_loglik, 1e-12 * std::abs(r.marginal_loglik));
    for (Index t = 0; t < seq.num_timesteps(); ++t) {
      const Gaussian before = condition(joint, observed_entries(joint, seq.emissions, 0, t - 1));
      const Observed now = observed_entries(joint, seq.emissions, t, t);
      const Index k = static_cast<Index>(now.index.size());
      Vector v(k), got(k), white(k);
      Matrix f(k, k), got_f(k, k);
      for (Index a = 0; a < k; ++a) {
        const Index i = now.index[a] - joint.y(t);
        v(a) = now.value(a) - before.mean(now.index[a]);
        got(a) = r.innovations(t, i);
        white(a) = r.standardized_innovations(t, i);
        EXPECT_NEAR(r.scaled_innovations(t, i), r.innovations(t, i) / std::sqrt(r.innovation_covariances[t](i, i)),
                    1e-12);
        for (Index b = 0; b < k; ++b) {
          f(a, b) = before.cov(now.index[a], now.index[b]);
          got_f(a, b) = r.innovation_covariances[t](i, now.index[b] - joint.y(t));
        }
      }
      EXPECT_MATRIX_NEAR(got, v, 1e-9);
      EXPECT_MATRIX_NEAR(got_f, f, 1e-9);
      if (k > 0) {
        const Matrix l = f.llt().matrixL();
        EXPECT_MATRIX_NEAR(Vector(l * white), v, 1e-9);
      }
      if (k < params.emission_dim()) {
        EXPECT_TRUE(r.innovations.row(t).array().isNaN().any());
      }
    }
  }
}

TEST(Diagnostics, DisturbancesAndAutocovariancesMatchTheDenseJoint) {
  for (const auto& var : variants()) {
    const Params params = random_params(var.model);
    const Sequence seq = random_sequence(params, var.seq);
    const Index steps = seq.num_timesteps(), n = params.state_dim(), p = params.emission_dim();
    const DenseJoint joint = dense_joint(params, steps, seq.inputs);
    const Gaussian post = condition(joint, observed_entries(joint, seq.emissions, 0, steps - 1));
    const Index size = joint.mean.size();
    const DisturbancesResult d = disturbances(params, seq);
    const auto& e = params.emissions;
    const auto& dy = params.dynamics;
    Vector mean;
    Matrix cov;
    for (Index t = 0; t < steps; ++t) {
      // eps_t = y_t - H z_t - D u_t - d_t (y_t missing components included: they are in the joint).
      Matrix a = Matrix::Zero(p, size);
      a.block(0, joint.y(t), p, p).setIdentity();
      a.block(0, joint.z(t), p, n) = -e.weights.at(t);
      Vector c = -e.bias.vec(t);
      if (seq.inputs.size() > 0) c -= e.input_weights.at(t) * seq.inputs.row(t).transpose();
      linear_moments(post, a, c, mean, cov);
      EXPECT_MATRIX_NEAR(Vector(d.emission_disturbances.row(t).transpose()), mean, 1e-8);
      EXPECT_MATRIX_NEAR(Matrix(d.emission_disturbance_covariances[t]), cov, 1e-8);
      const Matrix r = e.cov.at(t);
      for (Index i = 0; i < p; ++i) {
        const double var_hat = r(i, i) - cov(i, i);  // Var(E[eps | y]) = Var(eps) - E[Cov[eps | y]]
        if (var_hat > 1e-10) {
          EXPECT_NEAR(d.emission_auxiliary_residuals(t, i), mean(i) / std::sqrt(var_hat), 1e-6);
        }
      }
      if (t + 1 == steps) continue;
      // eta_t = z_{t+1} - F_t z_t - B_t u_{t+1} - b_t.
      Matrix b = Matrix::Zero(n, size);
      b.block(0, joint.z(t + 1), n, n).setIdentity();
      b.block(0, joint.z(t), n, n) = -dy.weights.at(t);
      Vector c2 = -dy.bias.vec(t);
      if (seq.inputs.size() > 0) c2 -= dy.input_weights.at(t) * seq.inputs.row(t + 1).transpose();
      linear_moments(post, b, c2, mean, cov);
      EXPECT_MATRIX_NEAR(Vector(d.dynamics_disturbances.row(t).transpose()), mean, 1e-8);
      EXPECT_MATRIX_NEAR(Matrix(d.dynamics_disturbance_covariances[t]), cov, 1e-8);
    }
    for (Index lag : {0, 1, 2, 4}) {
      const MatrixSeries ac = smoothed_autocovariances(params, seq, lag);
      ASSERT_EQ(ac.size(), steps - lag);
      for (Index t = 0; t + lag < steps; ++t)
        EXPECT_MATRIX_NEAR(Matrix(ac[t]), Matrix(post.cov.block(joint.z(t + lag), joint.z(t), n, n)), 1e-8);
    }
  }
}

TEST(Diagnostics, BadArguments) {
  const Params params = random_params(ModelSpec{});
  const Sequence seq = random_sequence(params, SequenceSpec{});
  EXPECT_THROW(smoothed_autocovariances(params, seq, 5), invalid_argument);
  EXPECT_THROW(smoothed_autocovariances(params, seq, -1), invalid_argument);
}

TEST(Diagnostics, NumFreeParameters) {
  ModelSpec spec;
  spec.input_dim = 1;
  const Params params = random_params(spec);  // n = 3, p = 2, m = 1
  ParamProps props;
  EXPECT_EQ(num_free_parameters(params, props), (3 + 6) + (9 + 3 + 3 + 6) + (6 + 2 + 2 + 3));
  props.initial.mean = props.initial.cov = false;
  props.dynamics.weights = false;
  Params diag = params;
  diag.emissions.cov = MatrixSeries::constant(RowMatrix::Identity(2, 2));
  props.emissions.cov_structure = CovStructure::kScalar;
  EXPECT_EQ(num_free_parameters(diag, props), (3 + 3 + 6) + (6 + 2 + 2 + 1));
}

}  // namespace
}  // namespace lgssm::test
