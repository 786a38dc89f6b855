// L-BFGS with a strong-Wolfe line search; see lbfgs.hpp for the equations.
#include "lbfgs.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "lgssm/error.hpp"
#include "linalg.hpp"

namespace lgssm::internal {

namespace {

constexpr double kC1 = 1e-4, kC2 = 0.9;  // sufficient decrease, curvature
constexpr int kMaxEvaluations = 40;      // per line search

// The last `memory` correction pairs, newest at head_.
class Corrections {
 public:
  Corrections(Eigen::Index n, int memory)
      : s_(n, memory), y_(n, memory), rho_(memory), alpha_(memory), capacity_(memory) {}

  void clear() { count_ = 0; }

  // Keeps (s, y) when s^T y is safely positive.
  void push(const Vector& s, const Vector& y) {
    const double sy = s.dot(y);
    if (!(sy > 1e-12 * y.squaredNorm())) return;
    head_ = (head_ + 1) % capacity_;
    s_.col(head_) = s;
    y_.col(head_) = y;
    rho_(head_) = 1.0 / sy;
    count_ = std::min(count_ + 1, capacity_);
  }

  // d = -H g by the two-loop recursion.
  void direction(const Vector& g, Vector& d) {
    d = -g;
    for (int k = 0; k < count_; ++k) {  // newest to oldest
      const int i = index(k);
      alpha_(i) = rho_(i) * s_.col(i).dot(d);
      d -= alpha_(i) * y_.col(i);
    }
    if (count_ > 0)
      d *= 1.0 / (rho_(head_) * y_.col(head_).squaredNorm());
    else
      d /= std::max(1.0, g.lpNorm<Eigen::Infinity>());
    for (int k = count_ - 1; k >= 0; --k) {  // oldest to newest
      const int i = index(k);
      d += s_.col(i) * (alpha_(i) - rho_(i) * y_.col(i).dot(d));
    }
  }

 private:
  int index(int k) const { return (head_ - k + capacity_) % capacity_; }  // k-th newest

  Matrix s_, y_;
  Vector rho_, alpha_;
  int capacity_, head_ = 0, count_ = 0;
};

// A trial step of the line search: phi(a) = f(x + a d) and phi'(a) = g . d
// (NaN where f = +inf).
struct Trial {
  double a = 0.0, f = 0.0, slope = 0.0;
};

// The trial step inside the bracket (lo, hi): the minimizer of the cubic
// through both ends' values and slopes (Nocedal & Wright 2006, Eq. 3.59), at
// least 10% of the bracket from its ends; the midpoint where hi has no slope
// or the cubic has no minimizer there.
double zoom_step(const Trial& lo, const Trial& hi) {
  const double left = std::min(lo.a, hi.a), width = std::abs(hi.a - lo.a), mid = 0.5 * (lo.a + hi.a);
  if (!std::isfinite(hi.f)) return mid;
  const double d1 = lo.slope + hi.slope - 3.0 * (lo.f - hi.f) / (lo.a - hi.a);
  const double radicand = d1 * d1 - lo.slope * hi.slope;
  if (!(radicand >= 0.0)) return mid;
  const double d2 = std::copysign(std::sqrt(radicand), hi.a - lo.a);
  const double a = hi.a - (hi.a - lo.a) * (hi.slope + d2 - d1) / (hi.slope - lo.slope + 2.0 * d2);
  if (!std::isfinite(a)) return mid;
  return std::clamp(a, left + 0.1 * width, left + 0.9 * width);
}

// Work vectors of one run, allocated once.
struct LineSearch {
  const Objective& objective;
  Vector x_trial, grad_trial, grad_lo, grad_prev;
  int evaluations = 0;

  LineSearch(const Objective& f, Eigen::Index n) : objective(f), x_trial(n), grad_trial(n), grad_lo(n), grad_prev(n) {}

  Trial evaluate(const Vector& x, const Vector& d, double a) {
    x_trial.noalias() = x + a * d;
    ++evaluations;
    double f = objective(x_trial, grad_trial);
    if (!std::isfinite(f)) f = kInf;
    return {a, f, f < kInf ? grad_trial.dot(d) : std::numeric_limits<double>::quiet_NaN()};
  }

  // A step along d (from f0, slope d0 < 0) meeting the strong Wolfe
  // conditions (Alg. 3.5 and 3.6); on failure the best step with sufficient
  // decrease found, or 0 when there is none. Writes f and g at the step.
  double search(const Vector& x, const Vector& d, double f0, double d0, double& f_new, Vector& grad_new) {
    const auto sufficient = [&](const Trial& t) { return t.f <= f0 + kC1 * t.a * d0; };
    const auto curvature = [&](const Trial& t) { return std::abs(t.slope) <= -kC2 * d0; };
    Trial lo{0.0, f0, d0}, hi, prev = lo;
    bool bracketed = false;
    double a = 1.0;
    for (int k = 0; k < kMaxEvaluations; ++k) {
      if (bracketed) a = zoom_step(lo, hi);
      const Trial t = evaluate(x, d, a);
      if (!bracketed) {
        if (!sufficient(t) || (k > 0 && t.f >= prev.f)) {
          lo = prev;
          grad_lo = grad_prev;
          hi = t;
          bracketed = true;
          continue;
        }
        if (curvature(t)) return accept(t, f_new, grad_new);
        if (t.slope >= 0) {
          hi = prev;
          lo = t;
          grad_lo = grad_trial;
          bracketed = true;
          continue;
        }
        prev = t;
        grad_prev = grad_trial;
        a *= 2.0;
        continue;
      }
      if (!sufficient(t) || t.f >= lo.f) {
        hi = t;
        continue;
      }
      if (curvature(t)) return accept(t, f_new, grad_new);
      if (t.slope * (hi.a - lo.a) >= 0) hi = lo;
      lo = t;
      grad_lo = grad_trial;
    }
    if (lo.a == 0.0) return 0.0;
    f_new = lo.f;
    grad_new = grad_lo;
    return lo.a;
  }

