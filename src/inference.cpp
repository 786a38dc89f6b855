#include "lgssm/inference.hpp"

#include <random>
#include <utility>

#include "checks.hpp"
#include "internal.hpp"
#include "kalman.hpp"
#include "lgssm/error.hpp"
#include "linalg.hpp"

namespace lgssm {

using internal::dispatch_state_dim;
using internal::KalmanFilter;
using internal::NoMallocScope;
using internal::PsdFactor;
using internal::row_view;
using internal::view;
using internal::shape_str;
using internal::throw_invalid;

namespace {

// Row t of a (num_timesteps, dim) array as a vector; empty when there are no inputs.
Eigen::Map<const Vector> row_at(const RowMatrix& m, Eigen::Index t) {
  if (m.size() == 0) return Eigen::Map<const Vector>(nullptr, 0);
  return Eigen::Map<const Vector>(m.row(t).data(), m.cols());
}

// Runs the filter over `seq`, calling on_predicted(t, kf) and on_filtered(t, kf)
// after each half step; returns log p(y).
template <class Filter, class OnPredicted, class OnFiltered>
double run_filter(Filter& kf, const Sequence& seq, OnPredicted on_predicted,
                  OnFiltered on_filtered) {
  [[maybe_unused]] NoMallocScope no_malloc;
  double loglik = 0.0;
  for (Eigen::Index t = 0; t < seq.num_timesteps(); ++t) {
    const auto u = row_at(seq.inputs, t);
    kf.predict(t, u);
    on_predicted(t, kf);
    loglik += kf.update(t, u);
    on_filtered(t, kf);
  }
  return loglik;
}

constexpr auto kNothing = [](Eigen::Index, const auto&) {};

template <class Filter>
void store(const Filter& kf, Eigen::Index t, RowMatrix& means, MatrixSeries& covs) {
  constexpr int N = Filter::Vec::RowsAtCompileTime;
  row_view<N>(means, t) = kf.mean();
  view<N, N>(covs[t]) = kf.cov().transpose();  // symmetric: a straight copy into the row-major entry
}

template <int N>
FilterResult run_stored_filter(const Params& params, const Sequence& seq) {
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps();
  FilterResult r;
  internal::resize_result(r.filtered_means, steps, n);
  internal::resize_result(r.predicted_means, steps, n);
  r.filtered_covariances = internal::result_series(steps, n, n);
  r.predicted_covariances = internal::result_series(steps, n, n);
  KalmanFilter<N> kf(params, seq.emissions);
  r.marginal_loglik = run_filter(
      kf, seq, [&](Eigen::Index t, const auto& kf) { store(kf, t, r.predicted_means, r.predicted_covariances); },
      [&](Eigen::Index t, const auto& kf) { store(kf, t, r.filtered_means, r.filtered_covariances); });
  return r;
}

FilterResult run_stored_filter(const Params& params, const Sequence& seq) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) { return run_stored_filter<n>(params, seq); });
}

// The smoother gain of step t, stored transposed: G_t^T = P_{t+1|t}^{-1} F P_{t|t}
// (Sarkka 2013, Eq. 8.11). The pivoted LDL^T solve tolerates a singular P_{t+1|t}.
template <int N = Eigen::Dynamic>
class SmootherGain {
 public:
  using Mat = internal::MatrixN<N>;
  explicit SmootherGain(Eigen::Index n) : ldlt_(n), fp_(n, n), gain_t_(n, n) {}
  const Mat& compute(const Params& params, const FilterResult& f, Eigen::Index t) {
    fp_.noalias() = view<N, N>(params.dynamics.weights.at(t)) * view<N, N>(f.filtered_covariances[t]);
    ldlt_.compute(view<N, N>(f.predicted_covariances[t + 1]));
    gain_t_ = ldlt_.solve(fp_);
    return gain_t_;
  }

