// Small dense linear-algebra kernels used by the time loops (private).
// Apart from the result allocators (called before the loops), everything here
// works in caller-provided storage and allocates nothing once sized, so the
// loops that call it stay free of heap allocation.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cstdint>
#include <type_traits>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "lgssm/params.hpp"

namespace lgssm::internal {

// The time loops are templates on the state dimension N: fixed-size Eigen
// types for the small dimensions below, whose n x n algebra then compiles to
// straight-line code, and Eigen::Dynamic for any other. fn(N) is called with
// N an std::integral_constant.
template <class Fn>
decltype(auto) dispatch_state_dim(Eigen::Index n, Fn&& fn) {
  switch (n) {
    case 1: return fn(std::integral_constant<int, 1>());
    case 2: return fn(std::integral_constant<int, 2>());
    case 3: return fn(std::integral_constant<int, 3>());
    case 4: return fn(std::integral_constant<int, 4>());
    default: return fn(std::integral_constant<int, Eigen::Dynamic>());
  }
}

template <int N>
using VectorN = Eigen::Matrix<double, N, 1>;
template <int N>
using MatrixN = Eigen::Matrix<double, N, N>;

// Row-major R x C (R, C: sizes or Eigen::Dynamic), the layout of series
// entries and of one row of a RowMatrix; Eigen spells one column ColMajor.
template <int R, int C>
using RowMajorN = Eigen::Matrix<double, R, C, (C == 1 && R != 1) ? Eigen::ColMajor : Eigen::RowMajor>;

// A series entry seen with compile-time sizes.
template <int R, int C>
Eigen::Map<const RowMajorN<R, C>> view(const ConstMatrixMap& m) {
  return Eigen::Map<const RowMajorN<R, C>>(m.data(), m.rows(), m.cols());
}
template <int R, int C>
Eigen::Map<RowMajorN<R, C>> view(MatrixMap m) {
  return Eigen::Map<RowMajorN<R, C>>(m.data(), m.rows(), m.cols());
}
// Row t of a (num_timesteps, n) RowMatrix as an n-vector.
template <int N, class Rows>
auto row_view(Rows& m, Eigen::Index t) {
  using Map = std::conditional_t<std::is_const_v<Rows>, Eigen::Map<const VectorN<N>>, Eigen::Map<VectorN<N>>>;
  return Map(m.row(t).data(), m.cols());
}

// On Linux, asks for transparent huge pages for the whole 2 MiB pages within
// `count` doubles from `data`, so that first writes to a large result fault
// once per 2 MiB instead of once per 4 KiB page.
inline void advise_huge_pages(double* data, Eigen::Index count) {
#ifdef __linux__
  constexpr std::uintptr_t kHuge = std::uintptr_t(1) << 21;
  const auto begin = (reinterpret_cast<std::uintptr_t>(data) + kHuge - 1) & ~(kHuge - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(data + count) & ~(kHuge - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)data, (void)count;
#endif
}
// Result storage, allocated before the loops and left uninitialized (the
// loops write every entry): `size` entries of shape (rows, cols), or a
// (rows, cols) RowMatrix.
inline MatrixSeries result_series(Eigen::Index size, Eigen::Index rows, Eigen::Index cols) {
  MatrixSeries s(0, rows, cols);
  s.flat().resize(size, rows * cols);
  advise_huge_pages(s.data(), s.flat().size());
  return s;
}
inline void resize_result(RowMatrix& m, Eigen::Index rows, Eigen::Index cols) {
  m.resize(rows, cols);
  advise_huge_pages(m.data(), m.size());
}

// A = (A + A^T) / 2 in place.
template <class Derived>
void symmetrize(Eigen::MatrixBase<Derived>& a) {
  for (Eigen::Index j = 0; j < a.cols(); ++j)
    for (Eigen::Index i = 0; i < j; ++i) a(i, j) = a(j, i) = 0.5 * (a(i, j) + a(j, i));
}

// Factors a symmetric positive semidefinite A as C C^T: Cholesky when A is
// definite, otherwise the pivoted LDL^T with negative round-off in D clamped
// to zero (C = P^T L D^{1/2}).
template <int N = Eigen::Dynamic>
class PsdFactor {
 public:
  using Mat = MatrixN<N>;
  explicit PsdFactor(Eigen::Index n) : llt_(n), ldlt_(n), factor_(n, n) {}

  template <class Derived>
  const Mat& compute(const Eigen::MatrixBase<Derived>& a) {
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
  const Mat& factor() const { return factor_; }

 private:
  Eigen::LLT<Mat> llt_;
  Eigen::LDLT<Mat> ldlt_;
  Mat factor_;
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
