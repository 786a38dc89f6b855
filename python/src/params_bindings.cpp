#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>

#include <optional>

#include "lgssm/error.hpp"
#include "lgssm/params.hpp"
#include "series_caster.hpp"

namespace nb = nanobind;
using namespace nb::literals;

void bind_params(nb::module_& m) {
  nb::exception<lgssm::invalid_argument>(m, "InvalidArgument", PyExc_ValueError);

  nb::class_<lgssm::LinearGaussianParams>(m, "LinearGaussianParams")
      .def(nb::init<>())
      .def_rw("weights", &lgssm::LinearGaussianParams::weights)
      .def_rw("bias", &lgssm::LinearGaussianParams::bias)
      .def_rw("input_weights", &lgssm::LinearGaussianParams::input_weights)
      .def_rw("cov", &lgssm::LinearGaussianParams::cov);

  nb::class_<lgssm::Params>(m, "Params")
      .def(
          "__init__",
          [](lgssm::Params* self, lgssm::Vector initial_mean, lgssm::Matrix initial_cov,
             lgssm::LinearGaussianParams dynamics, lgssm::LinearGaussianParams emissions,
             std::optional<lgssm::Matrix> initial_diffuse) {
            // None: a known initial distribution (a default array would need NumPy when the module loads).
            new (self) lgssm::Params{{std::move(initial_mean), std::move(initial_cov),
                                      initial_diffuse ? std::move(*initial_diffuse) : lgssm::Matrix()},
                                     std::move(dynamics),
                                     std::move(emissions)};
          },
          "initial_mean"_a, "initial_cov"_a, "dynamics"_a, "emissions"_a, "initial_diffuse"_a = nb::none())
      .def_prop_ro("initial_mean", [](const lgssm::Params& p) { return p.initial.mean; })
      .def_prop_ro("initial_cov", [](const lgssm::Params& p) { return p.initial.cov; })
      .def_prop_ro("initial_diffuse", [](const lgssm::Params& p) { return p.initial.diffuse; })
      .def_rw("dynamics", &lgssm::Params::dynamics)
      .def_rw("emissions", &lgssm::Params::emissions)
      .def("validate", [](const lgssm::Params& p) { lgssm::validate(p); });

  m.def("stationary_initial", &lgssm::stationary_initial, "weights"_a, "cov"_a);
}
