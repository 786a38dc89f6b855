#include "lgssm/inference.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <utility>

#include "checks.hpp"
#include "diffuse.hpp"
#include "kalman.hpp"
#include "lgssm/error.hpp"
#include "lgssm/parallel.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"

namespace lgssm {

using internal::dispatch_state_dim;
using internal::KalmanFilter;
using internal::NoMallocScope;
using internal::PsdFactor;
using internal::row_at;
using internal::shape_str;
using internal::sized;
using internal::sized_row;
using internal::step_columns;
using internal::throw_invalid;

namespace {

// Runs the filter over `seq`, calling on_predicted(t, kf) and on_filtered(t, kf)
// after each half step; returns log p(y) (the diffuse log likelihood with a
// diffuse initial state). With a diffuse initial state, the steps of the
// diffuse period run the exact initial filter (DiffuseFilter, diffuse.hpp),
// whose moments (a, P_*) are handed to kf (its moments during those steps),
// and kf takes over once P_inf = 0; `trace` (if given) receives what the
// smoother needs of that period. The diffuse period may allocate; the time
// loop after it does not. A filter of width > 1 runs `seq` as that many
// interleaved sequences (step_columns), which needs a known initial state.
template <class Filter, class OnPredicted, class OnFiltered>
double run_filter(Filter& kf, const Params& params, const Sequence& seq, OnPredicted on_predicted,
                  OnFiltered on_filtered, internal::DiffuseTrace* trace = nullptr) {
  constexpr int G = Filter::Means::ColsAtCompileTime;
  double loglik = 0.0;
  Eigen::Index t = 0;
  const Eigen::Index width = kf.width(), steps = seq.num_timesteps() / width;
  internal::DiffuseTrace local;
  internal::DiffuseTrace& dt = trace ? *trace : local;
  dt = internal::DiffuseTrace();
  if constexpr (G == 1) kf.look_ahead(seq);
  if constexpr (G != 1) {
    if (params.initial.is_diffuse())
      throw std::logic_error("run_filter: interleaved sequences need a known initial state");
  } else if (params.initial.is_diffuse()) {
    internal::DiffuseFilter df(params.state_dim(), params.emission_dim());
    t = internal::run_diffuse_period(
        df, params, seq,
        [&](Eigen::Index step, const internal::DiffuseFilter& f) {
          if (trace) trace->predicted_diffuse.push_back(f.diffuse());
          kf.set_moments(f.mean(), f.cov());
          on_predicted(step, kf);
        },
        [&](Eigen::Index step, const internal::DiffuseFilter& f, double step_loglik) {
          loglik += step_loglik;
          kf.set_moments(f.mean(), f.cov());
          on_filtered(step, kf);
          if (trace) trace->filtered_diffuse.push_back(f.diffuse());
        });
    dt.num_steps = t;
    dt.final_rank = df.rank();
  }
  [[maybe_unused]] NoMallocScope no_malloc;
  for (; t < steps; ++t) {
    const auto u = step_columns<Eigen::Dynamic, G>(seq.inputs, t, width);
    kf.predict(params, t, u);  // t = 0: the initial moments (also with a rank-0 diffuse part)
    on_predicted(t, kf);
    loglik += kf.update(params, t, step_columns<Eigen::Dynamic, G>(seq.emissions, t, width), u);
    on_filtered(t, kf);
  }
  return loglik;
}

constexpr auto kNothing = [](Eigen::Index, const auto&) {};

template <class Filter>
void store(const Filter& kf, Eigen::Index t, RowMatrix& means, MatrixSeries& covs) {
  constexpr int N = Filter::Vec::RowsAtCompileTime, G = Filter::Means::ColsAtCompileTime;
  step_columns<N, G>(means, t, kf.width()) = kf.mean();
  sized<N, N>(covs[t]) = kf.cov().transpose();  // symmetric: a straight copy into the row-major entry
}

// Per step t, the terms of the backward recursion (KalmanFilter::backward_*):
// a_t (rows of `a`), A_t and, for covariances, Omega_t. A_t and Omega_t are
// entry index[t] of their series: a step whose terms equal the previous
// step's (the filter's steady state repeats them) shares its entry, and the
// entries never written are never paged in.
struct BackwardTerms {
  RowMatrix a;
  std::vector<Eigen::Index> index;
  MatrixSeries transition, omega;
  ConstMatrixMap transition_at(Eigen::Index t) const { return transition[index[t]]; }
  ConstMatrixMap omega_at(Eigen::Index t) const { return omega[index[t]]; }
};

// With G != 1, `seq` holds `width` interleaved sequences (step_columns): the
// means (and a) are interleaved the same way, the covariances are shared.
template <int N, int G = 1>
FilterResult run_stored_filter(const Params& params, const Sequence& seq, BackwardTerms* back = nullptr,
                               bool omega = false, internal::DiffuseTrace* diffuse = nullptr, Eigen::Index width = 1) {
  const Eigen::Index n = params.state_dim(), rows = seq.num_timesteps(), steps = rows / width;
  FilterResult r;
  internal::resize_result(r.filtered_means, rows, n);
  internal::resize_result(r.predicted_means, rows, n);
  r.filtered_covariances = internal::result_series(steps, n, n);
  r.predicted_covariances = internal::result_series(steps, n, n);
  if (back) {
    internal::resize_result(back->a, rows, n);
    back->index.resize(steps);
    back->transition = internal::result_series(steps, n, n);
    if (omega) back->omega = internal::result_series(steps, n, n);
  }
  KalmanFilter<N, G> kf(n, params.emission_dim(), back != nullptr, false, width);
  internal::DiffuseTrace trace;
  r.marginal_loglik = run_filter(
      kf, params, seq,
      [&](Eigen::Index t, const auto& kf) { store(kf, t, r.predicted_means, r.predicted_covariances); },
      [&](Eigen::Index t, const auto& kf) {
        store(kf, t, r.filtered_means, r.filtered_covariances);
        if (!back) return;
        step_columns<N, G>(back->a, t, width) = kf.backward_a();
        Eigen::Index k = t == 0 ? 0 : back->index[t - 1];
        const auto equal = [](const auto& a, const auto& b) { return (a.array() == b.array()).all(); };
        if (t == 0 || !equal(back->transition[k], kf.backward_transition()) ||
            (omega && !equal(back->omega[k], kf.backward_omega()))) {
          k += t > 0;
          sized<N, N>(back->transition[k]) = kf.backward_transition();
          if (omega) sized<N, N>(back->omega[k]) = kf.backward_omega();
        }
        back->index[t] = k;
      },
      &trace);
  r.num_diffuse_timesteps = trace.num_steps;
  if (diffuse) *diffuse = std::move(trace);
  return r;
}

FilterResult run_stored_filter(const Params& params, const Sequence& seq) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) { return run_stored_filter<n>(params, seq); });
}