 private:
  Eigen::LDLT<Mat> ldlt_;
  Mat fp_;
  Mat gain_t_;
};

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
    KalmanFilter<n> kf(params, seq.emissions);
    return run_filter(kf, seq, kNothing, kNothing);
  });
}

// The backward pass of the Rauch-Tung-Striebel smoother on top of the stored filter.
template <int N>
SmootherResult rts_smoother(const Params& params, const Sequence& seq) {
  using Vec = internal::VectorN<N>;
  using Mat = internal::MatrixN<N>;
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps();
  SmootherResult r;
  static_cast<FilterResult&>(r) = run_stored_filter<N>(params, seq);
  internal::resize_result(r.smoothed_means, steps, n);
  r.smoothed_covariances = internal::result_series(steps, n, n);
  r.smoothed_cross_covariances = internal::result_series(steps - 1, n, n);
  r.smoothed_means.row(steps - 1) = r.filtered_means.row(steps - 1);
  r.smoothed_covariances[steps - 1] = r.filtered_covariances[steps - 1];

  SmootherGain<N> gain(n);
  Vec dm(n);
  Mat dp(n, n), tmp(n, n), ps(n, n);
  [[maybe_unused]] NoMallocScope no_malloc;
  for (Eigen::Index t = steps - 2; t >= 0; --t) {
    const Mat& gt = gain.compute(params, r, t);  // G_t^T
    dm = row_view<N>(std::as_const(r.smoothed_means), t + 1) - row_view<N>(std::as_const(r.predicted_means), t + 1);
    auto mean = row_view<N>(r.smoothed_means, t);
    mean = row_view<N>(std::as_const(r.filtered_means), t);
    mean.noalias() += gt.transpose() * dm;
    const auto next = view<N, N>(std::as_const(r.smoothed_covariances)[t + 1]);
    dp = next - view<N, N>(std::as_const(r.predicted_covariances)[t + 1]);
    tmp.noalias() = gt.transpose() * dp;
    ps = view<N, N>(std::as_const(r.filtered_covariances)[t]);
    ps.noalias() += tmp * gt;
    internal::symmetrize(ps);
    view<N, N>(r.smoothed_covariances[t]) = ps.transpose();  // symmetric
    view<N, N>(r.smoothed_cross_covariances[t]).noalias() = next * gt;
  }
  return r;
}

// Validates once, then fn(seq) for every sequence in parallel.
template <class Fn>
auto map_validated(const Params& params, const std::vector<Sequence>& seqs, int num_threads, Fn fn) {
  validate(params);
  validate(params, seqs);
  return map_sequences(seqs, fn, num_threads);
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
  return map_validated(params, seqs, num_threads,
                       [&](const Sequence& s) { return marginal_log_prob_unchecked(params, s); });
}

std::vector<FilterResult> filter(const Params& params, const std::vector<Sequence>& seqs, int num_threads) {
  return map_validated(params, seqs, num_threads, [&](const Sequence& s) { return run_stored_filter(params, s); });
}

std::vector<SmootherResult> smoother(const Params& params, const std::vector<Sequence>& seqs, int num_threads) {
  return map_validated(params, seqs, num_threads,
                       [&](const Sequence& s) { return internal::smoother_unchecked(params, s); });
}

SmootherResult internal::smoother_unchecked(const Params& params, const Sequence& seq) {
  return dispatch_state_dim(params.state_dim(), [&](auto n) { return rts_smoother<n>(params, seq); });
}

