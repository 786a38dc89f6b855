/// @file
/// Fitting the parameters of an LG-SSM: the options and summaries of every
/// fit, the fits themselves (EM with closed-form M-steps, Adam on minibatches
/// of sequences, L-BFGS), and the drivers they run on.
///
/// Every options struct has its defaults in the struct and a validate() that
/// names the first field out of range; every fit calls it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "lgssm/error.hpp"
#include "lgssm/params.hpp"
#include "lgssm/prior.hpp"
#include "lgssm/props.hpp"

namespace lgssm {

/// Why a fit stopped.
enum class Termination { kMaxIterations, kConverged, kNumericalFailure, kStopped };

/// What a fit reports besides its parameters and history.
struct FitSummary {
  int iterations = 0;  ///< iterations (EM, L-BFGS) or epochs (SGD) completed
  Termination termination = Termination::kMaxIterations;
  std::string message;  ///< human-readable reason
  /// Conditions the caller should hear of, each reported once, e.g. a fitted
  /// covariance approaching singularity (see kNearSingular).
  std::vector<std::string> warnings;
  /// The history's first and last entries (NaN when it is empty): log p(y)
  /// (+ log prior) for EM and L-BFGS, the epoch's mean loss for SGD.
  double initial_objective = std::numeric_limits<double>::quiet_NaN();
  double final_objective = std::numeric_limits<double>::quiet_NaN();
  int evaluations = 0;   ///< of the objective: E-steps (EM), minibatch losses (SGD), objective calls (L-BFGS)
  double seconds = 0.0;  ///< wall time of the fit
  /// Whether the returned parameters are a fit: the history has a finite last
  /// entry (false when the fit failed at its start).
  bool usable = false;
};

/// A fitted (trainable) covariance whose smallest eigenvalue is at most this
/// times its largest is reported in FitSummary::warnings: near a singular
/// covariance the likelihood may grow without bound (with one sequence and a
/// trainable initial.cov, for example, initial.cov -> 0 and a full
/// emissions.cov losing rank), and float64 loses the digits that fix the
/// small eigenvalues (the smoothed moments behind the statistics are exact to
/// about 1e-16 of the state's scale, not of the vanishing residual's).
constexpr double kNearSingular = 1e-10;

/// The result of a discrete-time fit.
struct FitResult {
  Params params;
  /// EM: log p(y) (+ log prior) of the parameters entering each iteration
  /// (before its M-step); SGD: the mean minibatch loss of each epoch,
  /// -(log p(y) + log prior) / (number of emission entries) as dynamax scales
  /// it; L-BFGS: log p(y) (+ log prior) at each iterate.
  std::vector<double> history;
  FitSummary summary;
};

/// Called after each iteration/epoch with (iteration, history value); return
/// false to stop the fit (Termination::kStopped).
using FitCallback = std::function<bool(int, double)>;

/// Options of fit_em (every field checked by validate()).
struct EmOptions {
  int num_iters = 50;      ///< maximum number of EM iterations, >= 0
  double tolerance = 0.0;  ///< stop when |lp_k - lp_{k-1}| <= tolerance * |lp_k|; finite, >= 0; 0 never stops early
  int num_threads = 0;     ///< threads for the E-step, >= 0; 0 = all hardware threads
  std::optional<ConjugatePrior> prior;  ///< MAP instead of maximum likelihood when set
  bool accelerate = false;              ///< SQUAREM extrapolation on the unconstrained parameters (fit.hpp)
  FitCallback callback;                 ///< optional: (iteration, history value); false stops the fit
  /// Throws lgssm::invalid_argument naming the first field out of its range.
  void validate() const;
};

/// A fall of EM's objective larger than this, relative, is taken as a
/// numerical failure (EM cannot decrease it in exact arithmetic).
constexpr double kEmMaxFall = 1e-8;

/// Expectation-maximization, by the driver of fit.hpp. Each iteration's M-step
/// is the exact conditional maximizer (m_step), so in exact arithmetic log p(y)
/// (+ log prior) never falls. A numerical failure stops the fit with
/// Termination::kNumericalFailure and the parameters of the last iteration
/// recorded in `history`: a non-finite log likelihood, an M-step that leaves the
/// valid parameter set, or a fall of the objective by more than kEmMaxFall
/// relative (the history is therefore monotone to that tolerance). With
/// options.accelerate, SQUAREM steps (each kept only when it does not lower
/// the objective) between pairs of EM steps.
/// @param params the starting parameters
/// @param props which parameters are fitted, and the covariances' structures
/// @param seqs the sequences (at least one)
/// @param options see EmOptions (validated)
/// @return the fitted parameters, the history of the objective and the summary
FitResult fit_em(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                 const EmOptions& options = {});

/// Adam's settings, with optax.adam's defaults.
struct AdamOptions {
  double learning_rate = 1e-3;  ///< finite, > 0
  double b1 = 0.9;              ///< in [0, 1)
  double b2 = 0.999;            ///< in [0, 1)
  double eps = 1e-8;            ///< finite, > 0
  /// Throws lgssm::invalid_argument naming the first field out of its range.
  void validate() const;
};

/// Options of fit_sgd (every field checked by validate()).
struct SgdOptions {
  AdamOptions adam;
  int batch_size = 1;                   ///< sequences per minibatch (Adam step), >= 1
  int num_epochs = 50;                  ///< passes over all sequences, >= 0
  bool shuffle = false;                 ///< reshuffle the sequences every epoch
  std::uint64_t seed = 0;               ///< seed of the shuffling, any value
  int num_threads = 0;                  ///< threads for the minibatch statistics, >= 0; 0 = all hardware threads
  std::optional<ConjugatePrior> prior;  ///< MAP instead of maximum likelihood when set
  FitCallback callback;                 ///< optional: (iteration, history value); false stops the fit
  /// Optional: the optimizer's step, update(grad, loss, x) moving x in place given
  /// the minibatch loss at x and its gradient, in place of adam_update (`adam` is
  /// then unused); for example an optax optimizer from Python. It may keep a state
  /// of its own.
  std::function<void(const Vector& grad, double loss, Vector& x)> update;
  /// Checks every field, adam's included.
  void validate() const;
};

/// Adam (or options.update) on minibatches of whole sequences, minimizing dynamax's loss
/// -(N / |batch|) sum_batch log p(y_i) / (number of emission entries).
/// Returns, as dynamax, the parameters after the last update. If the loss
/// becomes non-finite the fit stops (Termination::kNumericalFailure) and
/// returns instead the parameters with the lowest loss evaluated so far, the
/// message naming their epoch e (with one minibatch per epoch they are the
/// parameters entering epoch e and their loss is history[e]; with smaller
/// minibatches, lowest by the minibatch's estimate of the loss).
/// The pieces below (minibatch order, loss from statistics, Adam step) are what
/// it is made of, public so that a distributed driver takes the same path.
/// @param params the starting parameters
/// @param props which parameters are fitted, and the covariances' structures
/// @param seqs the sequences (at least one)
/// @param options see SgdOptions (validated)
/// @return the parameters after the last update (see above), the epochs' losses and the summary
FitResult fit_sgd(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                  const SgdOptions& options = {});

/// The minibatches of epoch `epoch` of fit_sgd: the sequence indices
/// 0 .. num_sequences-1 in order, or (with shuffle and more sequences than
/// batch_size) permuted by a generator seeded with (seed, epoch), cut into
/// consecutive groups of batch_size (>= 1); the last group may be smaller.
std::vector<std::vector<size_t>> sgd_minibatches(size_t num_sequences, int batch_size, bool shuffle, std::uint64_t seed,
                                                 int epoch);

/// Adam's moment estimates and step count (all zero before the first step).
struct AdamState {
  Vector m;       ///< first-moment estimate, like x
  Vector v;       ///< second-moment estimate, like x
  long step = 0;  ///< updates taken
  explicit AdamState(Eigen::Index size = 0) : m(Vector::Zero(size)), v(Vector::Zero(size)) {}
};

/// One Adam update of x against the gradient `grad` (Kingma & Ba 2015, Alg. 1):
/// m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
/// x <- x - lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps).
void adam_update(const AdamOptions& options, const Vector& grad, Vector& x, AdamState& state);

/// Options of fit_lbfgs (every field checked by validate()).
struct LbfgsOptions {
  int max_iters = 1000;                 ///< L-BFGS iterations at most, >= 0
  int memory = 10;                      ///< stored correction pairs, >= 1
  double gradient_tolerance = 1e-8;     ///< stop when |grad|_inf <= tol * max(1, |f|); finite, >= 0
  double function_tolerance = 1e-12;    ///< stop when the relative decrease of f is below this; finite, >= 0
  int num_threads = 0;                  ///< threads for each objective evaluation, >= 0; 0 = all hardware threads
  std::optional<ConjugatePrior> prior;  ///< MAP instead of maximum likelihood when set
  FitCallback callback;                 ///< optional: (iteration, history value); false stops the fit
  /// Throws lgssm::invalid_argument naming the first field out of its range.
  void validate() const;
};

/// Limited-memory BFGS (Nocedal & Wright 2006, Alg. 7.4/7.5) with a strong
/// Wolfe line search (Alg. 3.5/3.6) on -log p(y) over the unconstrained vector.
/// f is scaled by the number of emission entries, so function_tolerance and
/// gradient_tolerance are relative to that per-entry loss. When the run over
/// the unconstrained vector converges, a second run goes on from its end (the
/// two sharing max_iters, one history) with the free variances (diagonal and
/// scalar covariances, variance constraints) as standard deviations
/// sigma = exp(x) instead of their logs x, as statsmodels optimizes them: their
/// boundary 0 is then at a finite distance, where the objective is smooth in
/// sigma, instead of at x = -inf, where every derivative vanishes like sigma^2
/// and a variance that overshot towards 0 stalls (the tolerances firing far
/// from the maximum). Termination and the message are those of the last run.
/// @param params the starting parameters
/// @param props which parameters are fitted (time-invariant when trainable)
/// @param seqs the sequences (at least one)
/// @param options see LbfgsOptions (validated)
/// @return the parameters of the last iterate, the objective at each iterate and the summary
FitResult fit_lbfgs(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                    const LbfgsOptions& options = {});

// ---- The drivers: one loop per algorithm, parameterized by what differs
// between the models and engines that use it.

/// Fills the summary's objectives, evaluation count, wall time (since `start`)
/// and usability from the fit's history.
inline void complete(FitSummary& summary, const std::vector<double>& history, int evaluations,
                     std::chrono::steady_clock::time_point start) {
  if (!history.empty()) {
    summary.initial_objective = history.front();
    summary.final_objective = history.back();
  }
  summary.evaluations = evaluations;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.usable = !history.empty() && std::isfinite(history.back());
}

/// The steps of one EM, for parameters P and statistics S.
template <class P, class S>
struct EmSteps {
  std::function<S(const P&)> e_step;                    ///< statistics at p
  std::function<double(const P&, const S&)> objective;  ///< log p(y) (+ log prior) at p, from its statistics
  /// The M-step; throws lgssm::invalid_argument when its output is not a valid parameter.
  std::function<P(const P&, const S&)> m_step;
  /// For acceleration: the parameters as one vector, and back (throwing
  /// lgssm::invalid_argument for a vector that is no valid parameter).
  std::function<Vector(const P&)> to_vector;
  std::function<P(const Vector&)> from_vector;
  /// Optional: called with each recorded iterate (iteration, parameters,
  /// summary so far), e.g. to add warnings; and after each M-step with its
  /// output and the history so far (e.g. to write a checkpoint).
  std::function<void(int, const P&, FitSummary&)> on_record;
  std::function<void(const P&, const std::vector<double>&)> after_m_step;
};

/// Options of run_em.
struct EmLoopOptions {
  int num_iters = 50;       ///< objectives to record in all (a resumed history counts), >= 0
  double tolerance = 0.0;   ///< stop when |lp_k - lp_{k-1}| <= tolerance * |lp_k|; >= 0; 0 never stops early
  bool accelerate = false;  ///< SQUAREM; needs EmSteps::to_vector and from_vector
  FitCallback callback;     ///< optional: (iteration, objective); false stops the fit
  /// Appended to the message when the M-step leaves the valid set: what may help.
  std::string remedy;
  /// Throws lgssm::invalid_argument naming the first field out of its range.
  void validate() const;
};

template <class P>
/// The result of run_em.
struct EmRun {
  P params;
  std::vector<double> history;  ///< the objective entering each iteration
  FitSummary summary;
};

/// Runs EM from `start` (with `history` already recorded when resuming a
/// fit): every EM that lgssm runs (discrete time, the continuous-time
/// generalized EM, and lgssm.distributed, whose E-step runs on a Dask cluster),
/// given its E-step and M-step. Each iteration records the objective (log p(y), plus log prior for MAP) of
/// the parameters entering it, computed from their E-step, then applies the
/// M-step. With acceleration, SQUAREM (Varadhan & Roland 2008, scheme S3): from
/// theta_0 and two EM steps theta_1, theta_2, r = theta_1 - theta_0 and
/// v = theta_2 - 2 theta_1 + theta_0, the step alpha = |r| / |v| clamped to
/// [1, step_max] gives theta' = theta_0 + 2 alpha r + alpha^2 v (alpha = 1 is
/// theta_2), taken on the problem's vector of parameters (the unconstrained
/// one, where every vector is a valid parameter). theta' is kept only when its
/// objective is at least theta_1's, so the history stays non-decreasing;
/// step_max grows by 4 when reached and shrinks back on a rejection (Du &
/// Varadhan 2020, turboEM's defaults).
///
/// The fit stops (FitSummary) when
///  - num_iters objectives are recorded (kMaxIterations; the result is the last
///    M-step's output, not yet evaluated);
///  - the relative change of the objective is at most `tolerance`
///    (kConverged), or the callback returns false (kStopped); the result is the
///    parameters just recorded;
///  - the objective is not finite, or falls by more than kEmMaxFall relative
///    (EM cannot lower it in exact arithmetic: accuracy was lost), or the
///    M-step's output is not a valid parameter, or the E-step throws
///    lgssm::invalid_argument (kNumericalFailure); the result
///    is the last recorded parameters (the start when none is).
template <class P, class S>
EmRun<P> run_em(const EmSteps<P, S>& steps, P start, const EmLoopOptions& options, std::vector<double> history = {}) {
  options.validate();
  const auto started = std::chrono::steady_clock::now();
  int evaluations = 0;
  EmRun<P> r{start, std::move(history), {}};
  const auto done = [&]() -> EmRun<P>& {
    complete(r.summary, r.history, evaluations, started);
    return r;
  };
  r.summary.iterations = static_cast<int>(r.history.size());
  r.summary.message = "reached num_iters";
  const auto stop = [&](Termination why, std::string message) {
    r.summary.termination = why;
    r.summary.message = std::move(message);
    return false;
  };
  // Records the objective lp of the E-step at p, which becomes the result;
  // false when the fit ends (r.params is then what it returns).
  const auto record = [&](const P& p, double lp) {
    const int it = static_cast<int>(r.history.size());
    if (!std::isfinite(lp))
      return stop(Termination::kNumericalFailure, "log likelihood became " + number(lp) + " at iteration " +
                                                      std::to_string(it) +
                                                      "; returning the last parameters with a finite one");
    if (it > 0 && lp < r.history.back() - kEmMaxFall * std::abs(r.history.back())) {
      std::ostringstream msg;
      msg.precision(10);
      msg << "the log likelihood fell from " << r.history.back() << " to " << lp << " at iteration " << it
          << ", which EM cannot do in exact arithmetic: the computation has lost accuracy (typically near a "
             "singular covariance; see the warnings); returning the parameters of iteration "
          << it - 1;
      return stop(Termination::kNumericalFailure, msg.str());
    }
    r.params = p;
    r.history.push_back(lp);
    r.summary.iterations = it + 1;
    if (steps.on_record) steps.on_record(it, p, r.summary);
    if (options.callback && !options.callback(it, lp)) return stop(Termination::kStopped, "stopped by the callback");
    if (options.tolerance > 0 && it > 0 && std::abs(lp - r.history[it - 1]) <= options.tolerance * std::abs(lp))
      return stop(Termination::kConverged, "relative change of the log likelihood below tolerance");
    return true;
  };
  // The M-step from a recorded iterate; nullopt (the fit ends) when it fails.
  const auto m_step = [&](const P& p, const S& stats) -> std::optional<P> {
    try {
      P next = steps.m_step(p, stats);
      if (steps.after_m_step) steps.after_m_step(next, r.history);
      return next;
    } catch (const invalid_argument& e) {
      stop(Termination::kNumericalFailure, std::string("the M-step left the valid parameter set (") + e.what() +
                                               "); returning the parameters of the last E-step" + options.remedy);
      return std::nullopt;
    }
  };
  // The E-step at an M-step's output; nullopt (the fit ends) when it fails
  // (a continuous-time transition that overflows, say).
  const auto e_step = [&](const P& p) -> std::optional<S> {
    try {
      ++evaluations;
      return steps.e_step(p);
    } catch (const invalid_argument& e) {
      stop(Termination::kNumericalFailure, std::string("the E-step failed at iteration ") +
                                               std::to_string(r.history.size()) + " (" + e.what() +
                                               "); returning the parameters of the last E-step" + options.remedy);
      return std::nullopt;
    }
  };
  const auto left = [&] { return static_cast<int>(r.history.size()) < options.num_iters; };

  double step_max = 1.0;
  std::optional<P> current = start;  // the next iterate
  while (left()) {
    const P p0 = *current;
    const std::optional<S> s0 = e_step(p0);
    if (!s0 || !record(p0, steps.objective(p0, *s0)) || !(current = m_step(p0, *s0))) return done();
    if (!options.accelerate || !left()) continue;
    const P p1 = *current;
    const std::optional<S> s1 = e_step(p1);
    if (!s1 || !record(p1, steps.objective(p1, *s1)) || !(current = m_step(p1, *s1))) return done();
    if (!left()) continue;
    std::optional<P> candidate;
    std::optional<S> sc;
    double alpha = 1.0;
    try {
      const Vector x0 = steps.to_vector(p0), x1 = steps.to_vector(p1), x2 = steps.to_vector(*current);
      const Vector d = x1 - x0, v = x2 - x1 - d;
      alpha = std::clamp(d.norm() / v.norm(), 1.0, step_max);  // NaN when d = v = 0: no step
      if (alpha > 1.0) {
        candidate = steps.from_vector(x0 + 2.0 * alpha * d + alpha * alpha * v);
        ++evaluations;
        sc = steps.e_step(*candidate);
      }
    } catch (const invalid_argument&) {  // no usable extrapolation
    }
    const double lc = sc ? steps.objective(*candidate, *sc) : -std::numeric_limits<double>::infinity();
    const bool accepted = std::isfinite(lc) && lc >= r.history.back();
    if (alpha > 1.0 && !accepted) {  // fall back to theta_2
      if (alpha == step_max) step_max = std::max(1.0, step_max / 4.0);
      alpha = 1.0;
    }
    if (alpha == step_max) step_max *= 4.0;
    if (!accepted) continue;
    if (!record(*candidate, lc) || !(current = m_step(*candidate, *sc))) return done();
  }
  r.params = *current;
  return done();
}

/// run_sgd: Adam on minibatches of whole sequences (fit_sgd, and
/// lgssm.distributed's, whose minibatch statistics come from the workers).
/// Epoch e takes the minibatches sgd_minibatches(num_sequences, batch_size,
/// shuffle, seed, e) in order; for each, loss(x, batch, batch_weight, grad)
/// returns the minibatch's loss at x (+inf where x is no valid parameter) and
/// writes its gradient, batch_weight = num_sequences / |batch|; then one
/// adam_update (or options.update when set). The history holds each epoch's mean minibatch loss. The fit
/// stops after num_epochs epochs (the result: x after the last update), when
/// the callback returns false after an epoch (kStopped, the same), or when a
/// loss is not finite (kNumericalFailure; the result: the x with the lowest
/// minibatch loss seen, its epoch named in the message).
struct SgdSteps {
  std::function<double(const Vector&, const std::vector<size_t>&, double, Vector&)> loss;
  /// Optional: after each epoch, with x, Adam's state and the history (e.g. to write a checkpoint).
  std::function<void(const Vector&, const AdamState&, const std::vector<double>&)> after_epoch;
};

/// The result of run_sgd.
struct SgdRun {
  Vector x;
  std::vector<double> history;
  FitSummary summary;
};

/// Runs Adam from x with Adam's `state` (and `history` already recorded when
/// resuming); of `options` it uses adam, batch_size, num_epochs, shuffle, seed
/// and callback, which it validates.
SgdRun run_sgd(const SgdSteps& steps, size_t num_sequences, Vector x, AdamState state, const SgdOptions& options,
               std::vector<double> history = {});

}  // namespace lgssm