// Factors of the entries of a covariance series, recomputed only when the entry changes.
class SeriesFactor {
 public:
  SeriesFactor(const MatrixSeries& series) : series_(series), factor_(series.rows()) {}
  const Matrix& at(Eigen::Index t) {
    const Eigen::Index i = series_.size() == 1 ? 0 : t;
    if (i != last_) factor_.compute(series_[i]);
    last_ = i;
    return factor_.factor();
  }

 private:
  const MatrixSeries& series_;
  PsdFactor<> factor_;
  Eigen::Index last_ = -1;
};

void validate_all(const Params& params, const Sequence& seq) {
  validate(params);
  validate(params, seq);
}

double marginal_log_prob_unchecked(const Params& params, const Sequence& seq) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) {
    KalmanFilter<n> kf(params.state_dim(), params.emission_dim());
    return run_filter(kf, params, seq, kNothing, kNothing);
  });
}

// The smoother: the stored filter, keeping each step's backward terms, then
// the backward recursion of Bryson & Frazier in de Jong's form over the whole
// sequence (internal::BackwardRecursion, kalman.hpp, gives the equations).
// Without covariances, only the means (the simulation smoother's need).
// With `trace`, also what the recursion used at each step (internal::BackwardTrace).
// With G != 1, `seq` holds `width` interleaved sequences of a known initial
// state (run_stored_filter). With `transition_score` (and covariances), also
// sum_t sum_columns (r^-_t r^-_t^T - N^-_t) over the transitions t-1 -> t
// (t >= 1), the exact score of the dynamics noise covariance (halved;
// internal::smoother_unchecked); left empty with a diffuse initial state.
template <int N, int G = 1>
SmootherResult smoother_impl(const Params& params, const Sequence& seq, bool covariances,
                             internal::BackwardTrace* trace = nullptr, Eigen::Index width = 1,
                             Matrix* transition_score = nullptr) {
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps() / width;
  SmootherResult r;
  BackwardTerms back;
  internal::DiffuseTrace diffuse;
  static_cast<FilterResult&>(r) = run_stored_filter<N, G>(params, seq, &back, covariances, &diffuse, width);
  internal::check_diffuse_identified(diffuse, "smoother");
  const Eigen::Index d = diffuse.num_steps;
  internal::resize_result(r.smoothed_means, steps * width, n);
  if (covariances) {
    r.smoothed_covariances = internal::result_series(steps, n, n);
    r.smoothed_cross_covariances = internal::result_series(steps - 1, n, n);
  }
  if (trace) {
    internal::resize_result(trace->score, steps, n);
    trace->info = internal::result_series(steps, n, n);
  }
  internal::BackwardRecursion<N, G> recursion(n, width);
  const bool score = transition_score != nullptr && covariances && d == 0;
  internal::MatrixN<N> score_sum = internal::MatrixN<N>::Zero(n, n);
  {
    [[maybe_unused]] NoMallocScope no_malloc;
    for (Eigen::Index t = steps - 1; t >= d; --t) {
      const auto pf = sized<N, N>(std::as_const(r.filtered_covariances)[t]);
      const auto a_mat = sized<N, N>(back.transition_at(t));
      recursion.smooth_mean(step_columns<N, G>(std::as_const(r.filtered_means), t, width), pf,
                            step_columns<N, G>(std::as_const(back.a), t, width), a_mat,
                            step_columns<N, G>(r.smoothed_means, t, width));
      if (covariances) {
        // Whether the step's inputs repeat the later step's exactly (the filter's steady state).
        const auto same = [&](const MatrixSeries& s, Eigen::Index i) {
          const auto a = s[i], b = s[i + 1];
          return std::equal(a.data(), a.data() + a.size(), b.data());
        };
        const bool repeats = t + 1 < steps && t > d && params.dynamics.weights.size() == 1 &&
                             back.index[t] == back.index[t + 1] && same(r.filtered_covariances, t) &&
                             same(r.predicted_covariances, t) && same(r.filtered_covariances, t - 1);
        recursion.smooth_cov(pf, a_mat, sized<N, N>(back.omega_at(t)), sized<N, N>(r.smoothed_covariances[t]), repeats);
      }
      if (trace) {
        sized_row<N>(trace->score, t) = recursion.score_minus();
        sized<N, N>(trace->info[t]) = recursion.info_minus();  // symmetric: a straight copy
      }
      if (t == 0) break;
      if (score) {
        score_sum.noalias() += recursion.score_minus() * recursion.score_minus().transpose();
        score_sum -= static_cast<double>(width) * recursion.info_minus();
      }
      const auto f = sized<N, N>(params.dynamics.weights.at(t - 1));
      recursion.transition_mean(f);
      if (covariances) {
        recursion.transition_cov(f);
        recursion.cross_cov(f, sized<N, N>(std::as_const(r.predicted_covariances)[t]),
                            sized<N, N>(std::as_const(r.filtered_covariances)[t - 1]),
                            sized<N, N>(r.smoothed_cross_covariances[t - 1]));
      }
    }
  }
  if constexpr (G == 1)
    if (d > 0) {
      // The exact initial smoother over the diffuse period, from the score and
      // information about z_{d-1} (filtered level) that the loop above left.
      internal::diffuse_smoother(params, seq, diffuse, r.predicted_means, r.predicted_covariances,
                                 r.filtered_covariances, recursion.score(), recursion.info(), covariances,
                                 r.smoothed_means, covariances ? &r.smoothed_covariances : nullptr,
                                 covariances ? &r.smoothed_cross_covariances : nullptr);
      if (trace) {  // the diffuse steps have no known-initialization backward terms
        trace->score.topRows(d).setConstant(std::numeric_limits<double>::quiet_NaN());
        for (Eigen::Index t = 0; t < d; ++t) trace->info[t].setConstant(std::numeric_limits<double>::quiet_NaN());
      }
    }
  if (trace) {
    trace->transition = internal::result_series(steps, n, n);
    for (Eigen::Index t = 0; t < steps; ++t) trace->transition[t] = back.transition_at(t);
  }
  if (transition_score) *transition_score = score ? Matrix(score_sum) : Matrix();
  return r;
}

