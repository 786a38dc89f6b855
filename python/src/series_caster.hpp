// nanobind conversion of lgssm::MatrixSeries to and from a C-ordered float64
// NumPy array of shape (size, rows, cols). Results are moved into the array
// (no copy); arguments are copied in, converting dtype/order when needed.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <algorithm>

#include "lgssm/params.hpp"

namespace nanobind::detail {

template <>
struct type_caster<lgssm::MatrixSeries> {
  NB_TYPE_CASTER(lgssm::MatrixSeries, const_name("numpy.ndarray[float64]"))
  using Array = ndarray<const double, ndim<3>, c_contig, device::cpu>;

  bool from_python(handle src, uint8_t flags, cleanup_list* cleanup) noexcept {
    make_caster<Array> caster;
    if (!caster.from_python(src, flags, cleanup)) return false;
    const Array& a = caster.value;
    value = lgssm::MatrixSeries(a.shape(0), a.shape(1), a.shape(2));
    std::copy(a.data(), a.data() + a.size(), value.data());
    return true;
  }

  template <class T>
  static handle from_cpp(T&& series, rv_policy, cleanup_list*) noexcept {
    auto* owned = new lgssm::MatrixSeries(std::forward<T>(series));
    capsule owner(owned, [](void* p) noexcept { delete static_cast<lgssm::MatrixSeries*>(p); });
    const size_t shape[3] = {static_cast<size_t>(owned->size()), static_cast<size_t>(owned->rows()),
                             static_cast<size_t>(owned->cols())};
    return ndarray<numpy, double>(owned->data(), 3, shape, owner).cast().release();
  }
};

}  // namespace nanobind::detail
