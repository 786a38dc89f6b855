/// @file
/// Parameter properties: which parameters a fit changes, and the structure
/// each covariance keeps.
#pragma once

#include <optional>

#include "lgssm/params.hpp"

namespace lgssm {

/// Structure kept by a covariance through fitting.
enum class CovStructure { kFull, kDiagonal, kScalar };

/// The matrix of `structure` nearest to the square matrix `cov` in the
/// Frobenius norm: the symmetric (cov + cov^T) / 2 (full), the diagonal of cov
/// (diagonal), or the mean of that diagonal times I (scalar). The M-step's
/// covariance update (m_step in learn.hpp); no argument checks.
Matrix project(const Matrix& cov, CovStructure structure);

/// An affine constraint on the entries of a parameter matrix M (rows x cols),
/// MARSS's form (Holmes 2012, "Derivation of an EM algorithm for constrained
/// and unconstrained multivariate autoregressive state-space (MARSS) models",
/// Sec. 2):
///   vec(M) = fixed + design * beta,
/// with vec stacking the columns. beta holds the free values a fit changes:
/// an entry whose row of `design` is zero is fixed at its `fixed` value, and
/// entries that share one column of `design` share one value. `design` must
/// have full column rank.
///
/// On a covariance (n x n) the constraint must keep it a covariance whose
/// maximum-likelihood update is closed form:
/// - symmetric: the entries (i, j) and (j, i) have the same fixed value and
///   the same row of `design`;
/// - the components split into free ones (a free value enters their row) and
///   fixed ones; every fixed entry in the row of a free component is zero, so
///   the covariance is block diagonal: a fixed block (zero for components
///   without noise: deterministic states, exactly observed emissions) and a
///   free block;
/// - on the free block, the span V of the design's columns is a Jordan
///   algebra: X Y + Y X lies in V for X, Y in V (diagonal with free or shared
///   variances, block diagonal with full, diagonal, equal-variance or
///   equal-variance-and-covariance blocks, any of these tied across blocks).
/// Then the MLE over V of a Gaussian covariance with scatter S is the
/// Frobenius projection of S onto V (Sigma^-1 X Sigma^-1 lies in V for X and
/// Sigma in V, so the stationarity condition tr(Sigma^-1 (S - Sigma) Sigma^-1 X)
/// = 0 for all X in V is the projection's); Holmes (2012), Sec. 5, gives the
/// update for the diagonal and equal-variance cases. The constraint replaces
/// the covariance's structure (leave it kFull).
struct Affine {
  Vector fixed;   ///< (rows * cols,)
  Matrix design;  ///< (rows * cols, number of free values)
};

/// The free values beta = design^+ (vec(m) - fixed) of the matrix nearest `m`
/// (least squares in vec(m), by a column-pivoted QR of the design) that
/// satisfies `a`; `m` itself when it satisfies it. No argument checks.
Vector free_values(const Affine& a, const Matrix& m);

/// Which parameters are fitted (true) or frozen (false), and the structure of
/// each covariance. A frozen parameter is never changed; the others are fitted
/// given it (conditional M-steps; no gradient component for it).
struct ParamProps {
  struct Initial {
    bool mean = true;
    bool cov = true;
    CovStructure cov_structure = CovStructure::kFull;
    std::optional<Affine> mean_constraint;  ///< with `mean` trainable: the entries it fits
    std::optional<Affine> cov_constraint;   ///< with `cov` trainable: a covariance constraint (see Affine)
  };
  struct Conditional {
    bool weights = true;
    bool bias = true;
    bool input_weights = true;
    bool cov = true;
    CovStructure cov_structure = CovStructure::kFull;
    /// With the parameter trainable: the entries a fit changes (unset: all of them).
    std::optional<Affine> weights_constraint, bias_constraint, input_weights_constraint;
    /// With `cov` trainable and time-invariant: a covariance constraint (see Affine).
    std::optional<Affine> cov_constraint;
  };
  Initial initial;
  Conditional dynamics;
  Conditional emissions;
};

/// Checks `props` against `params`: a structured covariance must have that
/// structure; trainable dynamics parameters must be time-invariant; emission
/// parameters are either all per step (learned per step) or the per-step ones
/// are frozen (the trainable ones time-invariant, learned from the statistics
/// pooled over the steps: a time-varying regression's H_t with a shared R);
/// a constraint belongs to a trainable, time-invariant parameter, has the
/// parameter's size, finite entries and a design of full column rank; a
/// covariance constraint has the form Affine describes, its covariance the
/// structure kFull and a value that satisfies it.
void validate(const Params& params, const ParamProps& props);

/// Whether any parameter of `props` has an affine constraint.
bool has_constraints(const ParamProps& props);

/// `params` with every constrained parameter moved to the nearest matrix that
/// satisfies its constraint (least squares in vec(M): beta = design^+ (vec(M) - fixed)).
Params project_constraints(const Params& params, const ParamProps& props);

}  // namespace lgssm
