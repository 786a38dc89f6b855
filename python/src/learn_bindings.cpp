// Bindings of props.hpp, stats.hpp, learn.hpp and fit.hpp: argument conversion only.
#include <nanobind/eigen/dense.h>
#include <nanobind/nanobind.h>
#include <nanobind/stl/function.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <cmath>

#include "fit_common.hpp"
#include "lgssm/fit.hpp"
#include "lgssm/learn.hpp"
#include "lgssm/stats.hpp"
#include "series_caster.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using lgssm::RowMatrix;

namespace {

using lgssm::bindings::to_sequences;

using lgssm::bindings::Dict;

std::tuple<lgssm::Params, std::vector<double>, Dict> fit_tuple(lgssm::FitResult&& r) {
  return {std::move(r.params), std::move(r.history), lgssm::bindings::summary_dict(r.summary)};
}

template <class Options, class Fit>
auto run_fit(const lgssm::Params& params, const lgssm::ParamProps& props, std::vector<RowMatrix>& emissions,
             std::vector<RowMatrix>& inputs, Options options, nb::object callback, Fit fit) {
  auto seqs = to_sequences(emissions, inputs);
  options.callback = lgssm::bindings::wrap_callback(callback);
  lgssm::FitResult r;
  {
    nb::gil_scoped_release release;
    r = fit(params, props, seqs, options);
  }
  return fit_tuple(std::move(r));
}

}  // namespace

