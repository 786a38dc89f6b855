// Small dense linear-algebra kernels used by the time loops (private).
// Everything here works in caller-provided storage and allocates nothing once
// sized, so the loops that call it stay free of heap allocation.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "lgssm/params.hpp"

namespace lgssm::internal {

// A = (A + A^T) / 2 in place.
inline void symmetrize(Matrix& a) {
  for (Eigen::Index j = 0; j < a.cols(); ++j)
    for (Eigen::Index i = 0; i < j; ++i) a(i, j) = a(j, i) = 0.5 * (a(i, j) + a(j, i));
}

// Factors a symmetric positive semidefinite A as C C^T: Cholesky when A is
// definite, otherwise the pivoted LDL^T with negative round-off in D clamped
// to zero (C = P^T L D^{1/2}).
class PsdFactor {
 public:
  explicit PsdFactor(Eigen::Index n) : llt_(n), ldlt_(n), factor_(n, n) {}

  const Matrix& compute(const Eigen::Ref<const Matrix>& a) {
    llt_.compute(a);
    if (llt_.info() == Eigen::Success) {
      factor_ = llt_.matrixL();
      return factor_;
    }
    ldlt_.compute(a);
    factor_ = ldlt_.matrixL();
    const auto& d = ldlt_.vectorD();
    for (Eigen::Index j = 0; j < d.size(); ++j) factor_.col(j) *= std::sqrt(std::max(d(j), 0.0));
    factor_ = ldlt_.transpositionsP().transpose() * factor_;
    return factor_;
  }
  const Matrix& factor() const { return factor_; }

 private:
  Eigen::LLT<Matrix> llt_;
  Eigen::LDLT<Matrix> ldlt_;
  Matrix factor_;
};

#ifdef LGSSM_CHECK_NO_MALLOC
// While alive, any heap allocation by Eigen aborts (test builds only).
struct NoMallocScope {
  NoMallocScope() { Eigen::internal::set_is_malloc_allowed(false); }
  ~NoMallocScope() { Eigen::internal::set_is_malloc_allowed(true); }
};
#else
struct NoMallocScope {};
#endif

}  // namespace lgssm::internal
