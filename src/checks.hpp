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

// Every entry finite, else "name: expected finite values, got nan at (i, j)".
void check_finite(const std::string& name, const Eigen::Ref<const Matrix>& m);

enum class Definiteness { kSemidefinite, kDefinite };

// Symmetric within a relative 1e-8 and positive (semi)definite within a
// relative 1e-10 (definite: smallest eigenvalue above 1e-13 of the largest).
void check_covariance(const std::string& name, const Eigen::Ref<const Matrix>& m, Definiteness kind);

}  // namespace lgssm