SmootherResult smoother_impl(const Params& params, const Sequence& seq, bool covariances) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) { return smoother_impl<n>(params, seq, covariances); });
}

// Validates once, then fn(seq) for every sequence in parallel.
template <class Fn>
auto map_validated(const Params& params, const std::vector<Sequence>& seqs, int num_threads, Fn fn) {
  validate(params);
  validate(params, seqs);
  return parallel_map(seqs, fn, num_threads);
}

}  // namespace

double marginal_log_prob(const Params& params, const Sequence& seq) {
  validate_all(params, seq);
  return marginal_log_prob_unchecked(params, seq);
}

FilterResult filter(const Params& params, const Sequence& seq) {
  validate_all(params, seq);
  return run_stored_filter(params, seq);
}

SmootherResult smoother(const Params& params, const Sequence& seq) {
  validate_all(params, seq);
  return internal::smoother_unchecked(params, seq);
}

std::vector<double> marginal_log_prob(const Params& params, const std::vector<Sequence>& seqs, int num_threads) {
  validate(params);
  validate(params, seqs);
  std::vector<size_t> all(seqs.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::vector<double> out(seqs.size());
  internal::for_each_block(internal::column_blocks(params, seqs, all), seqs, num_threads,
                           [&](Eigen::Index, const std::vector<size_t>& b, const Sequence& seq, Eigen::Index width) {
                             if (width == 1) {
                               out[b[0]] = marginal_log_prob_unchecked(params, seq);
                               return;
                             }
                             const Vector each = internal::marginal_log_prob_columns(params, seq, width);
                             for (Eigen::Index j = 0; j < width; ++j) out[b[j]] = each(j);
                           });
  return out;
}

std::vector<FilterResult> filter(const Params& params, const std::vector<Sequence>& seqs, int num_threads) {
  return map_validated(params, seqs, num_threads, [&](const Sequence& s) { return run_stored_filter(params, s); });
}

std::vector<SmootherResult> smoother(const Params& params, const std::vector<Sequence>& seqs, int num_threads) {
  return map_validated(params, seqs, num_threads,
                       [&](const Sequence& s) { return internal::smoother_unchecked(params, s); });
}

SmootherResult internal::smoother_unchecked(const Params& params, const Sequence& seq, Matrix* transition_score) {
  return dispatch_state_dim(params.state_dim(),
                            [&](auto n) { return smoother_impl<n>(params, seq, true, nullptr, 1, transition_score); });
}

SmootherResult internal::smoother_columns(const Params& params, const Sequence& interleaved, Eigen::Index width,
                                          Matrix* transition_score) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) {
    return smoother_impl<n, Eigen::Dynamic>(params, interleaved, true, nullptr, width, transition_score);
  });
}

