/// @file
/// Matrix types and MatrixSeries, the stack of equally shaped matrices that
/// holds every per-step quantity of lgssm (parameters, moments, samples).
#pragma once

#include <Eigen/Core>

namespace lgssm {

using Matrix = Eigen::MatrixXd;  ///< Column-major dense matrix (Eigen's default).
using Vector = Eigen::VectorXd;  ///< Dense column vector.
/// Time series are stored one step per row, matching NumPy's (num_timesteps, dim).
using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatrixMap = Eigen::Map<RowMatrix>;             ///< A row-major view of one entry.
using ConstMatrixMap = Eigen::Map<const RowMatrix>;  ///< A read-only row-major view of one entry.

/// A stack of size() matrices of one shape (rows(), cols()), stored
/// contiguously and row-major, i.e. laid out like a C-ordered NumPy array of
/// shape (size, rows, cols). Vectors are stacks with cols() == 1.
class MatrixSeries {
 public:
  MatrixSeries() = default;
  /// A series of `size` zero matrices of shape (rows, cols).
  MatrixSeries(Eigen::Index size, Eigen::Index rows, Eigen::Index cols)
      : data_(RowMatrix::Zero(size, rows * cols)), rows_(rows), cols_(cols) {}
  /// A series of one entry holding `m` (a vector is a one-column matrix).
  static MatrixSeries constant(const Eigen::Ref<const RowMatrix>& m);

  Eigen::Index size() const { return data_.rows(); }  ///< Number of entries.
  Eigen::Index rows() const { return rows_; }         ///< Rows of each entry.
  Eigen::Index cols() const { return cols_; }         ///< Columns of each entry.
  bool empty() const { return data_.size() == 0; }    ///< Whether it holds no values.

  /// Entry i, writable.
  MatrixMap operator[](Eigen::Index i) { return MatrixMap(data_.row(i).data(), rows_, cols_); }
  /// Entry i.
  ConstMatrixMap operator[](Eigen::Index i) const { return ConstMatrixMap(data_.row(i).data(), rows_, cols_); }
  /// Entry i of a per-step series, or entry 0 of a constant one.
  ConstMatrixMap at(Eigen::Index i) const { return (*this)[size() == 1 ? 0 : i]; }
  /// Entry i (or 0 of a constant series) as a vector of rows() entries.
  Eigen::Map<const Vector> vec(Eigen::Index i) const {
    return Eigen::Map<const Vector>(data_.row(size() == 1 ? 0 : i).data(), rows_);
  }

  double* data() { return data_.data(); }              ///< The values, entry after entry.
  const double* data() const { return data_.data(); }  ///< The values, entry after entry.
  /// The whole stack as a (size, rows * cols) matrix.
  RowMatrix& flat() { return data_; }
  /// The whole stack as a (size, rows * cols) matrix.
  const RowMatrix& flat() const { return data_; }

 private:
  RowMatrix data_;
  Eigen::Index rows_ = 0;
  Eigen::Index cols_ = 0;
};

}  // namespace lgssm
