// Unconstrained minimization by L-BFGS (private).
//
// The direction is the two-loop recursion d = -H g over the last `memory`
// correction pairs (s_k, y_k) (Nocedal & Wright 2006, Alg. 7.4), with the
// initial inverse Hessian gamma I, gamma = s^T y / y^T y of the newest pair
// (Eq. 7.20); pairs with s^T y <= 1e-12 |y|^2 are skipped, so H stays
// positive definite. The pairs live in a preallocated ring (two n x memory
// matrices): no allocation per iteration.
//
// The step satisfies the strong Wolfe conditions, c1 = 1e-4, c2 = 0.9
// (Alg. 3.5): the trial step doubles until it brackets an acceptable one,
// then the bracket is zoomed (Alg. 3.6) at the minimizer of the cubic through
// the end points' values and slopes (Eq. 3.59), kept at least 10% of the
// bracket away from its ends; where an end's value is +inf (outside the valid
// set) there is no slope, and the trial is the bracket's midpoint.
//
// The objective returns f(x) and writes its gradient; it returns +inf, and
// need not write the gradient, where x is outside the set on which f is
// defined (the line search then shortens the step). Errors are exceptions and
// propagate: they are never read as "outside".
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "lgssm/fit.hpp"

namespace lgssm::internal {

using Objective = std::function<double(const Vector&, Vector&)>;

struct LbfgsRun {
  Vector x;
  double f = 0.0;
  int iterations = 0;
  int evaluations = 0;  // calls of the objective
  Termination termination = Termination::kMaxIterations;
  std::string message;
};

// Minimizes objective from x. Of `options` it uses max_iters, memory,
// gradient_tolerance (stop when |g|_inf <= tol * max(1, |f|)) and
// function_tolerance (stop when the decrease of an iteration is at most
// tol * max(1, |f|)). on_iterate(i, f) is called at each iterate (the start is
// iterate 0); returning false stops (kStopped). A start where f is not finite,
// or a line search that finds no decrease, ends the run (kNumericalFailure
// and kConverged respectively, with a message that says which).
LbfgsRun minimize_lbfgs(const Objective& objective, Vector x, const LbfgsOptions& options,
                        const std::function<bool(int, double)>& on_iterate);

// Maximizes log p(y) by minimizing objective(x, grad) = -log p(y) / scale,
// recording log p(y) at each iterate into `history`, honouring the options'
// callback and filling `summary` (the shared body of the fit_lbfgs
// functions). Returns the last iterate.
Vector maximize_log_prob(const Objective& objective, Vector x, const LbfgsOptions& options, double scale,
                         std::vector<double>& history, FitSummary& summary);

// The same, then, when it converges, a second L-BFGS run from its end over
// standard deviations: the entries of x at `log_sd` (log standard
// deviations, log_sd_coordinates in unconstrained.hpp) become z_i = exp(x_i),
// the standard deviation itself, as statsmodels optimizes them. In log
// coordinates a variance's boundary 0 lies at x_i = -inf and every derivative
// there vanishes like exp(2 x_i), so a variance that overshoots towards 0 is
// stranded on a plateau where the tolerances fire far from the maximum; in z
// the boundary is at a finite distance and the objective is smooth there
// (f = f_0 + c z_i^2 + ...). The log coordinates come first because they are
// scale-free (z spans the variances' scales, which may differ by many orders
// of magnitude) and keep the run away from tiny variances, where the gradient
// of Fisher's identity loses accuracy. The objective is evaluated at
// x_i = log |z_i| with d/dz_i = (d/dx_i) / z_i; z_i = 0 exactly is outside
// (+inf). The runs share max_iters; the history, the callback's iteration
// numbers and the summary run on across both. Returns x.
Vector maximize_log_prob(const Objective& objective, Vector x, const std::vector<Eigen::Index>& log_sd,
                         const LbfgsOptions& options, double scale, std::vector<double>& history, FitSummary& summary);

}  // namespace lgssm::internal
