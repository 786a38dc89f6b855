// The score and information recursions (information.hpp) against independent
// references over a battery of variants (inputs, biases, full, diagonal and
// scalar covariances, missing components and steps, several sequences, frozen
// and constrained parameters, a constrained covariance, frozen per-step emissions):
//   - the score equals Fisher's identity (log_prob_natural_gradient) mapped to theta;
//   - the Hessian equals Richardson-extrapolated central differences of the score;
//   - the OPG equals the sum of outer products of per-step scores, each the
//     difference of the scores of two prefixes of the data;
//   - Harvey's matrix equals its formula with v_t, F_t differentiated numerically
//     (innovations of diagnostics.hpp), as statsmodels computes it;
// and information_covariance against explicit inverses, and its errors.
#include "lgssm/information.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "lgssm/diagnostics.hpp"
#include "lgssm/error.hpp"
#include "lgssm/learn.hpp"
#include "lgssm/stats.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

struct Variant {
  std::string name;
  Params params;
  ParamProps props;
  std::vector<Sequence> seqs;
  bool per_step = false;  // per-step (frozen) parameters: Fisher's identity of learn.hpp does not apply
};

std::vector<Sequence> sequences(const Params& params, std::vector<Index> lengths, double missing,
                                std::vector<Index> missing_steps = {}) {
  std::vector<Sequence> out;
  for (size_t i = 0; i < lengths.size(); ++i)
    out.push_back(random_sequence(params, {lengths[i], missing, i == 0 ? missing_steps : std::vector<Index>{},
                                           static_cast<std::uint64_t>(40 + i)}));
  return out;
}

ParamProps::Conditional frozen() {
  ParamProps::Conditional c;
  c.weights = c.bias = c.input_weights = c.cov = false;
  return c;
}

Affine pattern_affine(const Matrix& design, const Vector& fixed) { return Affine{fixed, design}; }

std::vector<Variant> variants() {
  std::vector<Variant> out;
  {  // Everything trainable: inputs, biases, full covariances, missing components and a missing step.
    ModelSpec spec;
    spec.state_dim = 2, spec.emission_dim = 2, spec.input_dim = 1, spec.biases = true, spec.seed = 1;
    Params p = random_params(spec);
    out.push_back({"all trainable, missing data", p, ParamProps{}, sequences(p, {7, 4}, 0.25, {2})});
  }
  {  // Diagonal R, scalar Q, frozen initial distribution and emission weights.
    ModelSpec spec;
    spec.state_dim = 3, spec.emission_dim = 2, spec.diagonal_emission_cov = true, spec.biases = true, spec.seed = 2;
    Params p = random_params(spec);
    p.dynamics.cov[0] = 0.4 * Matrix::Identity(3, 3);
    ParamProps props;
    props.initial.mean = props.initial.cov = false;
    props.emissions.weights = false;
    props.emissions.cov_structure = CovStructure::kDiagonal;
    props.dynamics.cov_structure = CovStructure::kScalar;
    out.push_back({"diagonal and scalar covariances, frozen", p, props, sequences(p, {9}, 0.1)});
  }
  {  // Constraints: F = [[a, 0], [b, a]], emission bias (c, 2 c), initial mean (m, 0.5); diagonal initial cov.
    ModelSpec spec;
    spec.state_dim = 2, spec.emission_dim = 3, spec.input_dim = 2, spec.seed = 3;
    Params p = random_params(spec);
    Matrix df = Matrix::Zero(4, 2);
    df(0, 0) = df(3, 0) = 1.0, df(1, 1) = 1.0;  // vec(F) = (F00, F10, F01, F11)
    ParamProps props;
    props.dynamics.weights_constraint = pattern_affine(df, Vector::Zero(4));
    Matrix dd = Matrix::Zero(3, 1);
    dd(0, 0) = 1.0, dd(1, 0) = 2.0;
    Vector fd = Vector::Zero(3);
    fd(2) = 0.3;
    props.emissions.bias_constraint = pattern_affine(dd, fd);
    props.initial.mean_constraint = pattern_affine(Matrix::Identity(2, 1), (Vector(2) << 0.0, 0.5).finished());
    props.initial.cov_structure = CovStructure::kDiagonal;
    p.initial.cov = Matrix(p.initial.cov.diagonal().asDiagonal());
    p = project_constraints(p, props);
    out.push_back({"constraints", p, props, sequences(p, {8, 5}, 0.15)});
  }
  {  // A covariance constraint: R = [[v, c], [c, v]] (equal variances and covariances).
    ModelSpec spec;
    spec.state_dim = 2, spec.emission_dim = 2, spec.biases = true, spec.seed = 5;
    Params p = random_params(spec);
    p.emissions.cov[0] = (Matrix(2, 2) << 0.6, 0.2, 0.2, 0.6).finished();
    Matrix design = Matrix::Zero(4, 2);  // vec(R) = (R00, R10, R01, R11)
    design(0, 0) = design(3, 0) = 1.0, design(1, 1) = design(2, 1) = 1.0;
    ParamProps props;
    props.emissions.cov_constraint = pattern_affine(design, Vector::Zero(4));
    props.initial.mean = props.initial.cov = false;
    out.push_back({"covariance constraint", p, props, sequences(p, {8, 6}, 0.2)});
  }
  {  // Frozen per-step emissions, trainable time-invariant dynamics.
    ModelSpec spec;
    spec.state_dim = 2, spec.emission_dim = 2, spec.num_param_steps = 6, spec.biases = true, spec.seed = 4;
    Params p = random_params(spec);
    for (MatrixSeries* s : {&p.dynamics.weights, &p.dynamics.bias, &p.dynamics.input_weights, &p.dynamics.cov})
      *s = MatrixSeries::constant((*s)[0]);
    ParamProps props;
    props.emissions = frozen();
    out.push_back({"frozen per-step emissions", p, props, sequences(p, {6}, 0.2), true});
  }
  return out;
}

