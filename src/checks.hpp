// Argument checks shared by the entry points (private: lgssm::internal).
#pragma once

#include <string>

#include "lgssm/error.hpp"
#include "lgssm/params.hpp"

namespace lgssm::internal {

// Per-step series must have 1 entry, or one per step (emissions) / transition
// (dynamics) of a sequence of `num_timesteps` steps.
void check_series_lengths(const Params& params, Eigen::Index num_timesteps);

// `inputs` must be (num_timesteps, input_dim) and finite, or empty when input_dim is 0.
void check_inputs(const Params& params, const RowMatrix& inputs, Eigen::Index num_timesteps, const std::string& name);

// Throws lgssm::invalid_argument naming initial.diffuse when the initial
// state has a diffuse part: `what` (e.g. "filter_init") takes known ones only.
void check_known_initial(const Params& params, const std::string& what);

// Option checks, naming the option: a count >= low (printed as an integer), a
// finite tolerance >= 0, a finite value > 0, a value in [0, 1).
void check_count(const char* name, int value, int low);
void check_tolerance(const char* name, double value);
void check_positive(const char* name, double value);
void check_unit_interval(const char* name, double value);

// Every entry finite, else "name: expected finite values, got nan at (i, j)".
void check_finite(const std::string& name, const Eigen::Ref<const Matrix>& m);
// Whether every entry is finite, in one vectorized sum: a non-finite entry
// times 0 is NaN, a finite one 0.
template <class Derived>
bool all_finite(const Eigen::DenseBase<Derived>& m) {
  return (m.derived().array() * 0.0).sum() == 0.0;
}

// kSemidefinite: symmetric positive semidefinite. kZeroRowsOrDefinite (an
// emission covariance): zero rows and columns for exactly observed
// components, positive definite on the rest.
enum class Definiteness { kSemidefinite, kZeroRowsOrDefinite };

// Tolerances, relative to the matrix's scale: asymmetry against the largest
// entry; negative eigenvalues (semidefinite) and the smallest eigenvalue
// (definite) against the largest eigenvalue.
inline constexpr double kSymmetryTolerance = 1e-10;
inline constexpr double kSemidefiniteTolerance = 1e-10;
inline constexpr double kDefiniteTolerance = 1e-13;

// Throws lgssm::invalid_argument naming `name` and what was wrong.
void check_covariance(const std::string& name, const Eigen::Ref<const RowMatrix>& m, Definiteness kind);

// Whether `m` is finite and a covariance of the kind (check_covariance
// without the throw).
bool is_covariance(const Eigen::Ref<const RowMatrix>& m, Definiteness kind);

// Whether the values of parameters whose shapes are valid (as those of
// from_unconstrained) pass validate: finite, and covariances as validate
// requires. Does not throw: for objectives, where invalid values are a point
// outside the valid set and not an error.
bool has_valid_values(const Params& params);

}  // namespace lgssm::internal