Vector internal::marginal_log_prob_columns(const Params& params, const Sequence& interleaved, Eigen::Index width) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) {
    KalmanFilter<n, Eigen::Dynamic> kf(params.state_dim(), params.emission_dim(), false, false, width);
    Eigen::RowVectorXd each = Eigen::RowVectorXd::Zero(width);
    run_filter(kf, params, interleaved, kNothing, [&](Eigen::Index, const auto& f) { each += f.column_loglik(); });
    return Vector(each.transpose());
  });
}

SmootherResult internal::smoother_traced(const Params& params, const Sequence& seq, BackwardTrace& trace) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) { return smoother_impl<n>(params, seq, true, &trace); });
}

namespace {

// One draw of (z, y) from the model, from `rng`.
SampleResult draw_joint(const Params& params, std::mt19937_64& rng, Eigen::Index num_timesteps,
                        const RowMatrix& inputs) {
  const Eigen::Index n = params.state_dim(), p = params.emission_dim();
  std::normal_distribution<double> normal;
  auto standard_normal = [&](Vector& v) {
    for (Eigen::Index i = 0; i < v.size(); ++i) v(i) = normal(rng);
  };
  SampleResult out{RowMatrix(num_timesteps, n), RowMatrix(num_timesteps, p)};
  SeriesFactor q(params.dynamics.cov), r(params.emissions.cov);
  PsdFactor<> initial(n);
  Vector eps_n(n), eps_p(p), z(n), prev(n), y(p);
  const auto& d = params.dynamics;
  const auto& e = params.emissions;
  for (Eigen::Index t = 0; t < num_timesteps; ++t) {
    const auto u = row_at(inputs, t);
    standard_normal(eps_n);
    if (t == 0) {
      z = params.initial.mean;
      z.noalias() += initial.compute(params.initial.cov) * eps_n;
    } else {
      const Eigen::Index k = t - 1;
      prev = z;
      z.noalias() = d.weights.at(k) * prev;
      z += d.bias.vec(k);
      if (u.size() > 0) z.noalias() += d.input_weights.at(k) * u;
      z.noalias() += q.at(k) * eps_n;
    }
    standard_normal(eps_p);
    y.noalias() = e.weights.at(t) * z;
    y += e.bias.vec(t);
    if (u.size() > 0) y.noalias() += e.input_weights.at(t) * u;
    y.noalias() += r.at(t) * eps_p;
    out.states.row(t) = z.transpose();
    out.emissions.row(t) = y.transpose();
  }
  return out;
}

}  // namespace

