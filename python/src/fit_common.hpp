// Pieces shared by the bindings (inference, learn and continuous).
#pragma once

#include <Python.h>
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <functional>
#include <string>
#include <vector>

#include "lgssm/error.hpp"
#include "lgssm/fit.hpp"

namespace lgssm::bindings {

// A dict from names to values, typed so that the generated stub (_core.pyi)
// says so (dict[str, object]).
using Dict = nanobind::typed<nanobind::dict, nanobind::str, nanobind::object>;

// The sequences, moved out of the per-sequence lists (not validated).
inline std::vector<Sequence> to_sequences(std::vector<RowMatrix>& emissions, std::vector<RowMatrix>& inputs) {
  if (inputs.size() != emissions.size())
    internal::throw_invalid("inputs", std::to_string(emissions.size()) + " sequences", std::to_string(inputs.size()));
  std::vector<Sequence> seqs(emissions.size());
  for (size_t i = 0; i < seqs.size(); ++i) seqs[i] = Sequence{std::move(emissions[i]), std::move(inputs[i])};
  return seqs;
}

// A Python callable (iteration, value) -> bool, called with the GIL held; it
// also lets Ctrl-C interrupt a long fit.
inline FitCallback wrap_callback(nanobind::object callback) {
  return [callback](int it, double value) {
    nanobind::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw nanobind::python_error();
    return callback.is_none() ? true : nanobind::cast<bool>(callback(it, value));
  };
}

// A Python callable update(grad, x, loss) -> the new x (an optimizer's step,
// for SgdOptions::update), called with the GIL held; None for Adam in C++.
inline std::function<void(const Vector&, double, Vector&)> wrap_update(nanobind::object update) {
  if (update.is_none()) return {};
  return [update](const Vector& grad, double loss, Vector& x) {
    nanobind::gil_scoped_acquire gil;
    Vector next = nanobind::cast<Vector>(update(grad, x, loss));
    if (next.size() != x.size())
      internal::throw_invalid("optimizer", "an update of the " + std::to_string(x.size()) + " unconstrained parameters",
                              std::to_string(next.size()) + " values");
    x = std::move(next);
  };
}

inline Dict summary_dict(const FitSummary& s) {
  Dict d;
  d["iterations"] = s.iterations;
  d["termination"] = s.termination;
  d["message"] = s.message;
  d["warnings"] = s.warnings;
  d["initial_objective"] = s.initial_objective;
  d["final_objective"] = s.final_objective;
  d["evaluations"] = s.evaluations;
  d["seconds"] = s.seconds;
  d["usable"] = s.usable;
  return d;
}

// `a += b` and `a + b` for a summable statistics class (SufficientStats, ContinuousStats).
template <typename Stats>
void def_sum(nanobind::class_<Stats>& cls) {
  cls.def(
         "__iadd__", [](Stats& a, const Stats& b) -> Stats& { return a += b; }, nanobind::rv_policy::none)
      .def("__add__", [](Stats a, const Stats& b) { return a += b; });
}

}  // namespace lgssm::bindings
