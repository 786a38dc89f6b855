// Learning the parameters of an LG-SSM: EM with closed-form (conditional)
// M-steps, the exact gradient of log p(y) by Fisher's identity, and two
// gradient-based fits (Adam on minibatches of sequences, and L-BFGS).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "lgssm/params.hpp"
#include "lgssm/stats.hpp"

namespace lgssm {

// Structure kept by a covariance through fitting.
enum class CovStructure { kFull, kDiagonal, kScalar };

// The matrix of `structure` nearest to the square matrix `cov` in the
// Frobenius norm: the symmetric (cov + cov^T) / 2 (full), the diagonal of cov
// (diagonal), or the mean of that diagonal times I (scalar). The M-step's
// covariance update (m_step below); no argument checks.
Matrix project(const Matrix& cov, CovStructure structure);

// Which parameters are fitted (true) or frozen (false), and the structure of
// each covariance. A frozen parameter is never changed; the others are fitted
// given it (conditional M-steps; no gradient component for it).
struct ParamProps {
  struct Initial {
    bool mean = true;
    bool cov = true;
    CovStructure cov_structure = CovStructure::kFull;
  };
  struct Conditional {
    bool weights = true;
    bool bias = true;
    bool input_weights = true;
    bool cov = true;
    CovStructure cov_structure = CovStructure::kFull;
  };
  Initial initial;
  Conditional dynamics;
  Conditional emissions;
};

// Conjugate priors for MAP fitting, as dynamax's LinearGaussianConjugateSSM:
//   (initial.mean, initial.cov) ~ NIW(loc, mean_concentration, df, scale):
//       cov ~ IW(df, scale), mean | cov ~ N(loc, cov / mean_concentration);
//   ([weights, input_weights, bias], cov) ~ MNIW(loc, col_precision, df, scale):
//       cov ~ IW(df, scale), W | cov ~ MN(loc, cov, col_precision^{-1}),
// for dynamics and emissions alike, W having k = state_dim + input_dim + 1
// columns (the bias column included). Equivalently, the prior adds
// pseudo-observations to the sufficient statistics (Murphy 2012, Sec. 4.6.3;
// Bishop 2006, Sec. 2.3.6), which is how m_step and log_prob_gradient use it.
struct NiwPrior {
  Vector loc;                       // (state_dim,)
  double mean_concentration = 1.0;  // > 0
  double df = 0.0;                  // > state_dim - 1
  Matrix scale;                     // (state_dim, state_dim), positive definite
};
struct MniwPrior {
  Matrix loc;            // (out_dim, k)
  Matrix col_precision;  // (k, k), positive definite
  double df = 0.0;       // > out_dim - 1
  Matrix scale;          // (out_dim, out_dim), positive definite
};
struct ConjugatePrior {
  NiwPrior initial;
  MniwPrior dynamics;
  MniwPrior emissions;
  // dynamax's defaults: loc 0, mean_concentration 1, col_precision I, scale I,
  // df = dim + 0.1 (dim = state_dim, or emission_dim for the emissions).
  static ConjugatePrior defaults(Eigen::Index state_dim, Eigen::Index emission_dim, Eigen::Index input_dim);
};

// Checks the prior's shapes and hyperparameters against `params`.
void validate(const Params& params, const ConjugatePrior& prior);

// log p(params) under the prior, with all normalizing constants.
double log_prior(const Params& params, const ConjugatePrior& prior);

// Checks `props` against `params`: a structured covariance must have that
// structure; trainable dynamics parameters must be time-invariant; emission
// parameters are either all time-invariant or all per step (learned per step).
void validate(const Params& params, const ParamProps& props);

// The M-step: the parameters maximizing E[log p(z, y)] given the summed
// statistics, over the trainable parameters with the frozen ones held fixed.
// Each conditional is a linear regression (Shumway & Stoffer 2017, Property
// 6.4; the seed document's M-step for per-step emissions): the free blocks of
// W = [weights, input_weights, bias] solve the normal equations given the
// frozen blocks (a correction to the current W that zeroes the moment
// sum E[(out - W x) x^T] on them), then cov = E[(out - W x)(out - W x)^T] /
// count from the residual statistics (stats.hpp), projected
// onto its structure (diagonal part, or mean of the diagonal times I).
// With a prior: the MAP M-step (maximizing E[log p(z, y)] + log p(params)).
Params m_step(const Params& params, const ParamProps& props, const SufficientStats& stats,
              const ConjugatePrior* prior = nullptr);

enum class Termination { kMaxIterations, kConverged, kNumericalFailure, kStopped };

struct FitSummary {
  int iterations = 0;  // iterations (EM, L-BFGS) or epochs (SGD) completed
  Termination termination = Termination::kMaxIterations;
  std::string message;  // human-readable reason
  // Conditions the caller should hear of, each reported once, e.g. a fitted
  // covariance approaching singularity (see kNearSingular).
  std::vector<std::string> warnings;
  // The history's first and last entries (NaN when it is empty): log p(y)
  // (+ log prior) for EM and L-BFGS, the epoch's mean loss for SGD.
  double initial_objective = std::numeric_limits<double>::quiet_NaN();
  double final_objective = std::numeric_limits<double>::quiet_NaN();
  int evaluations = 0;  // of the objective: E-steps (EM), minibatch losses (SGD), objective calls (L-BFGS)
  double seconds = 0.0;  // wall time of the fit
  // Whether the returned parameters are a fit: the history has a finite last
  // entry (false when the fit failed at its start).
  bool usable = false;
};

// A fitted (trainable) covariance whose smallest eigenvalue is at most this
// times its largest is reported in FitSummary::warnings: near a singular
// covariance the likelihood may grow without bound (with one sequence and a
// trainable initial.cov, for example, initial.cov -> 0 and a full
// emissions.cov losing rank), and float64 loses the digits that fix the
// small eigenvalues (the smoothed moments behind the statistics are exact to
// about 1e-16 of the state's scale, not of the vanishing residual's).
constexpr double kNearSingular = 1e-10;

struct FitResult {
  Params params;
  // EM: log p(y) (+ log prior) of the parameters entering each iteration
  // (before its M-step); SGD: the mean minibatch loss of each epoch,
  // -(log p(y) + log prior) / (number of emission entries) as dynamax scales
  // it; L-BFGS: log p(y) (+ log prior) at each iterate.
  std::vector<double> history;
  FitSummary summary;
};

// Called after each iteration/epoch with (iteration, history value); return
// false to stop the fit (Termination::kStopped).
using FitCallback = std::function<bool(int, double)>;

struct EmOptions {
  int num_iters = 50;      // maximum number of EM iterations, >= 0
  double tolerance = 0.0;  // stop when |lp_k - lp_{k-1}| <= tolerance * |lp_k|; finite, >= 0; 0 never stops early
  int num_threads = 0;     // threads for the E-step, >= 0; 0 = all hardware threads
  std::optional<ConjugatePrior> prior;  // MAP instead of maximum likelihood when set
  bool accelerate = false; // SQUAREM extrapolation on the unconstrained parameters (fit.hpp)
  FitCallback callback;    // optional
};

// Checks the options (each named in the error).
void validate(const EmOptions& options);

// A fall of EM's objective larger than this, relative, is taken as a
// numerical failure (EM cannot decrease it in exact arithmetic).
constexpr double kEmMaxFall = 1e-8;

// Expectation-maximization, by the driver of fit.hpp. Each iteration's M-step
// is the exact conditional maximizer (m_step), so in exact arithmetic log p(y)
// (+ log prior) never falls. A numerical failure stops the fit with
// Termination::kNumericalFailure and the parameters of the last iteration
// recorded in `history`: a non-finite log likelihood, an M-step that leaves the
// valid parameter set, or a fall of the objective by more than kEmMaxFall
// relative (the history is therefore monotone to that tolerance). With
// options.accelerate, SQUAREM steps (each kept only when it does not lower
// the objective) between pairs of EM steps.
FitResult fit_em(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                 const EmOptions& options = {});

// The trainable parameters as one unconstrained vector: free entries of
// means, weights, biases and input weights as they are (row-major);
// covariances through their Cholesky factor L (log of the diagonal, then the
// strictly lower entries column by column), diagonal ones as log standard
// deviations, scalar ones as one log standard deviation.
Vector to_unconstrained(const Params& params, const ParamProps& props);
// The inverse of to_unconstrained; frozen parameters are taken from `base`.
Params from_unconstrained(const Vector& x, const Params& base, const ParamProps& props);

// d log p(y) / d x (x = to_unconstrained(params)) from the statistics of an
// E-step at `params`, by Fisher's identity: the gradient of log p(y) equals the
// expected gradient of log p(z, y) under p(z | y) (Cappe, Moulines & Ryden
// 2005, Prop. 10.1.6), and that is linear in the statistics.
// With a prior, the gradient of log p(y) + log p(params).
Vector log_prob_gradient(const Params& params, const ParamProps& props, const SufficientStats& stats,
                         const ConjugatePrior* prior = nullptr);

struct AdamOptions {  // defaults as optax.adam
  double learning_rate = 1e-3;  // finite, > 0
  double b1 = 0.9;              // in [0, 1)
  double b2 = 0.999;            // in [0, 1)
  double eps = 1e-8;            // finite, > 0
};

struct SgdOptions {
  AdamOptions adam;
  int batch_size = 1;      // sequences per minibatch, >= 1
  int num_epochs = 50;     // >= 0
  bool shuffle = false;    // reshuffle the sequences every epoch
  std::uint64_t seed = 0;  // for shuffling
  int num_threads = 0;     // >= 0; 0 = all hardware threads
  std::optional<ConjugatePrior> prior;  // MAP instead of maximum likelihood when set
  FitCallback callback;
};

// Adam on minibatches of whole sequences, minimizing dynamax's loss
// -(N / |batch|) sum_batch log p(y_i) / (number of emission entries).
// Returns, as dynamax, the parameters after the last update. If the loss
// becomes non-finite the fit stops (Termination::kNumericalFailure) and
// returns instead the parameters with the lowest loss evaluated so far, the
// message naming their epoch e (with one minibatch per epoch they are the
// parameters entering epoch e and their loss is history[e]; with smaller
// minibatches, lowest by the minibatch's estimate of the loss).
// The pieces below (minibatch order, loss from statistics, Adam step) are what
// it is made of, public so that a distributed driver takes the same path.
FitResult fit_sgd(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                  const SgdOptions& options = {});

// Checks the settings (each named in the error).
void validate(const AdamOptions& options);
void validate(const SgdOptions& options);

// The minibatches of epoch `epoch` of fit_sgd: the sequence indices
// 0 .. num_sequences-1 in order, or (with shuffle and more sequences than
// batch_size) permuted by a generator seeded with (seed, epoch), cut into
// consecutive groups of batch_size (>= 1); the last group may be smaller.
std::vector<std::vector<size_t>> sgd_minibatches(size_t num_sequences, int batch_size, bool shuffle,
                                                 std::uint64_t seed, int epoch);

// dynamax's minibatch loss and its gradient over x = to_unconstrained(params),
// from the statistics `stats` of the minibatch's sequences at `params`:
//   f = -(batch_weight * log p(y_batch) + log p(params)) / scale,
// with batch_weight = num_sequences / batch size and scale = the number of
// emission entries of all sequences (the prior term only with a prior). The
// gradient is log_prob_gradient's (Fisher's identity). Returns +inf (grad
// then unspecified) when f or the gradient is not finite.
double minibatch_loss(const Params& params, const ParamProps& props, const SufficientStats& stats,
                      double batch_weight, double scale, const ConjugatePrior* prior, Vector& grad);

// Adam's moment estimates and step count (all zero before the first step).
struct AdamState {
  Vector m;       // first-moment estimate, like x
  Vector v;       // second-moment estimate, like x
  long step = 0;  // updates taken
  explicit AdamState(Eigen::Index size = 0) : m(Vector::Zero(size)), v(Vector::Zero(size)) {}
};

// One Adam update of x against the gradient `grad` (Kingma & Ba 2015, Alg. 1):
// m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
// x <- x - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
void adam_update(const AdamOptions& options, const Vector& grad, Vector& x, AdamState& state);

struct LbfgsOptions {
  int max_iters = 1000;              // >= 0
  int memory = 10;                   // stored correction pairs, >= 1
  double gradient_tolerance = 1e-8;  // stop when |grad|_inf <= tol * max(1, |f|); finite, >= 0
  double function_tolerance = 1e-12; // stop when the relative decrease of f is below this; finite, >= 0
  int num_threads = 0;               // >= 0; 0 = all hardware threads
  std::optional<ConjugatePrior> prior;  // MAP instead of maximum likelihood when set
  FitCallback callback;
};

// Checks the options (each named in the error).
void validate(const LbfgsOptions& options);

// Limited-memory BFGS (Nocedal & Wright 2006, Alg. 7.4/7.5) with a strong
// Wolfe line search (Alg. 3.5/3.6) on -log p(y) over the unconstrained vector.
// f is scaled by the number of emission entries, so function_tolerance and
// gradient_tolerance are relative to that per-entry loss. Termination says
// whether a tolerance was met or max_iters was reached first.
FitResult fit_lbfgs(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                    const LbfgsOptions& options = {});

}  // namespace lgssm
