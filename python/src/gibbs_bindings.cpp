// Bindings of gibbs.hpp (and complete_data_stats of stats.hpp): argument conversion only.
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "fit_common.hpp"
#include "lgssm/gibbs.hpp"
#include "lgssm/stats.hpp"
#include "series_caster.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using lgssm::RowMatrix;

void bind_gibbs(nb::module_& m) {
  m.def(
      "complete_data_stats",
      [](const lgssm::Params& p, RowMatrix emissions, RowMatrix inputs, const RowMatrix& states,
         bool per_step_emissions) {
        return lgssm::complete_data_stats(p, lgssm::Sequence{std::move(emissions), std::move(inputs)}, states,
                                          per_step_emissions);
      },
      "params"_a, "emissions"_a, "inputs"_a, "states"_a, "per_step_emissions"_a = false);
  m.def("conjugate_sample", &lgssm::conjugate_sample, "params"_a, "props"_a, "stats"_a, "prior"_a, "seed"_a);
  nb::class_<lgssm::GibbsOptions>(m, "GibbsOptions")
      .def(nb::init<>())
      .def_rw("num_threads", &lgssm::GibbsOptions::num_threads)
      .def("validate", &lgssm::GibbsOptions::validate);
  m.def(
      "fit_blocked_gibbs",
      [](const lgssm::Params& p, const lgssm::ParamProps& props, std::vector<RowMatrix> emissions,
         std::vector<RowMatrix> inputs, const lgssm::ConjugatePrior& prior, int sample_size, std::uint64_t seed,
         lgssm::GibbsOptions options, nb::object callback) {
        auto seqs = lgssm::bindings::to_sequences(emissions, inputs);
        options.callback = lgssm::bindings::wrap_callback(callback);
        lgssm::GibbsResult r;
        {
          nb::gil_scoped_release release;
          r = lgssm::fit_blocked_gibbs(p, props, seqs, prior, sample_size, seed, options);
        }
        return std::make_tuple(std::move(r.samples), std::move(r.marginal_loglik),
                               lgssm::bindings::summary_dict(r.summary));
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "prior"_a, "sample_size"_a, "seed"_a, "options"_a,
      "callback"_a.none());
}