Vector score_at(const Variant& v, const Vector& theta) {
  return information(with_free_parameters(theta, v.params, v.props), v.props, v.seqs, false, 1).score;
}

// d theta_k of every model matrix, from the affine map theta -> params.
Params direction(const Variant& v, const Vector& theta, Index k) {
  Vector up = theta;
  up(k) += 1.0;
  const Params a = with_free_parameters(up, v.params, v.props), b = with_free_parameters(theta, v.params, v.props);
  Params d = a;
  auto diff = [](MatrixSeries& out, const MatrixSeries& x, const MatrixSeries& y) { out.flat() = x.flat() - y.flat(); };
  d.initial.mean = a.initial.mean - b.initial.mean;
  d.initial.cov = a.initial.cov - b.initial.cov;
  for (auto [o, x, y] :
       {std::tuple{&d.dynamics, &a.dynamics, &b.dynamics}, std::tuple{&d.emissions, &a.emissions, &b.emissions}}) {
    diff(o->weights, x->weights, y->weights);
    diff(o->bias, x->bias, y->bias);
    diff(o->input_weights, x->input_weights, y->input_weights);
    diff(o->cov, x->cov, y->cov);
  }
  return d;
}

double inner(const Params& g, const Params& d) {
  double s = g.initial.mean.dot(d.initial.mean) + g.initial.cov.cwiseProduct(d.initial.cov).sum();
  for (auto [x, y] : {std::pair{&g.dynamics, &d.dynamics}, std::pair{&g.emissions, &d.emissions}})
    s += x->weights.flat().cwiseProduct(y->weights.flat()).sum() + x->bias.flat().cwiseProduct(y->bias.flat()).sum() +
         x->input_weights.flat().cwiseProduct(y->input_weights.flat()).sum() +
         x->cov.flat().cwiseProduct(y->cov.flat()).sum();
  return s;
}

// Richardson-extrapolated central differences of f: R^K -> R^M at x, column k
// the derivative along x_k: (4 D(h / 2) - D(h)) / 3, error O(h^4).
Matrix jacobian(const std::function<Vector(const Vector&)>& f, const Vector& x) {
  const Index k = x.size();
  Matrix out;
  for (Index i = 0; i < k; ++i) {
    const double h = 1e-2 * std::max(1.0, std::abs(x(i)));
    auto central = [&](double step) {
      Vector up = x, down = x;
      up(i) += step, down(i) -= step;
      return Vector((f(up) - f(down)) / (2.0 * step));
    };
    const Vector d = (4.0 * central(h / 2.0) - central(h)) / 3.0;
    if (i == 0) out.resize(d.size(), k);
    out.col(i) = d;
  }
  return out;
}

class InformationBattery : public ::testing::TestWithParam<int> {};

