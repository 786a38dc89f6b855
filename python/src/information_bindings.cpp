// Bindings of information.hpp: argument conversion only.
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <optional>

#include "fit_common.hpp"
#include "lgssm/information.hpp"
#include "series_caster.hpp"
#include "timed_common.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using lgssm::RowMatrix;
using lgssm::bindings::Dict;

void bind_information(nb::module_& m) {
  m.def("free_parameters", &lgssm::free_parameters, "params"_a, "props"_a);
  m.def("with_free_parameters", &lgssm::with_free_parameters, "theta"_a, "base"_a, "props"_a);
  // The information of seqs under params: the C++ function without the GIL, as a dict.
  auto run = [](const auto& params, const auto& props, const auto& seqs, bool with_hessian, int num_threads) {
    lgssm::InformationResult r;
    {
      nb::gil_scoped_release release;
      r = lgssm::information(params, props, seqs, with_hessian, num_threads);
    }
    Dict d;
    d["free_parameters"] = nb::cast(std::move(r.free_parameters));
    d["marginal_loglik"] = r.marginal_loglik;
    d["score"] = nb::cast(std::move(r.score));
    d["hessian"] = nb::cast(std::move(r.hessian));
    d["opg"] = nb::cast(std::move(r.opg));
    d["harvey"] = nb::cast(std::move(r.harvey));
    return d;
  };
  m.def(
      "information",
      [run](const lgssm::Params& params, const lgssm::ParamProps& props, std::vector<RowMatrix> emissions,
            std::vector<RowMatrix> inputs, bool with_hessian, int num_threads) {
        return run(params, props, lgssm::bindings::to_sequences(emissions, inputs), with_hessian, num_threads);
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "with_hessian"_a = true, "num_threads"_a = 0);
  m.def(
      "continuous_information",
      [run](const lgssm::ContinuousParams& params, const lgssm::ContinuousProps& props,
            std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs, std::vector<lgssm::Vector> times,
            bool with_hessian, int num_threads) {
        return run(params, props, lgssm::bindings::to_timed(emissions, inputs, times), with_hessian, num_threads);
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "times"_a, "with_hessian"_a = true, "num_threads"_a = 0);
  m.def(
      "information_covariance",
      [](const lgssm::Matrix& information, std::optional<lgssm::Matrix> meat, const std::vector<std::string>& names) {
        return lgssm::information_covariance(information, meat ? &*meat : nullptr, names);
      },
      "information"_a, "meat"_a.none(), "names"_a);
}
