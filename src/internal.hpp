// Entry points without argument checks, for callers that validated already (private).
#pragma once

#include <vector>

#include "lgssm/inference.hpp"
#include "lgssm/stats.hpp"

namespace lgssm::internal {

SmootherResult smoother_unchecked(const Params& params, const Sequence& seq);

// The E-step summed over seqs[indices[0]], seqs[indices[1]], ... (in parallel).
SufficientStats sufficient_stats_unchecked(const Params& params, const std::vector<Sequence>& seqs,
                                           const std::vector<size_t>& indices,
                                           bool per_step_emissions, int num_threads);

}  // namespace lgssm::internal
