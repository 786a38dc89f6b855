// Validation of parameters and sequences: every class of bad input throws
// lgssm::invalid_argument with a message "<argument>: expected <...>, got <...>"
// that names the argument and what was expected and what came.
#include "lgssm/params.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <limits>
#include <ostream>
#include <regex>
#include <string>
#include <vector>

#include "lgssm/error.hpp"
#include "lgssm/inference.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr Index kT = 5;
const char* const kNonFinite = "(finite|nan|NaN|inf|Inf)";

// state_dim 3, emission_dim 2, input_dim 2, constant parameters.
Params base_params() { return random_params({3, 2, 2, 0, true, false, -1, -1, 501}); }
Sequence base_sequence(const Params& params) { return random_sequence(params, {kT, 0.0, {}, 502}); }

std::string regex_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string(".[]()*+?{}|^$\\").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

// gmock is not installed, so the HasSubstr / ContainsRegex matchers are
// replaced by this predicate: `message` contains a match of the ECMAScript
// regex `pattern`.
::testing::AssertionResult contains_regex(const char* message_expr, const char* pattern_expr,
                                          const std::string& message, const std::string& pattern) {
  if (std::regex_search(message, std::regex(pattern))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << message_expr << " = \"" << message << "\"\n  does not contain a match of "
                                       << pattern_expr << " = /" << pattern << "/";
}

// Calls `fn` and expects an lgssm::invalid_argument whose message names
// `argument` before ": expected <...>, got <...>" and matches every regex of
// `details` (e.g. "expected .*3, 3\\).*, got .*3, 4\\)").
void expect_invalid(const std::function<void()>& fn, const std::string& argument,
                    const std::vector<std::string>& details = {}) {
  try {
    fn();
  } catch (const lgssm::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_PRED_FORMAT2(contains_regex, msg, regex_escape(argument) + ".*: expected .+, got .+");
    for (const std::string& d : details) EXPECT_PRED_FORMAT2(contains_regex, msg, d);
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected lgssm::invalid_argument naming " << argument << ", got another exception: " << e.what();
    return;
  }
  ADD_FAILURE() << "expected lgssm::invalid_argument naming " << argument << ", nothing thrown";
}

// A bad parameter is caught by validate(params) and by an entry point.
void expect_invalid_params(const Params& params, const std::string& argument,
                           const std::vector<std::string>& details = {}) {
  {
    SCOPED_TRACE("validate(params)");
    expect_invalid([&] { validate(params); }, argument, details);
  }
  {
    SCOPED_TRACE("filter(params, seq)");
    const Sequence seq = base_sequence(base_params());
    expect_invalid([&] { filter(params, seq); }, argument, details);
  }
}

// A bad sequence is caught by validate(params, seq) and by an entry point.
void expect_invalid_sequence(const Params& params, const Sequence& seq, const std::string& argument,
                             const std::vector<std::string>& details = {}) {
  {
    SCOPED_TRACE("validate(params, seq)");
    expect_invalid([&] { validate(params, seq); }, argument, details);
  }
  {
    SCOPED_TRACE("smoother(params, seq)");
    expect_invalid([&] { smoother(params, seq); }, argument, details);
  }
}

// Regex: "expected <...exp...>, got <...got...>".
std::string expected_got(const std::string& exp, const std::string& got) {
  return "expected .*" + exp + ".*, got .*" + got;
}

MatrixSeries series_of(Index size, const Matrix& m) {
  MatrixSeries s(size, m.rows(), m.cols());
  for (Index k = 0; k < size; ++k) s[k] = m;
  return s;
}

TEST(Validate, AcceptsValidModelsAndData) {
  const Params params = base_params();
  Sequence seq = base_sequence(params);
  seq.emissions(1, 0) = kNaN;              // missing component
  seq.emissions.row(3).setConstant(kNaN);  // missing step
  EXPECT_NO_THROW(validate(params));
  EXPECT_NO_THROW(validate(params, seq));
  EXPECT_NO_THROW(filter(params, seq));

  // PSD, not PD, initial and dynamics covariances are valid.
  const Params singular = random_params({3, 2, 0, 0, true, false, 2, 1, 503});
  EXPECT_NO_THROW(validate(singular));
  // Per-step series longer than the sequence needs are valid.
  const Params long_series = random_params({3, 2, 2, kT + 4, true, false, -1, -1, 504});
  EXPECT_NO_THROW(validate(long_series, base_sequence(long_series)));
}

// --- wrong shape of each parameter kind ------------------------------------

struct ShapeCase {
  std::string argument;
  std::function<void(Params&)> mutate;
  std::string expected;  // regex fragment of the expected shape
  std::string got;       // regex fragment of the actual shape
};

void PrintTo(const ShapeCase& c, std::ostream* os) { *os << c.argument; }

class WrongShape : public ::testing::TestWithParam<ShapeCase> {};

TEST_P(WrongShape, NamesParameterExpectedAndActualShape) {
  Params params = base_params();
  GetParam().mutate(params);
  expect_invalid_params(params, GetParam().argument, {expected_got(GetParam().expected, GetParam().got)});
}

// state_dim 3 (from initial.mean), emission_dim 2 (rows of emissions.weights),
// input_dim 2 (columns of dynamics.input_weights).
INSTANTIATE_TEST_SUITE_P(
    EachParameter, WrongShape,
    ::testing::Values(
        ShapeCase{"initial.cov", [](Params& p) { p.initial.cov = Matrix::Identity(4, 4); }, "3, 3\\)", "4, 4\\)"},
        ShapeCase{"dynamics.weights", [](Params& p) { p.dynamics.weights = series_of(1, Matrix::Zero(3, 4)); },
                  "3, 3\\)", "3, 4\\)"},
        ShapeCase{"dynamics.bias", [](Params& p) { p.dynamics.bias = series_of(1, Matrix::Zero(4, 1)); }, "3", "4"},
        ShapeCase{"dynamics.input_weights",
                  [](Params& p) { p.dynamics.input_weights = series_of(1, Matrix::Zero(4, 2)); }, "3, 2\\)", "4, 2\\)"},
        ShapeCase{"dynamics.cov", [](Params& p) { p.dynamics.cov = series_of(1, Matrix::Identity(4, 4)); }, "3, 3\\)",
                  "4, 4\\)"},
        ShapeCase{"emissions.weights", [](Params& p) { p.emissions.weights = series_of(1, Matrix::Zero(2, 4)); },
                  "2, 3\\)", "2, 4\\)"},
        ShapeCase{"emissions.bias", [](Params& p) { p.emissions.bias = series_of(1, Matrix::Zero(3, 1)); }, "2", "3"},
        ShapeCase{"emissions.input_weights",
                  [](Params& p) { p.emissions.input_weights = series_of(1, Matrix::Zero(2, 3)); }, "2, 2\\)",
                  "2, 3\\)"},
        ShapeCase{"emissions.cov", [](Params& p) { p.emissions.cov = series_of(1, Matrix::Identity(3, 3)); }, "2, 2\\)",
                  "3, 3\\)"}),
    [](const ::testing::TestParamInfo<ShapeCase>& info) {
      std::string name = info.param.argument;
      for (char& c : name)
        if (c == '.') c = '_';
      return name;
    });

// --- values ----------------------------------------------------------------

TEST(Validate, NonFiniteParameter) {
  {
    Params p = base_params();
    p.initial.mean(1) = kInf;
    expect_invalid_params(p, "initial.mean", {kNonFinite});
  }
  {
    Params p = base_params();
    p.dynamics.weights[0](1, 2) = kNaN;
    expect_invalid_params(p, "dynamics.weights", {kNonFinite});
  }
  {
    Params p = base_params();
    p.dynamics.cov[0](1, 1) = kNaN;
    expect_invalid_params(p, "dynamics.cov", {kNonFinite});
  }
  {
    Params p = base_params();
    p.emissions.bias[0](1, 0) = -kInf;
    expect_invalid_params(p, "emissions.bias", {kNonFinite});
  }
  {
    Params p = base_params();
    p.emissions.input_weights[0](0, 1) = kNaN;
    expect_invalid_params(p, "emissions.input_weights", {kNonFinite});
  }
}

TEST(Validate, AsymmetricCovariance) {
  {
    Params p = base_params();
    p.initial.cov(0, 2) += 0.1;
    expect_invalid_params(p, "initial.cov", {"expected .*symmetric"});
  }
  {
    Params p = base_params();
    p.dynamics.cov[0](0, 1) += 0.1;
    expect_invalid_params(p, "dynamics.cov", {"expected .*symmetric"});
  }
  {
    Params p = base_params();
    p.emissions.cov[0](1, 0) += 0.1;
    expect_invalid_params(p, "emissions.cov", {"expected .*symmetric"});
  }
}

TEST(Validate, CovarianceWithNegativeEigenvalue) {
  const std::string eig = "got .*-0\\.(5|49999)";
  {
    Params p = base_params();
    p.initial.cov = Vector((Vector(3) << 1.0, -0.5, 2.0).finished()).asDiagonal();
    expect_invalid_params(p, "initial.cov", {"expected .*semidefinite", eig});
  }
  {
    // A rotated diag(1.5, -0.5, 1): the negative eigenvalue is not on the diagonal.
    Params p = base_params();
    const double c = std::cos(0.7), s = std::sin(0.7);
    Matrix rot(3, 3);
    rot << c, -s, 0, s, c, 0, 0, 0, 1;
    Matrix q = rot * Vector((Vector(3) << 1.5, -0.5, 1.0).finished()).asDiagonal() * rot.transpose();
    q = 0.5 * (q + q.transpose());
    p.dynamics.cov = series_of(1, q);
    expect_invalid_params(p, "dynamics.cov", {"expected .*semidefinite", eig});
  }
  {
    Params p = base_params();
    p.emissions.cov = series_of(1, Vector((Vector(2) << -0.5, 1.0).finished()).asDiagonal());
    expect_invalid_params(p, "emissions.cov", {"expected .*positive definite", eig});
  }
}

TEST(Validate, EmissionCovarianceDefiniteExceptExactComponents) {
  {
    Params p = base_params();
    p.emissions.cov = series_of(1, Matrix::Ones(2, 2));  // eigenvalues 0 and 2, no zero row
    expect_invalid_params(p, "emissions.cov", {"expected .*positive definite", "zero row and column"});
  }
  {
    Params p = base_params();
    Matrix r(2, 2);
    r << 1.0, 0.5, 0.5, 0.0;  // zero variance, nonzero covariance
    p.emissions.cov = series_of(1, r);
    expect_invalid_params(p, "emissions.cov", {"zero row and column", "row 1"});
  }
  {
    // Component 1 observed exactly: valid.
    Params p = base_params();
    p.emissions.cov = series_of(1, Vector((Vector(2) << 1.0, 0.0).finished()).asDiagonal());
    EXPECT_NO_THROW(validate(p));
  }
}

// Tolerances are relative to the matrix's own scale.
TEST(Validate, CovarianceJudgedRelativeToItsScale) {
  {
    Params p = base_params();
    p.dynamics.cov = series_of(1, Vector((Vector(3) << 1e-12, -1e-11, 1e-12).finished()).asDiagonal());
    expect_invalid_params(p, "dynamics.cov", {"semidefinite", "-1e-11"});
  }
  {
    Params p = base_params();
    Matrix q = 1e-6 * Matrix::Identity(3, 3);
    q(0, 1) = 0.005e-6;  // a 0.5% asymmetry
    p.dynamics.cov = series_of(1, q);
    expect_invalid_params(p, "dynamics.cov", {"symmetric", "asymmetry"});
  }
  {
    // Zero (deterministic dynamics, known initial state) and tiny covariances are valid.
    Params p = base_params();
    p.dynamics.cov = series_of(1, Matrix::Zero(3, 3));
    p.initial.cov = Matrix::Zero(3, 3);
    p.emissions.cov = series_of(1, 1e-300 * Matrix::Identity(2, 2));
    EXPECT_NO_THROW(validate(p));
  }
}

// --- sequences ---------------------------------------------------------------

TEST(Validate, EmissionsOfWrongWidth) {
  const Params params = base_params();
  Sequence seq = base_sequence(params);
  seq.emissions = RowMatrix::Zero(kT, 3);
  expect_invalid_sequence(params, seq, "emissions", {expected_got("2", "3")});
}

TEST(Validate, InputsOfWrongShape) {
  const Params params = base_params();
  {
    SCOPED_TRACE("wrong width");
    Sequence seq = base_sequence(params);
    seq.inputs = RowMatrix::Zero(kT, 3);
    expect_invalid_sequence(params, seq, "inputs", {expected_got("2", "3")});
  }
  {
    SCOPED_TRACE("wrong length");
    Sequence seq = base_sequence(params);
    seq.inputs = RowMatrix::Zero(kT - 1, 2);
    expect_invalid_sequence(params, seq, "inputs", {expected_got("5", "4")});
  }
  {
    SCOPED_TRACE("missing although the model has inputs");
    Sequence seq = base_sequence(params);
    seq.inputs = RowMatrix();
    expect_invalid_sequence(params, seq, "inputs");
  }
  {
    SCOPED_TRACE("given although the model has none");
    const Params no_inputs = random_params({3, 2, 0, 0, true, false, -1, -1, 505});
    Sequence seq = base_sequence(no_inputs);
    seq.inputs = RowMatrix::Zero(kT, 2);
    expect_invalid_sequence(no_inputs, seq, "inputs");
  }
}

TEST(Validate, NonFiniteInputs) {
  const Params params = base_params();
  for (const double bad : {kNaN, kInf}) {
    SCOPED_TRACE(bad);
    Sequence seq = base_sequence(params);
    seq.inputs(2, 1) = bad;
    expect_invalid_sequence(params, seq, "inputs", {kNonFinite});
  }
}

TEST(Validate, InfiniteEmission) {
  const Params params = base_params();
  for (const double bad : {kInf, -kInf}) {
    SCOPED_TRACE(bad);
    Sequence seq = base_sequence(params);
    seq.emissions(3, 1) = bad;
    expect_invalid_sequence(params, seq, "emissions", {"(finite|inf|Inf)"});
  }
}

TEST(Validate, PerStepSeriesTooShortForSequence) {
  {
    // T = 5 steps need 4 dynamics entries.
    Params p = base_params();
    p.dynamics.weights = series_of(kT - 2, p.dynamics.weights[0]);
    expect_invalid_sequence(p, base_sequence(p), "dynamics.weights", {expected_got("4", "3")});
  }
  {
    // ... and 5 emissions entries.
    Params p = base_params();
    p.emissions.cov = series_of(kT - 1, p.emissions.cov[0]);
    expect_invalid_sequence(p, base_sequence(p), "emissions.cov", {expected_got("5", "4")});
  }
  {
    // A forecast of 2 steps needs 7 emissions entries.
    Params p = base_params();
    p.emissions.bias = series_of(kT, p.emissions.bias[0]);
    const Sequence seq = base_sequence(p);
    EXPECT_NO_THROW(validate(p, seq));
    expect_invalid([&] { forecast(p, seq, 2, RowMatrix::Zero(2, 2)); }, "emissions.bias", {expected_got("7", "5")});
  }
}

// --- arguments of entry points -------------------------------------------------

TEST(Validate, SampleNonPositiveNumTimesteps) {
  const Params params = base_params();
  expect_invalid([&] { sample(params, 0, 0, RowMatrix::Zero(0, 2)); }, "num_timesteps", {"got .*0"});
  expect_invalid([&] { sample(params, 0, -3, RowMatrix::Zero(0, 2)); }, "num_timesteps", {"got .*-3"});
}

TEST(Validate, SampleInputsOfWrongShape) {
  const Params params = base_params();
  expect_invalid([&] { sample(params, 0, kT, RowMatrix::Zero(kT, 3)); }, "inputs", {expected_got("2", "3")});
}

TEST(Validate, ForecastNegativeHorizon) {
  const Params params = base_params();
  const Sequence seq = base_sequence(params);
  expect_invalid([&] { forecast(params, seq, -2, RowMatrix::Zero(0, 2)); }, "num_forecast_timesteps", {"got .*-2"});
}

TEST(Validate, ForecastInputsOfWrongShape) {
  const Params params = base_params();
  const Sequence seq = base_sequence(params);
  expect_invalid([&] { forecast(params, seq, 3, RowMatrix::Zero(3, 3)); }, "forecast_inputs", {expected_got("2", "3")});
  expect_invalid([&] { forecast(params, seq, 3, RowMatrix::Zero(2, 2)); }, "forecast_inputs", {expected_got("3", "2")});
}

TEST(Validate, PosteriorSampleNegativeNumSamples) {
  const Params params = base_params();
  const Sequence seq = base_sequence(params);
  expect_invalid([&] { posterior_sample(params, seq, 0, -1); }, "num_samples", {"got .*-1"});
}

}  // namespace
}  // namespace lgssm::test
