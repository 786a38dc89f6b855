// A continuous-time model as the discrete-time model of its observation
// times, and its E-step with the transitions grouped by step length
// (private; shared by continuous_stats.cpp and continuous_fit.cpp).
#pragma once

#include <string>
#include <vector>

#include "lgssm/continuous.hpp"
#include "unconstrained.hpp"

namespace lgssm::internal {

constexpr double kSameGap = 1e-10;  // steps within this relative distance are one group

// Distinct gaps (merged within a relative kSameGap) and each gap's group.
struct GapGroups {
  std::vector<double> dts;
  std::vector<std::vector<Eigen::Index>> of_sequence;  // per sequence, per transition
};

GapGroups group_gaps(const std::vector<const Vector*>& times);
GapGroups group_gaps(const std::vector<TimedSequence>& seqs);

// The discrete model with one dynamics entry per transition, from the
// discretizations of the distinct gaps (one constant entry for a single gap).
Params assemble(const ContinuousParams& params, const std::vector<Discretization>& discs,
                const std::vector<Eigen::Index>& groups);

// The discretizations of the distinct gaps `dts` (one identity transition for
// none); not finite where a transition overflows.
std::vector<Discretization> discretize_gaps(const ContinuousParams& params, const std::vector<double>& dts);
// Whether every transition is finite.
bool all_finite(const std::vector<Discretization>& discs);
// discretize_gaps, throwing lgssm::invalid_argument naming `times_name` where
// a transition overflows.
std::vector<Discretization> discretize_all(const ContinuousParams& params, const std::vector<double>& dts,
                                           const std::string& times_name = "times");

// The discrete model with one placeholder (identity) transition: what the
// initial-state and emission code of the discrete model needs.
Params with_identity_dynamics(const ContinuousParams& params);

// Discrete-time properties for the initial state and emissions, dynamics frozen.
ParamProps discrete_props(const ContinuousProps& props);

// The sequences without their times.
std::vector<Sequence> plain_sequences(const std::vector<TimedSequence>& seqs);

// The E-step over all sequences with transitions grouped by gap, from the
// gaps' (finite) discretizations. Each sequence's statistics hold only the
// groups it touches (numbered locally), which are then added into the global
// groups.
ContinuousStats grouped_stats(const ContinuousParams& params, const std::vector<TimedSequence>& seqs,
                              const GapGroups& gaps, const std::vector<Discretization>& discs, int num_threads);

// sum_g E[log N(z_t | A_g z_{t-1}, Sigma_g)] over the transition groups, and
// (when grad_drift is given) its gradient w.r.t. F and Q_c: per group, the
// gradients w.r.t. A and Sigma, then back through the scaling and squaring
// (transition_adjoint). -inf where a transition overflows.
double dynamics_log_lik(const ContinuousDynamics& dyn, const std::vector<double>& dts,
                        const std::vector<RegressionStats>& groups, Matrix* grad_drift, Matrix* grad_diffusion,
                        int num_threads);

// Slots of the trainable dynamics parameters F (plain) and Q_c (covariance).
std::vector<Slot> dynamics_slots(ContinuousDynamics& d, const ContinuousProps& props);

// Checks the parameters, and every sequence with its times.
void validate_data(const ContinuousParams& params, const std::vector<TimedSequence>& seqs);
// Checks the properties against (valid) parameters.
void validate_props(const ContinuousParams& params, const ContinuousProps& props);
// Both.
void validate_fit(const ContinuousParams& params, const ContinuousProps& props, const std::vector<TimedSequence>& seqs);

}  // namespace lgssm::internal