TEST_P(InformationBattery, ScoreIsFishersIdentity) {
  const Variant v = variants()[GetParam()];
  const InformationResult r = information(v.params, v.props, v.seqs, false, 1);
  if (v.per_step) {  // Richardson-extrapolated differences of log p(y) instead
    const Matrix fd = jacobian(
        [&](const Vector& th) {
          return Vector::Constant(
              1, information(with_free_parameters(th, v.params, v.props), v.props, v.seqs, false, 1).marginal_loglik);
        },
        r.free_parameters);
    EXPECT_MATRIX_NEAR(r.score, Vector(fd.row(0).transpose()), 1e-7) << v.name;
  } else {
    const Params g = log_prob_natural_gradient(v.params, sufficient_stats(v.params, v.seqs, false, 1));
    Vector expected(r.score.size());
    for (Index k = 0; k < expected.size(); ++k) expected(k) = inner(g, direction(v, r.free_parameters, k));
    EXPECT_MATRIX_NEAR(r.score, expected, 1e-8) << v.name;
  }
  EXPECT_MATRIX_NEAR(r.marginal_loglik, sufficient_stats(v.params, v.seqs, false, 1).marginal_loglik, 1e-12) << v.name;
  EXPECT_EQ(r.score.size(), num_free_parameters(v.params, v.props));
}

TEST_P(InformationBattery, HessianIsTheDerivativeOfTheScore) {
  const Variant v = variants()[GetParam()];
  const InformationResult r = information(v.params, v.props, v.seqs, true, 1);
  const Matrix fd = jacobian([&](const Vector& th) { return score_at(v, th); }, r.free_parameters);
  EXPECT_MATRIX_NEAR(r.hessian, fd, 1e-6) << v.name;
  EXPECT_MATRIX_NEAR(r.hessian, r.hessian.transpose(), 1e-13) << v.name;
}

TEST_P(InformationBattery, OpgIsTheSumOfStepScoreProducts) {
  const Variant v = variants()[GetParam()];
  const InformationResult r = information(v.params, v.props, v.seqs, false, 1);
  const Index k = r.score.size();
  Matrix expected = Matrix::Zero(k, k);
  for (const Sequence& seq : v.seqs) {
    Vector before = Vector::Zero(k);
    for (Index t = 0; t < seq.num_timesteps(); ++t) {
      Sequence prefix{seq.emissions.topRows(t + 1),
                      seq.inputs.size() ? RowMatrix(seq.inputs.topRows(t + 1)) : RowMatrix()};
      const Vector now = information(v.params, v.props, {prefix}, false, 1).score;
      const Vector s = now - before;
      expected += s * s.transpose();
      before = now;
    }
  }
  EXPECT_MATRIX_NEAR(r.opg, expected, 1e-10) << v.name;
}

TEST_P(InformationBattery, HarveysMatrixIsItsFormula) {
  const Variant v = variants()[GetParam()];
  const InformationResult r = information(v.params, v.props, v.seqs, false, 1);
  const Index k = r.score.size();
  Matrix expected = Matrix::Zero(k, k);
  for (const Sequence& seq : v.seqs) {
    // The observed v_t and F_t of every step stacked into one vector, differentiated.
    auto stacked = [&](const Vector& th) {
      const InnovationsResult inn = innovations(with_free_parameters(th, v.params, v.props), seq);
      std::vector<double> out;
      for (Index t = 0; t < seq.num_timesteps(); ++t)
        for (Index i = 0; i < seq.emissions.cols(); ++i) {
          if (std::isnan(seq.emissions(t, i))) continue;
          out.push_back(inn.innovations(t, i));
          for (Index j = 0; j < seq.emissions.cols(); ++j)
            if (!std::isnan(seq.emissions(t, j))) out.push_back(inn.innovation_covariances[t](i, j));
        }
      return Vector(Eigen::Map<Vector>(out.data(), static_cast<Index>(out.size())));
    };
    const Matrix d = jacobian(stacked, r.free_parameters);
    const InnovationsResult inn = innovations(v.params, seq);
    Index at = 0;
    for (Index t = 0; t < seq.num_timesteps(); ++t) {
      std::vector<Index> o;
      for (Index i = 0; i < seq.emissions.cols(); ++i)
        if (!std::isnan(seq.emissions(t, i))) o.push_back(i);
      const auto po = static_cast<Index>(o.size());
      if (po == 0) continue;
      std::vector<Matrix> dv(k, Matrix(po, 1)), ds(k, Matrix(po, po));
      for (Index a = 0; a < po; ++a) {
        for (Index c = 0; c < k; ++c) dv[c](a, 0) = d(at, c);
        ++at;
        for (Index b = 0; b < po; ++b, ++at)
          for (Index c = 0; c < k; ++c) ds[c](a, b) = d(at, c);
      }
      const Matrix f = inn.innovation_covariances[t](o, o);
      const Eigen::LLT<Matrix> llt(f);
      for (Index i = 0; i < k; ++i)
        for (Index j = 0; j < k; ++j)
          expected(i, j) +=
              0.5 * (llt.solve(ds[i]) * llt.solve(ds[j])).trace() + (dv[i].transpose() * llt.solve(dv[j]))(0, 0);
    }
  }
  EXPECT_MATRIX_NEAR(r.harvey, expected, 1e-6) << v.name;
}

