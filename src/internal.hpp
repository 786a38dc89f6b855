// Entry points without argument checks, for callers that validated already (private).
#pragma once

#include <vector>

#include <functional>
#include <string>

#include "lgssm/inference.hpp"
#include "lgssm/learn.hpp"
#include "lgssm/stats.hpp"

namespace lgssm::internal {

// W = [weights, input_weights, bias] of step t: the regression weights of
// the statistics (stats.hpp).
Matrix stacked(const LinearGaussianParams& c, Eigen::Index t);

SmootherResult smoother_unchecked(const Params& params, const Sequence& seq);

// The E-step of one sequence; transition t-1 -> t adds to dynamics group
// dynamics_groups[t - 1] (all to group 0 when the vector is empty).
SufficientStats sufficient_stats_one(const Params& params, const Sequence& seq, bool per_step_emissions,
                                     const std::vector<Eigen::Index>& dynamics_groups,
                                     Eigen::Index num_dynamics_groups);

// The E-step summed over seqs[indices[0]], seqs[indices[1]], ... (in parallel).
SufficientStats sufficient_stats_unchecked(const Params& params, const std::vector<Sequence>& seqs,
                                           const std::vector<size_t>& indices,
                                           bool per_step_emissions, int num_threads);

struct LbfgsRun {
  Vector x;
  double f = 0.0;
  int iterations = 0;
  Termination termination = Termination::kMaxIterations;
  std::string message;
};

// Minimizes objective(x, grad) -> f by L-BFGS (options: max_iters, memory,
// tolerances); on_iterate(i, f) is called at each iterate, return false to
// stop.
LbfgsRun minimize_lbfgs(const std::function<double(const Vector&, Vector&)>& objective, Vector x,
                        const LbfgsOptions& options, const std::function<bool(int, double)>& on_iterate);

// Maximizes log p(y) by minimizing objective(x, grad) = -log p(y) / scale,
// recording log p(y) at each iterate into `history` and honouring the
// options' callback (the shared body of the fit_lbfgs functions).
LbfgsRun maximize_log_prob(const std::function<double(const Vector&, Vector&)>& objective, Vector x,
                           const LbfgsOptions& options, double scale, std::vector<double>& history);

}  // namespace lgssm::internal