SampleResult sample(const Params& params, std::uint64_t seed, Eigen::Index num_timesteps, const RowMatrix& inputs) {
  validate(params);
  if (params.initial.is_diffuse())
    throw_invalid("initial.diffuse",
                  "no diffuse part (a diffuse initial state has no distribution to sample from; "
                  "give a known initial mean and covariance)",
                  "a diffuse part of " + std::to_string(params.initial.diffuse.cols()) + " column(s)");
  if (num_timesteps < 1) throw_invalid("num_timesteps", "an integer >= 1", std::to_string(num_timesteps));
  internal::check_inputs(params, inputs, num_timesteps, "inputs");
  internal::check_series_lengths(params, num_timesteps);
  std::mt19937_64 rng(seed);
  return draw_joint(params, rng, num_timesteps, inputs);
}

// The simulation smoother of Durbin & Koopman (2002, Biometrika 89): with
// (z+, y+) drawn from the model and y+ missing where y is,
//   z+ - E[z | y+] + E[z | y] ~ p(z | y),
// since the smoothed mean is linear in the data and the smoothing error is
// independent of the data. It needs only smoothed means, so it is exact
// wherever the smoother is (singular Q or P0, exactly observed components).
RowMatrix internal::simulation_smoother_draw(const Params& params, const Sequence& seq, const RowMatrix& smoothed_means,
                                             std::mt19937_64& rng) {
  SampleResult joint = draw_joint(params, rng, seq.num_timesteps(), seq.inputs);
  joint.emissions = seq.emissions.array().isNaN().select(seq.emissions, joint.emissions);
  const Sequence simulated{joint.emissions, seq.inputs};
  return joint.states + smoothed_means - smoother_impl(params, simulated, false).smoothed_means;
}