void bind_learn(nb::module_& m) {
  nb::enum_<lgssm::CovStructure>(m, "CovStructure")
      .value("full", lgssm::CovStructure::kFull)
      .value("diagonal", lgssm::CovStructure::kDiagonal)
      .value("scalar", lgssm::CovStructure::kScalar);
  nb::enum_<lgssm::Termination>(m, "Termination")
      .value("max_iterations", lgssm::Termination::kMaxIterations)
      .value("converged", lgssm::Termination::kConverged)
      .value("numerical_failure", lgssm::Termination::kNumericalFailure)
      .value("stopped", lgssm::Termination::kStopped);

  using Props = lgssm::ParamProps;
  nb::class_<lgssm::Affine>(m, "Affine")
      .def(nb::init<>())
      .def(
          "__init__",
          [](lgssm::Affine* a, lgssm::Vector fixed, lgssm::Matrix design) {
            new (a) lgssm::Affine{std::move(fixed), std::move(design)};
          },
          "fixed"_a, "design"_a)
      .def_rw("fixed", &lgssm::Affine::fixed)
      .def_rw("design", &lgssm::Affine::design);
  nb::class_<Props::Initial>(m, "InitialProps")
      .def(nb::init<>())
      .def_rw("mean", &Props::Initial::mean)
      .def_rw("cov", &Props::Initial::cov)
      .def_rw("cov_structure", &Props::Initial::cov_structure)
      .def_rw("mean_constraint", &Props::Initial::mean_constraint, nb::arg().none())
      .def_rw("cov_constraint", &Props::Initial::cov_constraint, nb::arg().none());
  nb::class_<Props::Conditional>(m, "ConditionalProps")
      .def(nb::init<>())
      .def_rw("weights", &Props::Conditional::weights)
      .def_rw("bias", &Props::Conditional::bias)
      .def_rw("input_weights", &Props::Conditional::input_weights)
      .def_rw("cov", &Props::Conditional::cov)
      .def_rw("cov_structure", &Props::Conditional::cov_structure)
      .def_rw("weights_constraint", &Props::Conditional::weights_constraint, nb::arg().none())
      .def_rw("bias_constraint", &Props::Conditional::bias_constraint, nb::arg().none())
      .def_rw("input_weights_constraint", &Props::Conditional::input_weights_constraint, nb::arg().none())
      .def_rw("cov_constraint", &Props::Conditional::cov_constraint, nb::arg().none());
  nb::class_<Props>(m, "ParamProps")
      .def(nb::init<>())
      .def_rw("initial", &Props::initial)
      .def_rw("dynamics", &Props::dynamics)
      .def_rw("emissions", &Props::emissions);

  nb::class_<lgssm::NiwPrior>(m, "NiwPrior")
      .def(nb::init<>())
      .def_rw("loc", &lgssm::NiwPrior::loc)
      .def_rw("mean_concentration", &lgssm::NiwPrior::mean_concentration)
      .def_rw("df", &lgssm::NiwPrior::df)
      .def_rw("scale", &lgssm::NiwPrior::scale);
  nb::class_<lgssm::MniwPrior>(m, "MniwPrior")
      .def(nb::init<>())
      .def_rw("loc", &lgssm::MniwPrior::loc)
      .def_rw("col_precision", &lgssm::MniwPrior::col_precision)
      .def_rw("df", &lgssm::MniwPrior::df)
      .def_rw("scale", &lgssm::MniwPrior::scale);
  nb::class_<lgssm::ConjugatePrior>(m, "ConjugatePrior")
      .def(nb::init<>())
      .def_rw("initial", &lgssm::ConjugatePrior::initial)
      .def_rw("dynamics", &lgssm::ConjugatePrior::dynamics)
      .def_rw("emissions", &lgssm::ConjugatePrior::emissions)
      .def_static("defaults", &lgssm::ConjugatePrior::defaults, "state_dim"_a, "emission_dim"_a, "input_dim"_a);
  m.def("log_prior", &lgssm::log_prior, "params"_a, "prior"_a);

  nb::class_<lgssm::RegressionStats>(m, "RegressionStats")
      .def(nb::init<>())
      .def_rw("w0", &lgssm::RegressionStats::w0)
      .def_rw("xx", &lgssm::RegressionStats::xx)
      .def_rw("rx", &lgssm::RegressionStats::rx)
      .def_rw("rr", &lgssm::RegressionStats::rr)
      .def_rw("count", &lgssm::RegressionStats::count)
      .def_rw("cov_score", &lgssm::RegressionStats::cov_score)
      .def_rw("cov_score_at", &lgssm::RegressionStats::cov_score_at)
      .def("moment", &lgssm::RegressionStats::moment, "w"_a)
      .def("scatter", &lgssm::RegressionStats::scatter, "w"_a)
      .def("__getstate__",
           [](const lgssm::RegressionStats& r) {
             return std::make_tuple(r.w0, r.xx, r.rx, r.rr, r.count, r.cov_score, r.cov_score_at);
           })
      .def("__setstate__",
           [](lgssm::RegressionStats& r, const std::tuple<lgssm::Matrix, lgssm::Matrix, lgssm::Matrix, lgssm::Matrix,
                                                          double, lgssm::Matrix, lgssm::Matrix>& t) {
             new (&r) lgssm::RegressionStats();
             std::tie(r.w0, r.xx, r.rx, r.rr, r.count, r.cov_score, r.cov_score_at) = t;
           });
  nb::class_<lgssm::SufficientStats> stats_class(m, "SufficientStats");
  stats_class.def(nb::init<>())
      .def_rw("initial", &lgssm::SufficientStats::initial)
      .def_prop_ro("num_sequences", &lgssm::SufficientStats::num_sequences)
      .def_rw("dynamics", &lgssm::SufficientStats::dynamics)
      .def_rw("emissions", &lgssm::SufficientStats::emissions)
      .def_rw("marginal_loglik", &lgssm::SufficientStats::marginal_loglik)
      .def("__getstate__",
           [](const lgssm::SufficientStats& s) {
             return std::make_tuple(s.initial, s.dynamics, s.emissions, s.marginal_loglik);
           })
      .def("__setstate__",
           [](lgssm::SufficientStats& s, const std::tuple<lgssm::RegressionStats, std::vector<lgssm::RegressionStats>,
                                                          std::vector<lgssm::RegressionStats>, double>& t) {
             new (&s) lgssm::SufficientStats();
             std::tie(s.initial, s.dynamics, s.emissions, s.marginal_loglik) = t;
           });
  lgssm::bindings::def_sum(stats_class);

  m.def(
      "sufficient_stats",
      [](const lgssm::Params& p, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         bool per_step_emissions, int num_threads) {
        auto seqs = to_sequences(emissions, inputs);
        nb::gil_scoped_release release;
        return lgssm::sufficient_stats(p, seqs, per_step_emissions, num_threads);
      },
      "params"_a, "emissions"_a, "inputs"_a, "per_step_emissions"_a, "num_threads"_a = 0);
  m.def("validate_props", [](const lgssm::Params& p, const Props& props) { lgssm::validate(p, props); });
  m.def("m_step", &lgssm::m_step, "params"_a, "props"_a, "stats"_a, "prior"_a.none());
  m.def("project_constraints", &lgssm::project_constraints, "params"_a, "props"_a);
  m.def("free_values", &lgssm::free_values, "constraint"_a, "matrix"_a);
  m.def("to_unconstrained", &lgssm::to_unconstrained, "params"_a, "props"_a);
  m.def("from_unconstrained", &lgssm::from_unconstrained, "x"_a, "base"_a, "props"_a);
  m.def("log_prob_gradient", &lgssm::log_prob_gradient, "params"_a, "props"_a, "stats"_a, "prior"_a.none());
  m.def("log_prob_natural_gradient", &lgssm::log_prob_natural_gradient, "params"_a, "stats"_a, "prior"_a.none());
  m.def("log_prior_gradient", &lgssm::log_prior_gradient, "params"_a, "prior"_a);
  m.def(
      "log_prob_data_gradient",
      [](const lgssm::Params& p, RowMatrix emissions, RowMatrix inputs) {
        lgssm::DataGradient g =
            lgssm::log_prob_data_gradient(p, lgssm::Sequence{std::move(emissions), std::move(inputs)});
        return std::make_tuple(std::move(g.emissions), std::move(g.inputs));
      },
      "params"_a, "emissions"_a, "inputs"_a);
  m.def(
      "log_det_jacobian",
      [](const lgssm::Vector& x, const lgssm::Params& base, const Props& props) {
        lgssm::Vector grad;
        const double f = lgssm::log_det_jacobian(x, base, props, grad);
        return std::make_tuple(f, grad);
      },
      "x"_a, "base"_a, "props"_a);
  m.def(
      "log_posterior_unconstrained",
      [](const lgssm::Vector& x, const lgssm::Params& base, const Props& props, std::vector<RowMatrix> emissions,
         std::vector<RowMatrix> inputs, const lgssm::ConjugatePrior* prior, int num_threads) {
        auto seqs = to_sequences(emissions, inputs);
        lgssm::Vector grad;
        double f;
        {
          nb::gil_scoped_release release;
          f = lgssm::log_posterior_unconstrained(x, base, props, seqs, prior, grad, num_threads);
        }
        return std::make_tuple(f, grad);
      },
      "x"_a, "base"_a, "props"_a, "emissions"_a, "inputs"_a, "prior"_a.none(), "num_threads"_a = 0);

  // The options structs of fit.hpp, field for field (the callback is passed
  // to each fit separately); validate() raises ValueError naming the field.
  using lgssm::AdamOptions, lgssm::EmOptions, lgssm::SgdOptions, lgssm::LbfgsOptions, lgssm::EmLoopOptions;
  nb::class_<EmOptions>(m, "EmOptions")
      .def(nb::init<>())
      .def_rw("num_iters", &EmOptions::num_iters)
      .def_rw("tolerance", &EmOptions::tolerance)
      .def_rw("num_threads", &EmOptions::num_threads)
      .def_rw("prior", &EmOptions::prior, nb::arg("prior").none())
      .def_rw("accelerate", &EmOptions::accelerate)
      .def("validate", &EmOptions::validate);
  nb::class_<AdamOptions>(m, "AdamOptions")
      .def(nb::init<>())
      .def_rw("learning_rate", &AdamOptions::learning_rate)
      .def_rw("b1", &AdamOptions::b1)
      .def_rw("b2", &AdamOptions::b2)
      .def_rw("eps", &AdamOptions::eps)
      .def("validate", &AdamOptions::validate);
  nb::class_<SgdOptions>(m, "SgdOptions")
      .def(nb::init<>())
      .def_rw("adam", &SgdOptions::adam)
      .def_rw("batch_size", &SgdOptions::batch_size)
      .def_rw("num_epochs", &SgdOptions::num_epochs)
      .def_rw("shuffle", &SgdOptions::shuffle)
      .def_rw("seed", &SgdOptions::seed)
      .def_rw("num_threads", &SgdOptions::num_threads)
      .def_rw("prior", &SgdOptions::prior, nb::arg("prior").none())
      .def("validate", &SgdOptions::validate);
  nb::class_<LbfgsOptions>(m, "LbfgsOptions")
      .def(nb::init<>())
      .def_rw("max_iters", &LbfgsOptions::max_iters)
      .def_rw("memory", &LbfgsOptions::memory)
      .def_rw("gradient_tolerance", &LbfgsOptions::gradient_tolerance)
      .def_rw("function_tolerance", &LbfgsOptions::function_tolerance)
      .def_rw("num_threads", &LbfgsOptions::num_threads)
      .def_rw("prior", &LbfgsOptions::prior, nb::arg("prior").none())
      .def("validate", &LbfgsOptions::validate);
  nb::class_<EmLoopOptions>(m, "EmLoopOptions")
      .def(nb::init<>())
      .def_rw("num_iters", &EmLoopOptions::num_iters)
      .def_rw("tolerance", &EmLoopOptions::tolerance)
      .def_rw("accelerate", &EmLoopOptions::accelerate)
      .def_rw("remedy", &EmLoopOptions::remedy)
      .def("validate", &EmLoopOptions::validate);
  nb::class_<lgssm::AdamState>(m, "AdamState")
      .def(nb::init<Eigen::Index>(), "size"_a)
      .def_rw("m", &lgssm::AdamState::m)
      .def_rw("v", &lgssm::AdamState::v)
      .def_rw("step", &lgssm::AdamState::step);
  m.attr("EM_MAX_FALL") = lgssm::kEmMaxFall;
  m.def("sgd_minibatches", &lgssm::sgd_minibatches, "num_sequences"_a, "batch_size"_a, "shuffle"_a, "seed"_a,
        "epoch"_a);
  m.def(
      "minibatch_loss",
      [](const lgssm::Params& p, const Props& props, const lgssm::SufficientStats& stats, double batch_weight,
         double scale, const lgssm::ConjugatePrior* prior) {
        lgssm::Vector grad;
        const double loss = lgssm::minibatch_loss(p, props, stats, batch_weight, scale, prior, grad);
        return std::make_tuple(loss, grad);
      },
      "params"_a, "props"_a, "stats"_a, "batch_weight"_a, "scale"_a, "prior"_a.none());
  m.def(
      "adam_update",
      [](const lgssm::AdamOptions& o, const lgssm::Vector& grad, lgssm::Vector x, lgssm::AdamState& state) {
        lgssm::adam_update(o, grad, x, state);
        return x;
      },
      "options"_a, "grad"_a, "x"_a, "state"_a);

  m.def(
      "fit_em",
      [](const lgssm::Params& p, const Props& props, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         const EmOptions& options, nb::object callback) {
        return run_fit(p, props, emissions, inputs, options, callback, [](auto&&... a) { return lgssm::fit_em(a...); });
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "options"_a, "callback"_a.none());
  // The SGD driver (fit.hpp) for lgssm.distributed: loss(x, batch,
  // batch_weight) -> (loss, gradient or None), after_epoch(x, state, history)
  // or None; `history` resumes a fit; update(grad, x, loss) -> x replaces Adam (an
  // optax optimizer) or is None. Runs with the GIL held.
  m.def(
      "run_sgd",
      [](nb::object loss, size_t num_sequences, lgssm::Vector x, lgssm::AdamState state, SgdOptions o,
         nb::object callback, nb::object after_epoch, std::vector<double> history, nb::object update) {
        lgssm::SgdSteps steps;
        steps.loss = [&](const lgssm::Vector& at, const std::vector<size_t>& batch, double weight, lgssm::Vector& g) {
          const nb::tuple out = nb::cast<nb::tuple>(loss(at, batch, weight));
          const double f = nb::cast<double>(out[0]);
          if (std::isfinite(f)) g = nb::cast<lgssm::Vector>(out[1]);
          return f;
        };
        if (!after_epoch.is_none())
          steps.after_epoch = [&](const lgssm::Vector& at, const lgssm::AdamState& st, const std::vector<double>& h) {
            after_epoch(at, st, h);
          };
        if (!callback.is_none()) o.callback = lgssm::bindings::wrap_callback(callback);
        o.update = lgssm::bindings::wrap_update(update);
        lgssm::SgdRun run = lgssm::run_sgd(steps, num_sequences, std::move(x), std::move(state), o, std::move(history));
        return std::make_tuple(run.x, run.history, lgssm::bindings::summary_dict(run.summary));
      },
      "loss"_a, "num_sequences"_a, "x"_a, "state"_a, "options"_a, "callback"_a.none(), "after_epoch"_a.none(),
      "history"_a, "update"_a.none() = nb::none());
  // The EM driver (fit.hpp) over Python objects, for lgssm.distributed, whose
  // E-step runs on a Dask cluster: e_step(params) -> stats,
  // objective(params, stats) -> float, m_step(params, stats) -> params (a
  // ValueError from either step is a failed step), after_m_step(params,
  // history) or None; `history` resumes a fit. Runs with the GIL held.
  m.def(
      "run_em",
      [](nb::object e_step, nb::object objective, nb::object m_step, nb::object start, EmLoopOptions o,
         nb::object callback, nb::object after_m_step, std::vector<double> history) {
        const auto as_invalid = [](auto&& step) -> nb::object {
          try {
            return step();
          } catch (nb::python_error& e) {
            if (!e.matches(PyExc_ValueError)) throw;
            throw lgssm::invalid_argument(nb::str(e.value()).c_str());
          }
        };
        lgssm::EmSteps<nb::object, nb::object> steps;
        steps.e_step = [&](const nb::object& p) { return as_invalid([&] { return e_step(p); }); };
        steps.objective = [&](const nb::object& p, const nb::object& s) { return nb::cast<double>(objective(p, s)); };
        steps.m_step = [&](const nb::object& p, const nb::object& s) {
          return as_invalid([&] { return m_step(p, s); });
        };
        if (!after_m_step.is_none())
          steps.after_m_step = [&](const nb::object& p, const std::vector<double>& h) { after_m_step(p, h); };
        if (!callback.is_none()) o.callback = lgssm::bindings::wrap_callback(callback);
        lgssm::EmRun<nb::object> run = lgssm::run_em(steps, start, o, std::move(history));
        return std::make_tuple(run.params, run.history, lgssm::bindings::summary_dict(run.summary));
      },
      "e_step"_a, "objective"_a, "m_step"_a, "start"_a, "options"_a, "callback"_a.none(), "after_m_step"_a.none(),
      "history"_a);
  m.def(
      "fit_sgd",
      [](const lgssm::Params& p, const Props& props, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         SgdOptions options, nb::object callback, nb::object update) {
        options.update = lgssm::bindings::wrap_update(update);
        return run_fit(p, props, emissions, inputs, options, callback,
                       [](auto&&... a) { return lgssm::fit_sgd(a...); });
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "options"_a, "callback"_a.none(),
      "update"_a.none() = nb::none());
  m.def(
      "fit_lbfgs",
      [](const lgssm::Params& p, const Props& props, std::vector<RowMatrix> emissions, std::vector<RowMatrix> inputs,
         const LbfgsOptions& options, nb::object callback) {
        return run_fit(p, props, emissions, inputs, options, callback,
                       [](auto&&... a) { return lgssm::fit_lbfgs(a...); });
      },
      "params"_a, "props"_a, "emissions"_a, "inputs"_a, "options"_a, "callback"_a.none());
  // The M-step's projection of a covariance onto a structure (props.hpp), for
  // callers that give a fit a structured starting covariance.
  m.def(
      "project_covariance",
      [](const lgssm::Matrix& cov, lgssm::CovStructure structure) {
        if (cov.rows() != cov.cols())
          lgssm::internal::throw_invalid("cov", "a square matrix",
                                         "shape " + lgssm::internal::shape_str(cov.rows(), cov.cols()));
        return lgssm::project(cov, structure);
      },
      "cov"_a, "structure"_a);
}
