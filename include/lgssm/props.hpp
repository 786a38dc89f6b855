/// @file
/// Parameter properties: which parameters a fit changes, and the structure
/// each covariance keeps.
#pragma once

#include "lgssm/params.hpp"

namespace lgssm {

/// Structure kept by a covariance through fitting.
enum class CovStructure { kFull, kDiagonal, kScalar };

/// The matrix of `structure` nearest to the square matrix `cov` in the
/// Frobenius norm: the symmetric (cov + cov^T) / 2 (full), the diagonal of cov
/// (diagonal), or the mean of that diagonal times I (scalar). The M-step's
/// covariance update (m_step in learn.hpp); no argument checks.
Matrix project(const Matrix& cov, CovStructure structure);

/// Which parameters are fitted (true) or frozen (false), and the structure of
/// each covariance. A frozen parameter is never changed; the others are fitted
/// given it (conditional M-steps; no gradient component for it).
struct ParamProps {
  struct Initial {
    bool mean = true;
    bool cov = true;
    CovStructure cov_structure = CovStructure::kFull;
  };
  struct Conditional {
    bool weights = true;
    bool bias = true;
    bool input_weights = true;
    bool cov = true;
    CovStructure cov_structure = CovStructure::kFull;
  };
  Initial initial;
  Conditional dynamics;
  Conditional emissions;
};

/// Checks `props` against `params`: a structured covariance must have that
/// structure; trainable dynamics parameters must be time-invariant; emission
/// parameters are either all time-invariant or all per step (learned per step).
void validate(const Params& params, const ParamProps& props);

}  // namespace lgssm