SmootherResult internal::smoothed_means_unchecked(const Params& params, const Sequence& seq) {
  return smoother_impl(params, seq, false);
}

MatrixSeries posterior_sample(const Params& params, const Sequence& seq, std::uint64_t seed, Eigen::Index num_samples) {
  validate_all(params, seq);
  if (num_samples < 1) throw_invalid("num_samples", "an integer >= 1", std::to_string(num_samples));
  const RowMatrix mean = smoother_impl(params, seq, false).smoothed_means;
  std::mt19937_64 rng(seed);
  MatrixSeries draws(num_samples, seq.num_timesteps(), params.state_dim());
  for (Eigen::Index s = 0; s < num_samples; ++s) draws[s] = internal::simulation_smoother_draw(params, seq, mean, rng);
  return draws;
}

PosteriorPredictiveResult posterior_predictive(const Params& params, const Sequence& seq, bool full_covariances) {
  const SmootherResult s = smoother(params, seq);
  const Eigen::Index p = params.emission_dim(), steps = seq.num_timesteps();
  const auto& e = params.emissions;
  PosteriorPredictiveResult out;
  out.means.resize(steps, p);
  out.stds.resize(steps, p);
  if (full_covariances) out.covariances = MatrixSeries(steps, p, p);
  Matrix hp(p, params.state_dim());
  Vector y(p);
  for (Eigen::Index t = 0; t < steps; ++t) {
    const auto h = e.weights.at(t);
    const auto u = row_at(seq.inputs, t);
    y.noalias() = h * s.smoothed_means.row(t).transpose();
    y += e.bias.vec(t);
    if (u.size() > 0) y.noalias() += e.input_weights.at(t) * u;
    out.means.row(t) = y.transpose();
    hp.noalias() = h * s.smoothed_covariances[t];
    const Vector var = hp.cwiseProduct(h).rowwise().sum() + e.cov.at(t).diagonal();
    out.stds.row(t) = var.cwiseMax(0.0).cwiseSqrt().transpose();
    if (full_covariances) {
      auto cov = out.covariances[t];
      cov.noalias() = hp * h.transpose();
      cov += e.cov.at(t);
      internal::symmetrize(cov);
    }
  }
  return out;
}

ForecastResult forecast(const Params& params, const Sequence& seq, Eigen::Index num_forecast_timesteps,
                        const RowMatrix& forecast_inputs) {
  validate_all(params, seq);
  const Eigen::Index k_steps = num_forecast_timesteps, steps = seq.num_timesteps();
  if (k_steps < 0) throw_invalid("num_forecast_timesteps", "an integer >= 0", std::to_string(k_steps));
  internal::check_inputs(params, forecast_inputs, k_steps, "forecast_inputs");
  internal::check_series_lengths(params, steps + k_steps);
  const Eigen::Index n = params.state_dim(), p = params.emission_dim();
  const auto& e = params.emissions;
  ForecastResult out{RowMatrix(k_steps, n), MatrixSeries(k_steps, n, n), RowMatrix(k_steps, p),
                     MatrixSeries(k_steps, p, p)};
  KalmanFilter<> kf(n, p);
  internal::DiffuseTrace diffuse;
  run_filter(kf, params, seq, kNothing, kNothing, &diffuse);
  internal::check_diffuse_identified(diffuse, "forecast");
  Matrix hp(p, n);
  for (Eigen::Index k = 0; k < k_steps; ++k) {
    const Eigen::Index t = steps + k;
    const auto u = row_at(forecast_inputs, k);
    kf.predict(params, t, u);
    store(kf, k, out.means, out.covariances);
    const auto h = e.weights.at(t);
    out.emission_means.row(k) = (h * kf.mean() + e.bias.vec(t)).transpose();
    if (u.size() > 0) out.emission_means.row(k) += (e.input_weights.at(t) * u).transpose();
    hp.noalias() = h * kf.cov();
    auto cov = out.emission_covariances[k];
    cov.noalias() = hp * h.transpose();
    cov += e.cov.at(t);
    internal::symmetrize(cov);
  }
  return out;
}

}  // namespace lgssm
