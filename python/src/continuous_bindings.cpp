// Bindings of continuous.hpp: argument conversion only.
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "fit_common.hpp"
#include "lgssm/continuous.hpp"
#include "series_caster.hpp"
#include "timed_common.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using lgssm::RowMatrix;

namespace {

// Runs fit(params, props, seqs, options) without the GIL: (params, history, summary, psd_correction).
template <class Options, class Fit>
auto run_fit(const lgssm::ContinuousParams& p, const lgssm::ContinuousProps& props, std::vector<RowMatrix>& emissions,
             std::vector<RowMatrix>& inputs, std::vector<lgssm::Vector>& times, Options options, nb::object callback,
             Fit fit) {
  auto seqs = lgssm::bindings::to_timed(emissions, inputs, times);
  options.callback = lgssm::bindings::wrap_callback(callback);
  lgssm::ContinuousFitResult r;
  {
    nb::gil_scoped_release release;
    r = fit(p, props, seqs, options);
  }
  return std::make_tuple(std::move(r.params), std::move(r.history), lgssm::bindings::summary_dict(r.summary),
                         r.psd_correction);
}

}  // namespace

void bind_continuous(nb::module_& m) {
  nb::class_<lgssm::ContinuousParams>(m, "ContinuousParams")
      .def(
          "__init__",
          [](lgssm::ContinuousParams* self, lgssm::Vector initial_mean, lgssm::Matrix initial_cov, lgssm::Matrix drift,
             lgssm::Matrix diffusion_cov, lgssm::LinearGaussianParams emissions) {
            new (self) lgssm::ContinuousParams{{std::move(initial_mean), std::move(initial_cov)},
                                               {std::move(drift), std::move(diffusion_cov)},
                                               std::move(emissions)};
          },
          "initial_mean"_a, "initial_cov"_a, "drift"_a, "diffusion_cov"_a, "emissions"_a)
      .def_prop_ro("initial_mean", [](const lgssm::ContinuousParams& p) { return p.initial.mean; })
      .def_prop_ro("initial_cov", [](const lgssm::ContinuousParams& p) { return p.initial.cov; })
      .def_prop_ro("drift", [](const lgssm::ContinuousParams& p) { return p.dynamics.drift; })
      .def_prop_ro("diffusion_cov", [](const lgssm::ContinuousParams& p) { return p.dynamics.diffusion_cov; })
      .def_rw("emissions", &lgssm::ContinuousParams::emissions)
      .def("validate", [](const lgssm::ContinuousParams& p) { lgssm::validate(p); });

  nb::class_<lgssm::ContinuousProps>(m, "ContinuousProps")
      .def(nb::init<>())
      .def_rw("initial", &lgssm::ContinuousProps::initial)
      .def_rw("drift", &lgssm::ContinuousProps::drift)
      .def_rw("diffusion_cov", &lgssm::ContinuousProps::diffusion_cov)
      .def_rw("diffusion_cov_structure", &lgssm::ContinuousProps::diffusion_cov_structure)
      .def_rw("emissions", &lgssm::ContinuousProps::emissions);

  nb::class_<lgssm::ContinuousStats> stats_class(m, "ContinuousStats");
  stats_class.def(nb::init<>())
      .def_rw("gaps", &lgssm::ContinuousStats::gaps)
      .def_rw("stats", &lgssm::ContinuousStats::stats)
      .def_prop_ro("marginal_loglik", [](const lgssm::ContinuousStats& s) { return s.stats.marginal_loglik; })
      .def("__getstate__", [](const lgssm::ContinuousStats& s) { return std::make_tuple(s.gaps, s.stats); })
      .def("__setstate__",
           [](lgssm::ContinuousStats& s, const std::tuple<std::vector<double>, lgssm::SufficientStats>& t) {
             new (&s) lgssm::ContinuousStats{std::get<0>(t), std::get<1>(t)};
           });
  lgssm::bindings::def_sum(stats_class);
  m.def(
      "continuous_sufficient_stats",
      [](const lgssm::ContinuousParams& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         std::vector<lgssm::Vector> times, int num_threads) {
        auto seqs = lgssm::bindings::to_timed(emissions, inputs, times);
        nb::gil_scoped_release release;
        return lgssm::sufficient_stats(p, seqs, num_threads);
      },
      "params"_a, "emissions"_a, "inputs"_a, "times"_a, "num_threads"_a = 0);
  m.def(
      "continuous_m_step",
      [](const lgssm::ContinuousParams& p, const lgssm::ContinuousProps& props, const lgssm::ContinuousStats& stats,
         int m_step_iters) {
        nb::gil_scoped_release release;
        return lgssm::m_step(p, props, stats, m_step_iters);
      },
      "params"_a, "props"_a, "stats"_a, "m_step_iters"_a);

  m.def(
      "discretize",
      [](const lgssm::Matrix& drift, const lgssm::Matrix& diffusion_covariance, double dt) {
        auto d = lgssm::discretize(drift, diffusion_covariance, dt);
        return std::make_tuple(d.weights, d.cov);
      },
      "drift"_a, "diffusion_covariance"_a, "dt"_a);
  m.def("validate_continuous_dynamics", &lgssm::validate_dynamics, "drift"_a, "diffusion_cov"_a, "state_dim"_a,
        "drift_name"_a, "diffusion_name"_a);
  m.def(
      "undiscretize",
      [](const lgssm::Matrix& weights, const lgssm::Matrix& cov, double dt) {
        auto u = lgssm::undiscretize(weights, cov, dt);
        return std::make_tuple(u.drift, u.diffusion_cov, u.psd_correction);
      },
      "weights"_a, "cov"_a, "dt"_a);
  m.def("to_discrete", &lgssm::to_discrete, "params"_a, "times"_a);
  m.def("continuous_to_unconstrained",
        nb::overload_cast<const lgssm::ContinuousParams&, const lgssm::ContinuousProps&>(&lgssm::to_unconstrained),
        "params"_a, "props"_a);
  m.def("continuous_from_unconstrained",
        nb::overload_cast<const lgssm::Vector&, const lgssm::ContinuousParams&, const lgssm::ContinuousProps&>(
            &lgssm::from_unconstrained),
        "x"_a, "base"_a, "props"_a);
  m.def(
      "continuous_log_prob_and_gradient",
      [](const lgssm::ContinuousParams& p, const lgssm::ContinuousProps& props, std::vector<RowMatrix> emissions,
         std::vector<RowMatrix> inputs, std::vector<lgssm::Vector> times) {
        auto seqs = lgssm::bindings::to_timed(emissions, inputs, times);
        lgssm::Vector grad;
        double ll;
        {
          nb::gil_scoped_release release;
          ll = lgssm::log_prob_and_gradient(p, props, seqs, grad);
        }
        return std::make_tuple(ll, grad);
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "times"_a);
  nb::class_<lgssm::ContinuousEmOptions>(m, "ContinuousEmOptions")
      .def(nb::init<>())
      .def_rw("num_iters", &lgssm::ContinuousEmOptions::num_iters)
      .def_rw("tolerance", &lgssm::ContinuousEmOptions::tolerance)
      .def_rw("m_step_iters", &lgssm::ContinuousEmOptions::m_step_iters)
      .def_rw("accelerate", &lgssm::ContinuousEmOptions::accelerate)
      .def_rw("num_threads", &lgssm::ContinuousEmOptions::num_threads)
      .def("validate", &lgssm::ContinuousEmOptions::validate);
  m.def(
      "continuous_fit_em",
      [](const lgssm::ContinuousParams& p, const lgssm::ContinuousProps& props, std::vector<RowMatrix> emissions,
         std::vector<RowMatrix> inputs, std::vector<lgssm::Vector> times, const lgssm::ContinuousEmOptions& options,
         nb::object callback) {
        return run_fit(p, props, emissions, inputs, times, options, callback,
                       [](auto&&... a) { return lgssm::fit_em(a...); });
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "times"_a, "options"_a, "callback"_a.none());
  m.def(
      "continuous_fit_lbfgs",
      [](const lgssm::ContinuousParams& p, const lgssm::ContinuousProps& props, std::vector<RowMatrix> emissions,
         std::vector<RowMatrix> inputs, std::vector<lgssm::Vector> times, const lgssm::LbfgsOptions& options,
         nb::object callback) {
        return run_fit(p, props, emissions, inputs, times, options, callback,
                       [](auto&&... a) { return lgssm::fit_lbfgs(a...); });
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "times"_a, "options"_a, "callback"_a.none());
}
