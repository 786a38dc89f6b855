// Diagnostics: innovations, disturbances and smoothed autocovariances per
// sequence (validated, then in parallel without the GIL), and the number of
// free parameters; the innovations form that makes emissions from standardized
// innovations (the innovations bootstrap).
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/vector.h>

#include <string>

#include "fit_common.hpp"
#include "lgssm/diagnostics.hpp"
#include "lgssm/error.hpp"
#include "lgssm/parallel.hpp"
#include "series_caster.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using lgssm::RowMatrix;
using lgssm::bindings::Dict;

namespace {

// fn(params, sequence) for every sequence, validated first (naming the bad one).
template <class Fn>
auto per_sequence(const lgssm::Params& params, std::vector<RowMatrix>& emissions, std::vector<RowMatrix>& inputs,
                  Fn fn) {
  auto seqs = lgssm::bindings::to_sequences(emissions, inputs);
  lgssm::validate(params);
  lgssm::validate(params, seqs);
  nb::gil_scoped_release release;
  return lgssm::parallel_map(seqs, [&](const lgssm::Sequence& s) { return fn(params, s); });
}

template <class T, class Convert>
nb::typed<nb::list, Dict> dicts(std::vector<T>& results, Convert convert) {
  nb::typed<nb::list, Dict> out;
  for (auto& r : results) out.append(convert(std::move(r)));
  return out;
}

}  // namespace

void bind_diagnostics(nb::module_& m) {
  m.def(
      "innovations",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs) {
        auto rs = per_sequence(p, emissions, inputs,
                               [](const auto& params, const auto& s) { return lgssm::innovations(params, s); });
        return dicts(rs, [](lgssm::InnovationsResult&& r) {
          Dict d;
          d["marginal_loglik"] = r.marginal_loglik;
          d["step_logliks"] = nb::cast(std::move(r.step_logliks));
          d["innovations"] = nb::cast(std::move(r.innovations));
          d["innovation_covariances"] = nb::cast(std::move(r.innovation_covariances));
          d["standardized_innovations"] = nb::cast(std::move(r.standardized_innovations));
          d["scaled_innovations"] = nb::cast(std::move(r.scaled_innovations));
          d["num_diffuse_timesteps"] = r.num_diffuse_timesteps;
          return d;
        });
      },
      "params"_a, "emissions"_a, "inputs"_a);

  m.def(
      "disturbances",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs) {
        auto rs = per_sequence(p, emissions, inputs,
                               [](const auto& params, const auto& s) { return lgssm::disturbances(params, s); });
        return dicts(rs, [](lgssm::DisturbancesResult&& r) {
          Dict d;
          d["marginal_loglik"] = r.marginal_loglik;
          d["emission_disturbances"] = nb::cast(std::move(r.emission_disturbances));
          d["emission_disturbance_covariances"] = nb::cast(std::move(r.emission_disturbance_covariances));
          d["emission_auxiliary_residuals"] = nb::cast(std::move(r.emission_auxiliary_residuals));
          d["dynamics_disturbances"] = nb::cast(std::move(r.dynamics_disturbances));
          d["dynamics_disturbance_covariances"] = nb::cast(std::move(r.dynamics_disturbance_covariances));
          d["dynamics_auxiliary_residuals"] = nb::cast(std::move(r.dynamics_auxiliary_residuals));
          return d;
        });
      },
      "params"_a, "emissions"_a, "inputs"_a);

  m.def(
      "smoothed_autocovariances",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs, Eigen::Index lag) {
        auto rs = per_sequence(p, emissions, inputs, [lag](const auto& params, const auto& s) {
          return lgssm::smoothed_autocovariances(params, s, lag);
        });
        nb::typed<nb::list, lgssm::MatrixSeries> out;
        for (auto& r : rs) out.append(nb::cast(std::move(r)));
        return out;
      },
      "params"_a, "emissions"_a, "inputs"_a, "lag"_a);

  m.def(
      "emissions_from_innovations",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         const std::vector<RowMatrix>& standardized) {
        if (standardized.size() != emissions.size())
          throw lgssm::invalid_argument("standardized: expected one array per sequence (" +
                                        std::to_string(emissions.size()) + "), got " +
                                        std::to_string(standardized.size()));
        auto seqs = lgssm::bindings::to_sequences(emissions, inputs);
        nb::gil_scoped_release release;
        std::vector<RowMatrix> out(seqs.size());
        lgssm::parallel_for(static_cast<Eigen::Index>(seqs.size()), [&](Eigen::Index i) {
          out[i] = lgssm::emissions_from_innovations(p, seqs[i], standardized[i]);
        });
        return out;
      },
      "params"_a, "emissions"_a, "inputs"_a, "standardized"_a);

  m.def("num_free_parameters", &lgssm::num_free_parameters, "params"_a, "props"_a);
}
