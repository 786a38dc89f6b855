// The unchecked entry points (private): the computations behind the public
// functions, without their argument checks, for callers that validated already.
#pragma once

#include <functional>
#include <string>
#include <vector>

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
                                           const std::vector<size_t>& indices, bool per_step_emissions,
                                           int num_threads);

}  // namespace lgssm::internal
