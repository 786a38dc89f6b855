// The streaming filter and the fixed-lag smoother (lgssm/streaming.hpp). A
// step takes its vectors as Eigen::Ref, so a contiguous float64 array is not
// copied; the state is updated in place.
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/tuple.h>

#include <tuple>

#include "lgssm/streaming.hpp"
#include "series_caster.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace {

using lgssm::FilterState;
using lgssm::FixedLagSmoother;
using VectorRef = Eigen::Ref<const lgssm::Vector>;
// What pickling keeps of a FilterState: the arguments of its constructor.
using Saved =
    std::tuple<Eigen::Index, Eigen::Index, Eigen::Index, Eigen::Index, double, lgssm::Vector, lgssm::Matrix, bool>;

}  // namespace

void bind_streaming(nb::module_& m) {
  nb::class_<FilterState>(m, "FilterState")
      .def(nb::init<Eigen::Index, Eigen::Index, Eigen::Index, Eigen::Index, double, const lgssm::Vector&,
                    const lgssm::Matrix&, bool>(),
           "state_dim"_a, "emission_dim"_a, "input_dim"_a, "num_timesteps"_a, "marginal_loglik"_a, "mean"_a, "cov"_a,
           "check_params"_a)
      .def_prop_ro("state_dim", &FilterState::state_dim)
      .def_prop_ro("emission_dim", &FilterState::emission_dim)
      .def_prop_ro("input_dim", &FilterState::input_dim)
      .def_prop_ro("num_timesteps", &FilterState::num_timesteps)
      .def_prop_ro("marginal_loglik", &FilterState::marginal_loglik)
      .def_prop_ro("filtered_mean", &FilterState::filtered_mean)
      .def_prop_ro("filtered_covariance", &FilterState::filtered_cov)
      .def("__copy__", [](const FilterState& s) { return FilterState(s); })
      .def(
          "__deepcopy__", [](const FilterState& s, nb::handle) { return FilterState(s); }, "memo"_a)
      .def("__getstate__",
           [](const FilterState& s) {
             return Saved(s.state_dim(), s.emission_dim(), s.input_dim(), s.num_timesteps(), s.marginal_loglik(),
                          s.filtered_mean(), s.filtered_cov(), s.check_params());
           })
      .def("__setstate__", [](FilterState& self, const Saved& saved) {
        std::apply([&](auto&&... args) { new (&self) FilterState(args...); }, saved);
      });

  m.def("filter_init", &lgssm::filter_init, "params"_a, "check_params"_a);
  m.def(
      "filter_step",
      [](const lgssm::Params& p, FilterState& state, VectorRef emission, VectorRef input) {
        return lgssm::filter_step(p, state, emission, input);
      },
      "params"_a, "state"_a, "emission"_a, "input"_a);
  m.def(
      "predict_step",
      [](const lgssm::Params& p, FilterState& state, VectorRef input) { lgssm::predict_step(p, state, input); },
      "params"_a, "state"_a, "input"_a);

  nb::class_<FixedLagSmoother>(m, "FixedLagSmoother")
      .def(nb::init<const lgssm::Params&, Eigen::Index>(), "params"_a, "lag"_a)
      .def("step", &FixedLagSmoother::step, "emission"_a, "input"_a)
      .def_prop_ro("lag", &FixedLagSmoother::lag)
      .def_prop_ro("num_timesteps", &FixedLagSmoother::num_timesteps)
      .def_prop_ro("marginal_loglik", &FixedLagSmoother::marginal_loglik)
      .def_prop_ro("window_start", &FixedLagSmoother::window_start)
      .def_prop_ro("lagged_mean", &FixedLagSmoother::lagged_mean)
      .def_prop_ro("lagged_covariance", &FixedLagSmoother::lagged_cov)
      .def_prop_ro("smoothed_means", &FixedLagSmoother::smoothed_means)
      .def_prop_ro("smoothed_covariances", &FixedLagSmoother::smoothed_covariances)
      .def("__copy__", [](const FixedLagSmoother& s) { return FixedLagSmoother(s); })
      .def("__deepcopy__", [](const FixedLagSmoother& s, nb::handle) { return FixedLagSmoother(s); }, "memo"_a);
}