INSTANTIATE_TEST_SUITE_P(Variants, InformationBattery, ::testing::Range(0, 5));

TEST(Information, FreeParametersRoundTrip) {
  for (const Variant& v : variants()) {
    const Vector theta = free_parameters(v.params, v.props);
    const Params back = with_free_parameters(theta, v.params, v.props);
    EXPECT_MATRIX_NEAR(free_parameters(back, v.props), theta, 1e-14) << v.name;
    EXPECT_MATRIX_NEAR(back.dynamics.weights.flat(), v.params.dynamics.weights.flat(), 1e-14) << v.name;
    EXPECT_MATRIX_NEAR(back.emissions.cov.flat(), v.params.emissions.cov.flat(), 1e-14) << v.name;
  }
  EXPECT_THROW(with_free_parameters(Vector::Zero(1), variants()[0].params, ParamProps{}), invalid_argument);
}

TEST(Information, CovarianceFromInformation) {
  std::mt19937_64 rng(7);
  const Matrix a = random_cov(rng, 4), b = random_cov(rng, 4);
  Matrix scaled = a;  // parameters on very different scales
  const Vector units = (Vector(4) << 1e-4, 1.0, 1e3, 1e6).finished();
  scaled = units.asDiagonal() * a * units.asDiagonal();
  EXPECT_MATRIX_NEAR(information_covariance(a), Matrix(a.inverse()), 1e-12);
  EXPECT_MATRIX_NEAR(Matrix(units.asDiagonal() * information_covariance(scaled) * units.asDiagonal()),
                     Matrix(a.inverse()), 1e-12);
  EXPECT_MATRIX_NEAR(information_covariance(a, &b), Matrix(a.inverse() * b * a.inverse()), 1e-12);
  Matrix singular = a;
  singular.row(2) = singular.col(2).transpose() = 2.0 * a.col(0).transpose();
  singular(2, 2) = 4.0 * a(0, 0);
  try {
    information_covariance(singular, nullptr, {"a", "b", "c", "d"});
    ADD_FAILURE() << "no error";
  } catch (const invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("information: expected a positive definite"), std::string::npos) << msg;
    EXPECT_NE(msg.find("the direction of the smallest is mostly "), std::string::npos) << msg;
    EXPECT_NE(msg.find("which the data do not determine"), std::string::npos) << msg;
  }
  Matrix zero = a;
  zero.row(1).setZero();
  zero.col(1).setZero();
  try {
    information_covariance(zero, nullptr, {"a", "b", "c", "d"});
    ADD_FAILURE() << "no error";
  } catch (const invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("about b (the data do not depend on it)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(information_covariance(Matrix::Identity(2, 3)), invalid_argument);
}

TEST(Information, Errors) {
  ModelSpec spec;
  spec.num_param_steps = 5;
  const Params p = random_params(spec);
  const auto seqs = sequences(p, {5}, 0.0);
  ParamProps frozen_dynamics;
  frozen_dynamics.dynamics = frozen();
  try {  // trainable per-step emissions
    information(p, frozen_dynamics, seqs);
    ADD_FAILURE() << "no error";
  } catch (const invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("time-invariant"), std::string::npos) << e.what();
  }
  // An exactly observed component already determined: S not positive definite.
  ModelSpec one;
  one.state_dim = 1, one.emission_dim = 1, one.seed = 9;
  Params q = random_params(one);
  q.emissions.cov[0].setZero();
  q.initial.cov.setZero();
  ParamProps props;
  props.emissions.cov = false;
  props.initial.cov = false;
  EXPECT_THROW(information(q, props, sequences(q, {3}, 0.0)), std::runtime_error);
}

}  // namespace
}  // namespace lgssm::test
