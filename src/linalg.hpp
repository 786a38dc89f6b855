// Small dense linear-algebra kernels used by the time loops (private).
// Apart from the result allocators (called before the loops), everything here
// works in caller-provided storage and allocates nothing once sized, so the
// loops that call it stay free of heap allocation.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Householder>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "lgssm/params.hpp"

namespace lgssm::internal {

constexpr double kLog2Pi = 1.8378770664093454835606594728112;  // log(2 pi)
constexpr double kLogPi = 1.1447298858494001741434273513531;   // log(pi)
constexpr double kInf = std::numeric_limits<double>::infinity();

// The time loops are templates on the state dimension N: fixed-size Eigen
// types for the small dimensions below, whose n x n algebra then compiles to
// straight-line code, and Eigen::Dynamic for any other. fn(N) is called with
// N an std::integral_constant.
template <class Fn>
decltype(auto) dispatch_state_dim(Eigen::Index n, Fn&& fn) {
  switch (n) {
    case 1:
      return fn(std::integral_constant<int, 1>());
    case 2:
      return fn(std::integral_constant<int, 2>());
    case 3:
      return fn(std::integral_constant<int, 3>());
    case 4:
      return fn(std::integral_constant<int, 4>());
    default:
      return fn(std::integral_constant<int, Eigen::Dynamic>());
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
Eigen::Map<const RowMajorN<R, C>> sized(const ConstMatrixMap& m) {
  return Eigen::Map<const RowMajorN<R, C>>(m.data(), m.rows(), m.cols());
}
template <int R, int C>
Eigen::Map<RowMajorN<R, C>> sized(MatrixMap m) {
  return Eigen::Map<RowMajorN<R, C>>(m.data(), m.rows(), m.cols());
}
// Row t of a (num_timesteps, n) RowMatrix as an n-vector.
template <int N, class Rows>
auto sized_row(Rows& m, Eigen::Index t) {
  using Map = std::conditional_t<std::is_const_v<Rows>, Eigen::Map<const VectorN<N>>, Eigen::Map<VectorN<N>>>;
  return Map(m.row(t).data(), m.cols());
}

// Step t of `width` interleaved sequences, a (num_timesteps * width, dim)
// RowMatrix whose row t * width + j is sequence j's step t, as a (dim, width)
// column-major matrix (column j: sequence j); with width 1, row t as a
// vector. Empty when the array is (no inputs).
template <int Rows, int G, class Array>
auto step_columns(Array& m, Eigen::Index t, Eigen::Index width) {
  using M = Eigen::Matrix<double, Rows, G>;
  using Map = std::conditional_t<std::is_const_v<Array>, Eigen::Map<const M>, Eigen::Map<M>>;
  if (m.size() == 0) return Map(nullptr, 0, width);
  return Map(m.data() + t * width * m.cols(), m.cols(), width);
}
// a * b for the mean recursions on columns of sequences (KalmanFilter's G):
// the coefficient-based product when a's inner dimension is a fixed (small)
// size, where a blocked GEMM's packing costs more than the product itself
// (b has as many columns as the batch's block); Eigen's choice otherwise.
template <class A, class B>
auto columns_product(const Eigen::MatrixBase<A>& a, const Eigen::MatrixBase<B>& b) {
  if constexpr (A::ColsAtCompileTime != Eigen::Dynamic)
    return a.lazyProduct(b);
  else
    return a * b;
}
// Row t of a (num_timesteps, dim) array as a vector; empty when the array is.
inline Eigen::Map<const Vector> row_at(const RowMatrix& m, Eigen::Index t) {
  return step_columns<Eigen::Dynamic, 1>(m, t, 1);
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
  // llt_ and ldlt_ are workspaces: a copy gets fresh ones (copying a
  // decomposition Eigen never computed reads its uninitialized status).
  PsdFactor(const PsdFactor& o) : PsdFactor(o.factor_.rows()) { factor_ = o.factor_; }
  PsdFactor& operator=(const PsdFactor& o) {
    if (this == &o) return *this;
    if (o.factor_.rows() != factor_.rows()) {
      this->~PsdFactor();
      new (this) PsdFactor(o);
    } else {
      factor_ = o.factor_;
    }
    return *this;
  }

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

// Orthogonal triangularizations (Householder reflections, Golub & Van Loan,
// "Matrix Computations", 4th ed., Alg. 5.1.1 and 5.2.1). Both work in place
// on any Eigen block; `work` must hold at least a.rows() (resp. a.cols())
// doubles, so nothing is allocated.

// A <- H A (left) or A H (right) for the Householder reflection
// H = I - tau v v^T, v = [1; essential], without temporaries (Eigen's own
// applyHouseholderOn* evaluates an outer product into heap memory).
template <class Derived, class Essential>
void reflect_left(Eigen::MatrixBase<Derived>&& a, const Essential& essential, double tau, double* work) {
  if (tau == 0.0) return;
  Eigen::Map<Eigen::RowVectorXd> w(work, a.cols());  // v^T A
  auto bottom = a.bottomRows(a.rows() - 1);
  for (Eigen::Index j = 0; j < a.cols(); ++j) w(j) = a(0, j) + essential.dot(bottom.col(j));
  for (Eigen::Index j = 0; j < a.cols(); ++j) {
    a(0, j) -= tau * w(j);
    bottom.col(j) -= (tau * w(j)) * essential;
  }
}
template <class Derived, class Essential>
void reflect_right(Eigen::MatrixBase<Derived>&& a, const Essential& essential, double tau, double* work) {
  if (tau == 0.0) return;
  Eigen::Map<Eigen::VectorXd> w(work, a.rows());  // A v
  auto right = a.rightCols(a.cols() - 1);
  w = a.col(0);
  for (Eigen::Index j = 0; j < right.cols(); ++j) w += essential(j) * right.col(j);
  a.col(0) -= tau * w;
  for (Eigen::Index j = 0; j < right.cols(); ++j) right.col(j) -= (tau * essential(j)) * w;
}

// Reflects A from the right, A <- A Theta with Theta orthogonal (so that
// A A^T is unchanged), until its first k rows are lower trapezoidal: A(i, j) = 0
// for i < k, j > i. Rows k.. are carried along: this is the "array" step of
// the square-root filters and smoothers (Kailath, Sayed & Hassibi, "Linear
// Estimation", 2000, Sec. 12.3), in which pre-array * Theta = post-array.
// With `perm` (size >= k), the first k rows are pivoted, each step taking the
// row of largest remaining norm (QR with column pivoting of A^T, Golub & Van
// Loan Alg. 5.4.1), so that |A(0, 0)| >= |A(1, 1)| >= ... reveals the rank;
// perm[i] is the original index of row i.
template <class Derived, class Perm = std::nullptr_t>
void lower_triangularize(Eigen::MatrixBase<Derived>& a, Eigen::Index k, double* work, Perm* perm = nullptr) {
  const Eigen::Index rows = a.rows(), cols = a.cols();
  if constexpr (!std::is_same_v<Perm, std::nullptr_t>)
    for (Eigen::Index i = 0; i < k; ++i) (*perm)[i] = i;
  for (Eigen::Index i = 0; i < std::min(k, cols); ++i) {
    if constexpr (!std::is_same_v<Perm, std::nullptr_t>) {
      Eigen::Index best = i;
      double best_norm = a.row(i).tail(cols - i).squaredNorm();
      for (Eigen::Index r = i + 1; r < k; ++r) {
        const double norm = a.row(r).tail(cols - i).squaredNorm();
        if (norm > best_norm) best = r, best_norm = norm;
      }
      if (best != i) {
        a.row(i).swap(a.row(best));
        std::swap((*perm)[i], (*perm)[best]);
      }
    }
    auto row = a.row(i).tail(cols - i);
    double tau = 0.0, beta = 0.0;
    row.makeHouseholderInPlace(tau, beta);
    if (rows > i + 1) reflect_right(a.bottomRightCorner(rows - i - 1, cols - i), row.tail(cols - i - 1), tau, work);
    row(0) = beta;
    row.tail(cols - i - 1).setZero();
  }
}

// Thin QR of W (rows x cols, rows >= 1): W = Q1 T with Q1 (rows x k) having
// orthonormal columns and T (k x cols) upper trapezoidal, k = min(rows, cols).
// W is overwritten by the reflectors; `tau` holds >= k doubles. Sort W's rows
// by decreasing norm first for row-wise backward stability when their scales
// differ (Cox & Higham, BIT 38, 1998).
template <class W, class Q, class T>
void thin_qr(Eigen::MatrixBase<W>& w, Eigen::MatrixBase<Q>& q1, Eigen::MatrixBase<T>& t, double* tau, double* work) {
  const Eigen::Index rows = w.rows(), cols = w.cols(), k = std::min(rows, cols);
  for (Eigen::Index j = 0; j < k; ++j) {
    auto col = w.col(j).tail(rows - j);
    double beta = 0.0;
    col.makeHouseholderInPlace(tau[j], beta);
    if (cols > j + 1) reflect_left(w.bottomRightCorner(rows - j, cols - j - 1), col.tail(rows - j - 1), tau[j], work);
    col(0) = beta;
  }
  t.setZero();
  t.topRows(k) = w.topRows(k).template triangularView<Eigen::Upper>();
  q1.setZero();
  q1.topLeftCorner(k, k).setIdentity();
  for (Eigen::Index j = k - 1; j >= 0; --j)
    reflect_left(q1.bottomRightCorner(rows - j, k - j), w.col(j).tail(rows - j - 1), tau[j], work);
}

#ifdef LGSSM_CHECK_NO_MALLOC
// Whether the no-malloc checks are on (test builds only): unless the
// environment sets LGSSM_CHECK_NO_MALLOC=0, which turns them off and
// parallel_for's threads on (Eigen's no-malloc flag is process-wide, so the
// checks need one thread), so that one build runs the suite both ways.
bool no_malloc_checks();
// While alive, any heap allocation by Eigen aborts (test builds with the checks on).
struct NoMallocScope {
  NoMallocScope() : on(no_malloc_checks()) {
    if (on) Eigen::internal::set_is_malloc_allowed(false);
  }
  ~NoMallocScope() {
    if (on) Eigen::internal::set_is_malloc_allowed(true);
  }
  NoMallocScope(const NoMallocScope&) = delete;
  NoMallocScope& operator=(const NoMallocScope&) = delete;
  bool on;
};
#else
struct NoMallocScope {};
#endif

}  // namespace lgssm::internal
