// The map between the trainable parameters and one unconstrained vector
// (private): each trainable parameter is a Slot, a named view of its value.
// Shared by the discrete-time fits (learn.cpp) and the continuous-time ones.
#pragma once

#include <Eigen/Cholesky>
#include <optional>
#include <string>
#include <vector>

#include "lgssm/learn.hpp"

namespace lgssm::internal {

// A trainable parameter: its name, its value (covariances are symmetric, so a
// row-major view of a column-major matrix is the same matrix), its kind, and
// its affine constraint if it has one (then its unconstrained values are the
// constraint's free values beta: value = mat(fixed + design beta)).
struct Slot {
  std::string name;
  MatrixMap value;
  bool is_cov;
  CovStructure structure;
  const Affine* affine = nullptr;
};

MatrixMap as_map(Vector& v);
// The entries of m stacked column by column (MARSS's vec).
Vector vec(const Eigen::Ref<const Matrix>& m);
MatrixMap as_map(Matrix& m);

// The trainable parameters of `p`, in a fixed order; throws for a trainable
// per-step series (gradient fitting needs time-invariant parameters).
std::vector<Slot> trainable_slots(Params& p, const ParamProps& props);
// The same over parameter groups; `dynamics` may be null (continuous time).
// With `every_entry`, each entry of a trainable per-step series gets a slot of
// its own (for EM extrapolation, which needs no gradient) instead of an error.
std::vector<Slot> trainable_slots(InitialParams& initial, LinearGaussianParams* dynamics,
                                  LinearGaussianParams& emissions, const ParamProps& props, bool every_entry = false);

// Whether the slot is a covariance with a constraint whose free values are
// variances (positive design entries on diagonal positions only, at most one
// per entry): those are mapped as x = log(beta) / 2. The other constrained
// covariances are mapped by the exponential map of their free block (x the
// coordinates of logm, unconstrained.cpp).
bool holds_variances(const Slot& s);
// The components of an n x n covariance constraint that a free value enters.
std::vector<Eigen::Index> free_components(const Affine& a, Eigen::Index n);

// The number of unconstrained values of a slot (full covariance n (n + 1) / 2,
// diagonal n, scalar 1, other parameters their entries), and of a slot list:
// the length of pack's vector.
Eigen::Index unconstrained_size(const Slot& s);
Eigen::Index unconstrained_size(const std::vector<Slot>& slots);

// The slots' values as one unconstrained vector (see to_unconstrained in learn.hpp).
Vector pack(const std::vector<Slot>& slots);
// The positions in pack's vector that hold log standard deviations: the free
// variances of diagonal and scalar covariances and of variance constraints
// (holds_variances), in order. (Full covariances' log Cholesky diagonals are
// not among them.)
std::vector<Eigen::Index> log_sd_coordinates(const std::vector<Slot>& slots);
// Writes the values of `x` (as laid out by pack) into the slots.
void unpack(const Vector& x, std::vector<Slot>& slots);
// The gradient w.r.t. the unconstrained vector, given the gradient w.r.t. each
// slot's value (a slot list over a gradient container of the same layout).
Vector chain(const std::vector<Slot>& values, const std::vector<Slot>& gradients);

// log |det J| of the map x -> slot values and its gradient (log_det_jacobian in learn.hpp).
double log_det_jacobian(const Vector& x, const std::vector<Slot>& slots, Vector& grad);

// Throws unless `cov` has the structure `s` (diagonal: zero off-diagonal;
// scalar: also equal diagonal entries).
void check_structure(const std::string& name, const Eigen::Ref<const Matrix>& cov, CovStructure s);

// The Cholesky factor of a covariance that must be positive definite here.
Eigen::LLT<Matrix> factor_pd(const std::string& name, const Eigen::Ref<const Matrix>& cov);

}  // namespace lgssm::internal
