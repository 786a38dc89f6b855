#include "lgssm/stats.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <string>

#include "checks.hpp"
#include "lgssm/error.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"

namespace lgssm {

RegressionStats::RegressionStats(Matrix w0_)
    : w0(std::move(w0_)),
      xx(Matrix::Zero(w0.cols(), w0.cols())),
      rx(Matrix::Zero(w0.rows(), w0.cols())),
      rr(Matrix::Zero(w0.rows(), w0.rows())) {}

Matrix RegressionStats::moment(const Matrix& w) const { return rx - (w - w0) * xx; }

Matrix RegressionStats::scatter(const Matrix& w) const {
  const Matrix delta = w - w0;
  const Matrix cross = delta * rx.transpose();
  Matrix out = rr - cross - cross.transpose() + delta * xx * delta.transpose();
  internal::symmetrize(out);
  return out;
}

RegressionStats& RegressionStats::operator+=(const RegressionStats& other) {
  if (count == 0.0) return *this = other;
  if (other.w0 == w0) {
    rx += other.rx;
    rr += other.rr;
  } else {  // other's sums about this reference
    rx += other.moment(w0);
    rr += other.scatter(w0);
  }
  xx += other.xx;
  count += other.count;
  if (cov_score.size() > 0 && other.cov_score.size() > 0 && cov_score_at == other.cov_score_at) {
    cov_score += other.cov_score;
  } else {
    cov_score.resize(0, 0);
    cov_score_at.resize(0, 0);
  }
  return *this;
}

namespace {
// a[i] += b[i], extending a with b's further entries.
void add_entries(std::vector<RegressionStats>& a, const std::vector<RegressionStats>& b) {
  for (size_t i = 0; i < b.size(); ++i) {
    if (i < a.size())
      a[i] += b[i];
    else
      a.push_back(b[i]);
  }
}
}  // namespace

SufficientStats& SufficientStats::operator+=(const SufficientStats& other) {
  if (initial.w0.size() == 0) return *this = other;
  initial += other.initial;
  add_entries(dynamics, other.dynamics);
  add_entries(emissions, other.emissions);
  marginal_loglik += other.marginal_loglik;
  return *this;
}

Matrix internal::stacked(const LinearGaussianParams& c, Eigen::Index t) {
  const Eigen::Index d = c.weights.rows(), n = c.weights.cols(), m = c.input_weights.cols();
  Matrix w(d, n + m + 1);
  w << c.weights.at(t), c.input_weights.at(t), c.bias.vec(t);
  return w;
}

namespace {

using internal::sized;
using internal::stacked;

// Regressor rows x_t = [E z; u; 1], one row per term, stacked: the first
// `count` rows of `means`, the inputs from row `input_shift` on.
RowMatrix regressors(const RowMatrix& means, const RowMatrix& inputs, Eigen::Index input_shift, Eigen::Index count) {
  const Eigen::Index n = means.cols(), m = inputs.cols();
  RowMatrix x(count, n + m + 1);
  x.leftCols(n) = means.topRows(count);
  if (m > 0) x.middleCols(n, m) = inputs.middleRows(input_shift, count);
  x.col(n + m).setOnes();
  return x;
}

// Sum of `count` entries of a series from `first` on.
template <int N>
internal::MatrixN<N> series_sum(const MatrixSeries& series, Eigen::Index first, Eigen::Index count) {
  internal::MatrixN<N> sum = sized<N, N>(series[first]);
  for (Eigen::Index t = first + 1; t < first + count; ++t) sum += sized<N, N>(series[t]);
  return sum;
}

// The mean parts of terms whose regressor means are the rows of `x` and
// residual means the rows of `e`, and the state covariance `p_sum` (their
// sum over the terms) in the regressor's z block.
void add_mean_terms(RegressionStats& s, const Eigen::Ref<const RowMatrix>& x, const Eigen::Ref<const RowMatrix>& e,
                    const Matrix& p_sum) {
  const Eigen::Index n = p_sum.rows();
  s.xx.noalias() += x.transpose() * x;
  s.xx.topLeftCorner(n, n) += p_sum;
  s.rx.noalias() += e.transpose() * x;
  s.rr.noalias() += e.transpose() * e;
  s.count += static_cast<double>(x.rows());
}

// Calls fn(first, count) for each maximal run of consecutive terms
// 0..count-1 for which same(first, t) holds.
template <class Same, class Fn>
void for_each_run(Eigen::Index count, Same same, Fn fn) {
  for (Eigen::Index a = 0; a < count;) {
    Eigen::Index b = a + 1;
    while (b < count && same(a, b)) ++b;
    fn(a, b - a);
    a = b;
  }
}

// Whether steps a and b of a conditional have the same weights (the same
// entry, or equal values).
bool same_weights(const LinearGaussianParams& c, Eigen::Index a, Eigen::Index b) {
  const auto same = [&](const MatrixSeries& m) { return m.size() == 1 || m.at(a) == m.at(b); };
  return same(c.weights) && same(c.input_weights) && same(c.bias);
}

// Step t has missing components (all other rows of `e` hold y - W0 x at the
// posterior means; one row per interleaved sequence, all missing the same
// components). Given z_t and the observed part, the residual of the missing
// part is r_m = K r_o + noise (missing_law). Writes E[r_m | y] into `e_rows`,
// K H_o into the missing rows of `loading` (r = E[r] - loading (z_t - m_t) +
// noise), and adds the noise covariance, once per row, to s.rr.
void missing_terms(RegressionStats& s, const Params& params, const Sequence& seq, Eigen::Index t,
                   Eigen::Ref<RowMatrix> e_rows, Matrix& loading) {
  const Eigen::Index width = e_rows.rows();
  const internal::MissingLaw law = internal::missing_law(params.emissions.cov.at(t), seq.emissions.row(t * width));
  const auto& obs = law.observed;
  const auto& mis = law.missing;
  const RowMatrix e_m = e_rows(Eigen::all, obs) * law.gain.transpose();
  const Matrix l_m = law.gain * loading(obs, Eigen::all);
  for (size_t i = 0; i < mis.size(); ++i) {
    e_rows.col(mis[i]) = e_m.col(i);
    loading.row(mis[i]) = l_m.row(i);
  }
  s.rr(mis, mis) += static_cast<double>(width) * law.noise_factor * law.noise_factor.transpose();
}

// The statistics under the posterior moments `sm` of the states (the
// smoother's, or a known path's with zero covariances). With width > 1,
// `seq` and the means hold that many interleaved sequences (step_columns,
// row t * width + j for sequence j's step t) that share the covariances:
// each covariance sum counts once per sequence. `transition_score` (the
// smoother's, or empty) becomes the pooled dynamics' cov_score.
template <int N>
SufficientStats stats_from_moments(const Params& params, const Sequence& seq, const SmootherResult& sm,
                                   bool per_step_emissions, const std::vector<Eigen::Index>& dynamics_groups,
                                   Eigen::Index num_dynamics_groups, Eigen::Index width = 1,
                                   const Matrix& transition_score = Matrix()) {
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps() / width;
  const double copies = static_cast<double>(width);
  const auto& means = sm.smoothed_means;
  const auto& covs = sm.smoothed_covariances;
  SufficientStats s;
  s.marginal_loglik = sm.marginal_loglik;

  // Initial state: r = z_0 - m on x = [1].
  s.initial = RegressionStats(params.initial.mean);
  const RowMatrix e0 = means.topRows(width).rowwise() - params.initial.mean.transpose();
  s.initial.xx(0, 0) = copies;
  s.initial.rx = e0.colwise().sum().transpose();
  s.initial.rr.noalias() = e0.transpose() * e0;
  s.initial.rr += copies * covs[0];
  s.initial.count = copies;

  // Dynamics: term k is the transition z_k -> z_{k+1}, regressor
  // x = [z_k; u_{k+1}; 1], r = z_{k+1} - W0 x; over a run with one F,
  // E[r x^T] adds sum (C_k - F P_k) and E[r r^T] adds
  // sum (P_{k+1} - C_k F^T - F C_k^T + F P_k F^T), C_k = Cov[z_{k+1}, z_k | y].
  const auto& dyn = params.dynamics;
  const auto group = [&](Eigen::Index k) { return dynamics_groups.empty() ? 0 : dynamics_groups[k]; };
  // Each group's reference: the weights of its first transition (of entry 0
  // for a group without one); one pass over the transitions.
  s.dynamics.assign(num_dynamics_groups, RegressionStats());
  for (Eigen::Index k = 0; k < steps - 1; ++k)
    if (s.dynamics[group(k)].w0.size() == 0) s.dynamics[group(k)] = RegressionStats(stacked(dyn, k));
  for (RegressionStats& d : s.dynamics)
    if (d.w0.size() == 0) d = RegressionStats(stacked(dyn, 0));
  const RowMatrix xd = regressors(means, seq.inputs, width, (steps - 1) * width);
  for_each_run(
      steps - 1, [&](Eigen::Index a, Eigen::Index b) { return group(a) == group(b) && same_weights(dyn, a, b); },
      [&](Eigen::Index k, Eigen::Index count) {
        RegressionStats& ds = s.dynamics[group(k)];
        const Matrix w = stacked(dyn, k);
        const auto x = xd.middleRows(k * width, count * width);
        const RowMatrix e = means.middleRows((k + 1) * width, count * width) - x * w.transpose();
        const Matrix p0 = copies * series_sum<N>(covs, k, count), p1 = copies * series_sum<N>(covs, k + 1, count);
        const Matrix c = copies * series_sum<N>(sm.smoothed_cross_covariances, k, count);
        const Matrix f = w.leftCols(n);
        add_mean_terms(ds, x, e, p0);
        ds.rx.leftCols(n) += c - f * p0;
        const Matrix cf = c * f.transpose();
        ds.rr += p1 - cf - cf.transpose() + f * p0 * f.transpose();
      });
  if (num_dynamics_groups == 1 && transition_score.size() > 0 && dyn.cov.size() == 1) {
    s.dynamics[0].cov_score = transition_score;
    s.dynamics[0].cov_score_at = dyn.cov[0];
  }

  // Emissions: term t is y_t on x = [z_t; u_t; 1], r = y_t - W0 x =
  // E[r] - H (z_t - m_t) + noise; a step with missing components is a run of
  // its own (missing_terms).
  const auto& em = params.emissions;
  const auto entry = [&](Eigen::Index t) { return per_step_emissions ? t : 0; };
  for (Eigen::Index i = 0; i < (per_step_emissions ? steps : 1); ++i) s.emissions.emplace_back(stacked(em, i));
  const RowMatrix xe = regressors(means, seq.inputs, 0, steps * width);
  RowMatrix e(steps * width, params.emission_dim());
  std::vector<bool> missing(steps);
  for (Eigen::Index t = 0; t < steps; ++t) missing[t] = seq.emissions.row(t * width).array().isNaN().any();
  for_each_run(
      steps,
      [&](Eigen::Index a, Eigen::Index b) {
        return !missing[a] && !missing[b] && entry(a) == entry(b) && same_weights(em, a, b);
      },
      [&](Eigen::Index t, Eigen::Index count) {
        RegressionStats& es = s.emissions[entry(t)];
        const Matrix w = stacked(em, t);
        const auto x = xe.middleRows(t * width, count * width);
        auto e_run = e.middleRows(t * width, count * width);
        e_run = seq.emissions.middleRows(t * width, count * width) - x * w.transpose();
        Matrix h = w.leftCols(n);
        if (missing[t]) missing_terms(es, params, seq, t, e_run, h);
        const Matrix p = copies * series_sum<N>(covs, t, count);
        add_mean_terms(es, x, e_run, p);
        es.rx.leftCols(n) -= h * p;
        es.rr += h * p * h.transpose();
      });
  return s;
}

}  // namespace

internal::MissingLaw internal::missing_law(const Matrix& r, const Eigen::Ref<const RowMatrix>& y) {
  MissingLaw law;
  for (Eigen::Index i = 0; i < y.cols(); ++i) {
    if (std::isnan(y(0, i)))
      law.missing.push_back(i);
    else if (r(i, i) > 0.0)
      law.observed.push_back(i);
  }
  const Eigen::Index no = law.observed.size(), nm = law.missing.size();
  std::vector<Eigen::Index> order = law.observed, noisy;  // noisy: positions in law.missing with r_ii > 0
  for (Eigen::Index j = 0; j < nm; ++j)
    if (r(law.missing[j], law.missing[j]) > 0.0) {
      order.push_back(law.missing[j]);
      noisy.push_back(j);
    }
  law.gain = Matrix::Zero(nm, no);
  law.noise_factor = Matrix::Zero(nm, nm);
  if (noisy.empty()) return law;
  const Matrix l = Eigen::LLT<Matrix>(r(order, order)).matrixL();
  const Eigen::Index nn = noisy.size();
  // gain L_oo = L_mo, i.e. L_oo^T gain^T = L_mo^T.
  const Matrix gain_t =
      l.topLeftCorner(no, no).triangularView<Eigen::Lower>().transpose().solve(l.bottomLeftCorner(nn, no).transpose());
  law.gain(noisy, Eigen::all) = gain_t.transpose();
  law.noise_factor(noisy, noisy) = l.bottomRightCorner(nn, nn);
  return law;
}

SufficientStats internal::path_stats(const Params& params, const Sequence& seq, const RowMatrix& states,
                                     bool per_step_emissions) {
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps();
  SmootherResult path;
  path.smoothed_means = states;
  path.smoothed_covariances = MatrixSeries(steps, n, n);
  path.smoothed_cross_covariances = MatrixSeries(std::max<Eigen::Index>(steps - 1, 0), n, n);
  return internal::dispatch_state_dim(
      n, [&](auto dim) { return stats_from_moments<dim>(params, seq, path, per_step_emissions, {}, 1); });
}

SufficientStats internal::sufficient_stats_one(const Params& params, const Sequence& seq, bool per_step_emissions,
                                               const std::vector<Eigen::Index>& dynamics_groups,
                                               Eigen::Index num_dynamics_groups) {
  return internal::dispatch_state_dim(params.state_dim(), [&](auto n) {
    Matrix score;
    const SmootherResult sm = internal::smoother_unchecked(params, seq, dynamics_groups.empty() ? &score : nullptr);
    return stats_from_moments<n>(params, seq, sm, per_step_emissions, dynamics_groups, num_dynamics_groups, 1, score);
  });
}

SufficientStats internal::sufficient_stats_unchecked(const Params& params, const std::vector<Sequence>& seqs,
                                                     const std::vector<size_t>& indices, bool per_step_emissions,
                                                     int num_threads) {
  const std::vector<std::vector<size_t>> blocks = column_blocks(params, seqs, indices);
  std::vector<SufficientStats> each(blocks.size());
  for_each_block(blocks, seqs, num_threads,
                 [&](Eigen::Index i, const std::vector<size_t>&, const Sequence& seq, Eigen::Index width) {
                   if (width == 1) {
                     each[i] = sufficient_stats_one(params, seq, per_step_emissions, {}, 1);
                     return;
                   }
                   each[i] = internal::dispatch_state_dim(params.state_dim(), [&](auto n) {
                     Matrix score;
                     const SmootherResult sm = smoother_columns(params, seq, width, &score);
                     return stats_from_moments<n>(params, seq, sm, per_step_emissions, {}, 1, width, score);
                   });
                 });
  SufficientStats total;
  for (const auto& s : each) total += s;
  return total;
}

SufficientStats sufficient_stats(const Params& params, const Sequence& seq, bool per_step_emissions) {
  validate(params);
  validate(params, seq);
  return internal::sufficient_stats_one(params, seq, per_step_emissions, {}, 1);
}

SufficientStats sufficient_stats(const Params& params, const std::vector<Sequence>& seqs, bool per_step_emissions,
                                 int num_threads) {
  validate(params);
  validate(params, seqs);
  std::vector<size_t> all(seqs.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return internal::sufficient_stats_unchecked(params, seqs, all, per_step_emissions, num_threads);
}

SufficientStats complete_data_stats(const Params& params, const Sequence& seq, const RowMatrix& states,
                                    bool per_step_emissions) {
  validate(params);
  validate(params, seq);
  if (states.rows() != seq.num_timesteps() || states.cols() != params.state_dim())
    internal::throw_invalid("states", "shape " + internal::shape_str(seq.num_timesteps(), params.state_dim()),
                            internal::shape_str(states.rows(), states.cols()));
  internal::check_finite("states", states);
  return internal::path_stats(params, seq, states, per_step_emissions);
}

}  // namespace lgssm
