// Argument checks shared by the entry points (private).
#pragma once

#include <string>

#include "lgssm/params.hpp"

namespace lgssm {

// Per-step series must have 1 entry, or one per step (emissions) / transition
// (dynamics) of a sequence of `num_timesteps` steps.
void check_series_lengths(const Params& params, Eigen::Index num_timesteps);

// `inputs` must be (num_timesteps, input_dim) and finite, or empty when input_dim is 0.
void check_inputs(const Params& params, const RowMatrix& inputs, Eigen::Index num_timesteps,
                  const std::string& name);

}  // namespace lgssm
