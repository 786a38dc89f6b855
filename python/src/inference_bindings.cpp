// Batch entry points: each takes lists of per-sequence arrays, runs the C++
// functions over the sequences in parallel without the GIL, and returns one
// dict of NumPy arrays per sequence (moved, not copied).
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include "fit_common.hpp"
#include "lgssm/error.hpp"
#include "lgssm/inference.hpp"
#include "lgssm/parallel.hpp"
#include "series_caster.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using lgssm::RowMatrix;

namespace {

using lgssm::bindings::to_sequences;

std::vector<lgssm::Sequence> checked_sequences(const lgssm::Params& params, std::vector<RowMatrix>& emissions,
                                               std::vector<RowMatrix>& inputs) {
  auto seqs = to_sequences(emissions, inputs);
  lgssm::validate(params, seqs);  // names the offending sequence
  return seqs;
}

// One of the C++ batch functions (which validate once), without the GIL.
template <class Fn>
auto run_batch(const lgssm::Params& params, std::vector<RowMatrix>& emissions, std::vector<RowMatrix>& inputs, Fn fn) {
  auto seqs = to_sequences(emissions, inputs);
  nb::gil_scoped_release release;
  return fn(params, seqs);
}

using lgssm::bindings::Dict;

Dict filter_dict(lgssm::FilterResult&& r) {
  Dict d;
  d["marginal_loglik"] = r.marginal_loglik;
  d["num_diffuse_timesteps"] = r.num_diffuse_timesteps;
  d["filtered_means"] = nb::cast(std::move(r.filtered_means));
  d["filtered_covariances"] = nb::cast(std::move(r.filtered_covariances));
  d["predicted_means"] = nb::cast(std::move(r.predicted_means));
  d["predicted_covariances"] = nb::cast(std::move(r.predicted_covariances));
  return d;
}

// The results as a Python list, each converted by `convert`; Element is what
// the stub names as the list's entries.
template <class Element, class T, class Convert>
nb::typed<nb::list, Element> to_list(std::vector<T>& results, Convert convert) {
  nb::typed<nb::list, Element> out;
  for (auto& r : results) out.append(convert(std::move(r)));
  return out;
}

}  // namespace

void bind_inference(nb::module_& m) {
  m.def(
      "marginal_log_prob",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs) {
        return run_batch(p, emissions, inputs,
                         [](const auto& params, const auto& seqs) { return lgssm::marginal_log_prob(params, seqs); });
      },
      "params"_a, "emissions"_a, "inputs"_a);

  m.def(
      "filter",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs) {
        auto rs = run_batch(p, emissions, inputs,
                            [](const auto& params, const auto& seqs) { return lgssm::filter(params, seqs); });
        return to_list<Dict>(rs, filter_dict);
      },
      "params"_a, "emissions"_a, "inputs"_a);

  m.def(
      "smoother",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs) {
        auto rs = run_batch(p, emissions, inputs,
                            [](const auto& params, const auto& seqs) { return lgssm::smoother(params, seqs); });
        return to_list<Dict>(rs, [](lgssm::SmootherResult&& r) {
          Dict d = filter_dict(std::move(r));
          d["smoothed_means"] = nb::cast(std::move(r.smoothed_means));
          d["smoothed_covariances"] = nb::cast(std::move(r.smoothed_covariances));
          d["smoothed_cross_covariances"] = nb::cast(std::move(r.smoothed_cross_covariances));
          return d;
        });
      },
      "params"_a, "emissions"_a, "inputs"_a);

  m.def(
      "sample",
      [](const lgssm::Params& p, std::uint64_t seed, Eigen::Index num_timesteps, RowMatrix inputs) {
        lgssm::SampleResult r;
        {
          nb::gil_scoped_release release;
          r = lgssm::sample(p, seed, num_timesteps, inputs);
        }
        return std::make_tuple(std::move(r.states), std::move(r.emissions));
      },
      "params"_a, "seed"_a, "num_timesteps"_a, "inputs"_a);

  m.def(
      "posterior_sample",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         std::vector<std::uint64_t> seeds, Eigen::Index num_samples) {
        if (seeds.size() != emissions.size())
          lgssm::internal::throw_invalid("seeds", std::to_string(emissions.size()) + " seeds",
                                         std::to_string(seeds.size()));
        auto seqs = checked_sequences(p, emissions, inputs);
        std::vector<lgssm::MatrixSeries> draws(seqs.size());
        {
          nb::gil_scoped_release release;
          lgssm::parallel_for(static_cast<Eigen::Index>(seqs.size()), [&](Eigen::Index i) {
            draws[i] = lgssm::posterior_sample(p, seqs[i], seeds[i], num_samples);
          });
        }
        return to_list<lgssm::MatrixSeries>(draws, [](lgssm::MatrixSeries&& d) { return nb::cast(std::move(d)); });
      },
      "params"_a, "emissions"_a, "inputs"_a, "seeds"_a, "num_samples"_a);

  m.def(
      "posterior_predictive",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         bool full_covariances) {
        auto seqs = checked_sequences(p, emissions, inputs);
        std::vector<lgssm::PosteriorPredictiveResult> rs;
        {
          nb::gil_scoped_release release;
          rs = lgssm::parallel_map(
              seqs, [&](const lgssm::Sequence& s) { return lgssm::posterior_predictive(p, s, full_covariances); });
        }
        return to_list<Dict>(rs, [&](lgssm::PosteriorPredictiveResult&& r) {
          Dict d;
          d["means"] = nb::cast(std::move(r.means));
          d["stds"] = nb::cast(std::move(r.stds));
          if (full_covariances) d["covariances"] = nb::cast(std::move(r.covariances));
          return d;
        });
      },
      "params"_a, "emissions"_a, "inputs"_a, "full_covariances"_a);

  m.def(
      "forecast",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         Eigen::Index num_forecast_timesteps, std::vector<RowMatrix> forecast_inputs) {
        if (forecast_inputs.size() != emissions.size())
          lgssm::internal::throw_invalid("forecast_inputs", std::to_string(emissions.size()) + " sequences",
                                         std::to_string(forecast_inputs.size()));
        auto seqs = checked_sequences(p, emissions, inputs);
        std::vector<lgssm::ForecastResult> rs(seqs.size());
        {
          nb::gil_scoped_release release;
          lgssm::parallel_for(static_cast<Eigen::Index>(seqs.size()), [&](Eigen::Index i) {
            rs[i] = lgssm::forecast(p, seqs[i], num_forecast_timesteps, forecast_inputs[i]);
          });
        }
        using Moments = std::tuple<RowMatrix, lgssm::MatrixSeries, RowMatrix, lgssm::MatrixSeries>;
        return to_list<Moments>(rs, [](lgssm::ForecastResult&& r) {
          return nb::make_tuple(nb::cast(std::move(r.means)), nb::cast(std::move(r.covariances)),
                                nb::cast(std::move(r.emission_means)), nb::cast(std::move(r.emission_covariances)));
        });
      },
      "params"_a, "emissions"_a, "inputs"_a, "num_forecast_timesteps"_a, "forecast_inputs"_a);
}