SampleResult sample(const Params& params, std::uint64_t seed, Eigen::Index num_timesteps,
                    const RowMatrix& inputs) {
  validate(params);
  if (num_timesteps < 1) throw_invalid("num_timesteps", "an integer >= 1", std::to_string(num_timesteps));
  check_inputs(params, inputs, num_timesteps, "inputs");
  check_series_lengths(params, num_timesteps);
  const Eigen::Index n = params.state_dim(), p = params.emission_dim();
  std::mt19937_64 rng(seed);
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

MatrixSeries posterior_sample(const Params& params, const Sequence& seq, std::uint64_t seed,
                              Eigen::Index num_samples) {
  validate_all(params, seq);
  if (num_samples < 1) throw_invalid("num_samples", "an integer >= 1", std::to_string(num_samples));
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps();
  const FilterResult f = run_stored_filter(params, seq);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  MatrixSeries draws(num_samples, steps, n);
  Vector eps(n), dz(n);
  PsdFactor<> factor(n);
  auto draw_last = [&]() {
    const Matrix& c = factor.compute(f.filtered_covariances[steps - 1]);
    for (Eigen::Index s = 0; s < num_samples; ++s) {
      for (Eigen::Index i = 0; i < n; ++i) eps(i) = normal(rng);
      draws[s].row(steps - 1) = f.filtered_means.row(steps - 1) + (c * eps).transpose();
    }
  };
  draw_last();
  // z_t | z_{t+1}, y ~ N(m_{t|t} + G_t (z_{t+1} - m_{t+1|t}), P_{t|t} - G_t P_{t+1|t} G_t^T).
  SmootherGain<> gain(n);
  Matrix cond(n, n), tmp(n, n);
  for (Eigen::Index t = steps - 2; t >= 0; --t) {
    const Matrix& gt = gain.compute(params, f, t);
    tmp.noalias() = f.predicted_covariances[t + 1] * gt;
    cond = f.filtered_covariances[t];
    cond.noalias() -= gt.transpose() * tmp;
    internal::symmetrize(cond);
    const Matrix& c = factor.compute(cond);
    for (Eigen::Index s = 0; s < num_samples; ++s) {
      for (Eigen::Index i = 0; i < n; ++i) eps(i) = normal(rng);
      dz = (draws[s].row(t + 1) - f.predicted_means.row(t + 1)).transpose();
      draws[s].row(t) = f.filtered_means.row(t) + (gt.transpose() * dz + c * eps).transpose();
    }
  }
  return draws;
}

PosteriorPredictiveResult posterior_predictive(const Params& params, const Sequence& seq,
                                               bool full_covariances) {
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
      out.covariances[t].noalias() = hp * h.transpose();
      out.covariances[t] += e.cov.at(t);
    }
  }
  return out;
}

ForecastResult forecast(const Params& params, const Sequence& seq,
                        Eigen::Index num_forecast_timesteps, const RowMatrix& forecast_inputs) {
  validate_all(params, seq);
  const Eigen::Index k_steps = num_forecast_timesteps, steps = seq.num_timesteps();
  if (k_steps < 0)
    throw_invalid("num_forecast_timesteps", "an integer >= 0", std::to_string(k_steps));
  check_inputs(params, forecast_inputs, k_steps, "forecast_inputs");
  check_series_lengths(params, steps + k_steps);
  const Eigen::Index n = params.state_dim(), p = params.emission_dim();
  const auto& e = params.emissions;
  ForecastResult out{RowMatrix(k_steps, n), MatrixSeries(k_steps, n, n), RowMatrix(k_steps, p),
                     MatrixSeries(k_steps, p, p)};
  KalmanFilter<> kf(params, seq.emissions);
  run_filter(kf, seq, kNothing, kNothing);
  Matrix hp(p, n);
  for (Eigen::Index k = 0; k < k_steps; ++k) {
    const Eigen::Index t = steps + k;
    const auto u = row_at(forecast_inputs, k);
    kf.predict(t, u);
    store(kf, k, out.means, out.covariances);
    const auto h = e.weights.at(t);
    out.emission_means.row(k) = (h * kf.mean() + e.bias.vec(t)).transpose();
    if (u.size() > 0) out.emission_means.row(k) += (e.input_weights.at(t) * u).transpose();
    hp.noalias() = h * kf.cov();
    out.emission_covariances[k].noalias() = hp * h.transpose();
    out.emission_covariances[k] += e.cov.at(t);
  }
  return out;
}

}  // namespace lgssm