  double accept(const Trial& t, double& f_new, Vector& grad_new) const {
    f_new = t.f;
    grad_new = grad_trial;
    return t.a;
  }
};

}  // namespace

LbfgsRun minimize_lbfgs(const Objective& objective, Vector x, const LbfgsOptions& options,
                        const std::function<bool(int, double)>& on_iterate) {
  const Eigen::Index n = x.size();
  LbfgsRun run;
  LineSearch line(objective, n);
  Corrections pairs(n, options.memory);
  Vector g(n), grad_new(n), d(n), s(n), y(n);
  double f = objective(x, g);
  ++line.evaluations;
  const auto finish = [&](Termination why, std::string message) {
    run.x = std::move(x);
    run.f = f;
    run.evaluations = line.evaluations;
    run.termination = why;
    run.message = std::move(message);
    return std::move(run);
  };
  if (!std::isfinite(f))
    return finish(Termination::kNumericalFailure, "the objective is not finite at the initial parameters");
  for (int it = 0;; ++it) {
    run.iterations = it;
    if (on_iterate && !on_iterate(it, f)) return finish(Termination::kStopped, "stopped by the callback");
    if (it == options.max_iters) return finish(Termination::kMaxIterations, "reached max_iters");
    if (g.lpNorm<Eigen::Infinity>() <= options.gradient_tolerance * std::max(1.0, std::abs(f)))
      return finish(Termination::kConverged, "gradient below gradient_tolerance");
    pairs.direction(g, d);
    double d0 = g.dot(d);
    if (!(d0 < 0)) {  // not a descent direction (round-off): restart from steepest descent
      pairs.clear();
      pairs.direction(g, d);
      d0 = g.dot(d);
    }
    double f_new = f;
    const double a = line.search(x, d, f, d0, f_new, grad_new);
    if (a == 0.0)
      return finish(Termination::kConverged,
                    "the line search could not decrease the objective further (|gradient|_inf = " +
                        number(g.lpNorm<Eigen::Infinity>()) + ")");
    s = a * d;
    y = grad_new - g;
    pairs.push(s, y);
    x += s;
    const double decrease = f - f_new;
    f = f_new;
    g.swap(grad_new);
    if (decrease <= options.function_tolerance * std::max(1.0, std::abs(f))) {
      run.iterations = it + 1;
      if (on_iterate) on_iterate(it + 1, f);
      return finish(Termination::kConverged, "relative decrease of the objective below function_tolerance");
    }
  }
}

Vector maximize_log_prob(const Objective& objective, Vector x, const LbfgsOptions& options, double scale,
                         std::vector<double>& history, FitSummary& summary) {
  const auto started = std::chrono::steady_clock::now();
  LbfgsRun run = minimize_lbfgs(objective, std::move(x), options, [&](int it, double f) {
    history.push_back(-f * scale);
    return !options.callback || options.callback(it, -f * scale);
  });
  summary.iterations = run.iterations;
  summary.termination = run.termination;
  summary.message = std::move(run.message);
  complete(summary, history, run.evaluations, started);
  return std::move(run.x);
}

Vector maximize_log_prob(const Objective& objective, Vector x, const std::vector<Eigen::Index>& log_sd,
                         const LbfgsOptions& options, double scale, std::vector<double>& history, FitSummary& summary) {
  const auto started = std::chrono::steady_clock::now();
  // Records iterate it (numbered from `offset`); `skip_start` leaves out a start already recorded.
  const auto recorder = [&](int offset, bool skip_start) {
    return [&, offset, skip_start](int it, double f) {
      if (skip_start && it == 0) return true;
      history.push_back(-f * scale);
      return !options.callback || options.callback(offset + it, -f * scale);
    };
  };
  LbfgsRun run = minimize_lbfgs(objective, std::move(x), options, recorder(0, false));
  int iterations = run.iterations, evaluations = run.evaluations;
  if (!log_sd.empty() && run.termination == Termination::kConverged && iterations < options.max_iters) {
    Vector at(run.x.size());  // the unconstrained vector of a trial z
    const Objective in_sd = [&](const Vector& z, Vector& grad) {
      at = z;
      for (const Eigen::Index i : log_sd) {
        if (z(i) == 0.0) return kInf;
        at(i) = std::log(std::abs(z(i)));
      }
      const double f = objective(at, grad);
      if (std::isfinite(f))
        for (const Eigen::Index i : log_sd) grad(i) /= z(i);
      return f;
    };
    Vector z = run.x;
    for (const Eigen::Index i : log_sd) z(i) = std::exp(z(i));
    LbfgsOptions rest = options;
    rest.max_iters = options.max_iters - iterations;
    LbfgsRun polish = minimize_lbfgs(in_sd, std::move(z), rest, recorder(iterations, true));
    iterations += polish.iterations;
    evaluations += polish.evaluations;
    if (polish.iterations > 0 && polish.f <= run.f) {
      for (const Eigen::Index i : log_sd) polish.x(i) = std::log(std::abs(polish.x(i)));
      run.x = std::move(polish.x);
    }
    run.termination = polish.termination;
    run.message = polish.message + " (over standard deviations, after " + std::to_string(run.iterations) +
                  " iterations over their logs)";
  }
  summary.iterations = iterations;
  summary.termination = run.termination;
  summary.message = std::move(run.message);
  complete(summary, history, evaluations, started);
  return std::move(run.x);
}

}  // namespace lgssm::internal
