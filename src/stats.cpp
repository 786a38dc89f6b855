#include "lgssm/stats.hpp"

#include <Eigen/Cholesky>
#include <cmath>

#include "internal.hpp"
#include "linalg.hpp"
#include "lgssm/error.hpp"

namespace lgssm {

RegressionStats::RegressionStats(Eigen::Index out_dim, Eigen::Index regressor_dim)
    : xx(Matrix::Zero(regressor_dim, regressor_dim)),
      yx(Matrix::Zero(out_dim, regressor_dim)),
      yy(Matrix::Zero(out_dim, out_dim)) {}

RegressionStats& RegressionStats::operator+=(const RegressionStats& other) {
  xx += other.xx;
  yx += other.yx;
  yy += other.yy;
  count += other.count;
  return *this;
}

SufficientStats::SufficientStats(Eigen::Index state_dim, Eigen::Index emission_dim,
                                 Eigen::Index input_dim, Eigen::Index num_emission_entries,
                                 Eigen::Index num_dynamics_groups)
    : initial_sum(Vector::Zero(state_dim)),
      initial_outer(Matrix::Zero(state_dim, state_dim)),
      dynamics(num_dynamics_groups, RegressionStats(state_dim, state_dim + input_dim + 1)),
      emissions(num_emission_entries, RegressionStats(emission_dim, state_dim + input_dim + 1)) {}

namespace {
// a[i] += b[i], extending a with zero statistics shaped like b's entries.
void add_entries(std::vector<RegressionStats>& a, const std::vector<RegressionStats>& b) {
  if (a.size() < b.size()) a.resize(b.size(), RegressionStats(b[0].yy.rows(), b[0].xx.rows()));
  for (size_t i = 0; i < b.size(); ++i) a[i] += b[i];
}
}  // namespace

SufficientStats& SufficientStats::operator+=(const SufficientStats& other) {
  if (initial_sum.size() == 0) return *this = other;
  initial_sum += other.initial_sum;
  initial_outer += other.initial_outer;
  num_sequences += other.num_sequences;
  add_entries(dynamics, other.dynamics);
  add_entries(emissions, other.emissions);
  marginal_loglik += other.marginal_loglik;
  return *this;
}

namespace {

using internal::view;

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

// Calls fn(entry, first, count) for each maximal run of consecutive terms
// 0..count-1 that share a statistics entry (entry_of(term)).
template <class EntryOf, class Fn>
void for_each_run(Eigen::Index count, EntryOf entry_of, Fn fn) {
  for (Eigen::Index a = 0; a < count;) {
    const Eigen::Index e = entry_of(a);
    Eigen::Index b = a + 1;
    while (b < count && entry_of(b) == e) ++b;
    fn(e, a, b - a);
    a = b;
  }
}

// Sum of `count` entries of a series from `first` on, added to `out`.
template <int N, class Out>
void add_series_sum(Out&& out, const MatrixSeries& series, Eigen::Index first, Eigen::Index count) {
  internal::MatrixN<N> sum = view<N, N>(series[first]);
  for (Eigen::Index t = first + 1; t < first + count; ++t) sum += view<N, N>(series[t]);
  out += sum;
}

// Terms first..first+count-1 of one regression: E[x x^T] = X^T X + sum of the
// state covariances (top-left block), E[out x^T] = Y^T X (+ cross terms added
// by the caller), E[out out^T] = Y^T Y.
template <int N>
void add_terms(RegressionStats& s, const Eigen::Ref<const RowMatrix>& x, const Eigen::Ref<const RowMatrix>& y,
               const MatrixSeries& state_covs, Eigen::Index cov_first) {
  const Eigen::Index n = state_covs.rows(), count = x.rows();
  s.xx.noalias() += x.transpose() * x;
  add_series_sum<N>(s.xx.topLeftCorner(n, n), state_covs, cov_first, count);
  s.yx.noalias() += y.transpose() * x;
  s.yy.noalias() += y.transpose() * y;
  s.count += static_cast<double>(count);
}

// Step t has missing components: the missing part given z_t and y_o is
// y_m = A z_t + c + e, e ~ N(0, S), with A = H_m - K H_o,
// c = D_m u + d_m + K (y_o - D_o u - d_o), S = R_mm - K R_om,
// K = R_mo R_oo^{-1} (o: the observed components with R_ii > 0). Writes E[y_m | y] into `y_row` and adds to `s` what
// E[y x^T] and E[y y^T] hold beyond the products of the means.
void add_missing_correction(RegressionStats& s, const Params& params, const Sequence& seq, Eigen::Index t,
                            const Eigen::Ref<const Vector>& m, const Eigen::Ref<const Matrix>& p,
                            Eigen::Ref<RowMatrix> y_row) {
  const auto& e = params.emissions;
  const Eigen::Index dim = params.emission_dim(), n = params.state_dim();
  const Matrix h = e.weights.at(t), r = e.cov.at(t);
  // Exactly observed components (zero row and column of R) are uncorrelated
  // with the missing ones' noise: K is zero on them, so `obs` omits them.
  std::vector<Eigen::Index> obs, mis;
  for (Eigen::Index i = 0; i < dim; ++i) {
    if (std::isnan(seq.emissions(t, i)))
      mis.push_back(i);
    else if (r(i, i) > 0.0)
      obs.push_back(i);
  }
  Vector offset = e.bias.vec(t);  // D u + d
  if (params.input_dim() > 0) offset += e.input_weights.at(t) * seq.inputs.row(t).transpose();
  const Eigen::Index no = obs.size(), nm = mis.size();
  Vector c = offset(mis);
  Matrix a = h(mis, Eigen::all), cov_c = r(mis, mis);
  if (no > 0) {
    const Matrix r_oo = r(obs, obs), r_om = r(obs, mis);
    Eigen::LLT<Matrix> llt(r_oo);
    const Matrix kt = llt.solve(r_om);  // K^T = R_oo^{-1} R_om
    Vector y_o(no);
    for (Eigen::Index i = 0; i < no; ++i) y_o(i) = seq.emissions(t, obs[i]);
    a -= kt.transpose() * h(obs, Eigen::all);
    c += kt.transpose() * (y_o - offset(obs));
    cov_c -= kt.transpose() * r_om;
  }
  const Vector y_m = a * m + c;
  for (Eigen::Index i = 0; i < nm; ++i) y_row(0, mis[i]) = y_m(i);
  const Matrix c_mz = a * p;  // Cov[y_m, z_t | y]
  for (Eigen::Index i = 0; i < nm; ++i) s.yx.row(mis[i]).head(n) += c_mz.row(i);
  s.yy(mis, mis) += c_mz * a.transpose() + cov_c;
}

template <int N>
SufficientStats sufficient_stats_one(const Params& params, const Sequence& seq, bool per_step_emissions,
                                     const std::vector<Eigen::Index>& dynamics_groups,
                                     Eigen::Index num_dynamics_groups) {
  const SmootherResult sm = internal::smoother_unchecked(params, seq);
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps();
  SufficientStats s(n, params.emission_dim(), params.input_dim(), per_step_emissions ? steps : 1,
                    num_dynamics_groups);
  s.marginal_loglik = sm.marginal_loglik;
  s.num_sequences = 1.0;
  s.initial_sum = sm.smoothed_means.row(0).transpose();
  s.initial_outer = sm.smoothed_covariances[0] + s.initial_sum * s.initial_sum.transpose();

  // Dynamics: term k is the transition z_k -> z_{k+1}, regressor [E z_k; u_{k+1}; 1].
  const RowMatrix xd = regressors(sm.smoothed_means, seq.inputs, 1, steps - 1);
  const auto group = [&](Eigen::Index k) { return dynamics_groups.empty() ? 0 : dynamics_groups[k]; };
  for_each_run(steps - 1, group, [&](Eigen::Index g, Eigen::Index k, Eigen::Index count) {
    RegressionStats& ds = s.dynamics[g];
    add_terms<N>(ds, xd.middleRows(k, count), sm.smoothed_means.middleRows(k + 1, count),
                 sm.smoothed_covariances, k);
    add_series_sum<N>(ds.yx.leftCols(n), sm.smoothed_cross_covariances, k, count);
    add_series_sum<N>(ds.yy, sm.smoothed_covariances, k + 1, count);
  });

  // Emissions: term t is y_t on [E z_t; u_t; 1]; missing components are
  // replaced by their posterior means, their covariances added separately.
  const RowMatrix xe = regressors(sm.smoothed_means, seq.inputs, 0, steps);
  const bool any_missing = seq.emissions.array().isNaN().any();
  RowMatrix filled = any_missing ? seq.emissions : RowMatrix();
  const RowMatrix& y = any_missing ? filled : seq.emissions;
  const auto entry = [&](Eigen::Index t) { return per_step_emissions ? t : 0; };
  for (Eigen::Index t = 0; any_missing && t < steps; ++t)
    if (seq.emissions.row(t).array().isNaN().any())
      add_missing_correction(s.emissions[entry(t)], params, seq, t, sm.smoothed_means.row(t).transpose(),
                             sm.smoothed_covariances[t], filled.middleRows(t, 1));
  for_each_run(steps, entry, [&](Eigen::Index e, Eigen::Index t, Eigen::Index count) {
    add_terms<N>(s.emissions[e], xe.middleRows(t, count), y.middleRows(t, count), sm.smoothed_covariances, t);
  });
  return s;
}

}  // namespace

SufficientStats internal::sufficient_stats_one(const Params& params, const Sequence& seq, bool per_step_emissions,
                                               const std::vector<Eigen::Index>& dynamics_groups,
                                               Eigen::Index num_dynamics_groups) {
  return internal::dispatch_state_dim(params.state_dim(), [&](auto n) {
    return ::lgssm::sufficient_stats_one<n>(params, seq, per_step_emissions, dynamics_groups, num_dynamics_groups);
  });
}

SufficientStats internal::sufficient_stats_unchecked(const Params& params, const std::vector<Sequence>& seqs,
                                                     const std::vector<size_t>& indices,
                                                     bool per_step_emissions, int num_threads) {
  std::vector<SufficientStats> each(indices.size());
  parallel_for(static_cast<Eigen::Index>(indices.size()), [&](Eigen::Index i) {
    each[i] = sufficient_stats_one(params, seqs[indices[i]], per_step_emissions, {}, 1);
  }, num_threads);
  SufficientStats total;
  for (const auto& s : each) total += s;
  return total;
}

SufficientStats sufficient_stats(const Params& params, const Sequence& seq, bool per_step_emissions) {
  validate(params);
  validate(params, seq);
  return internal::sufficient_stats_one(params, seq, per_step_emissions, {}, 1);
}

SufficientStats sufficient_stats(const Params& params, const std::vector<Sequence>& seqs,
                                 bool per_step_emissions, int num_threads) {
  validate(params);
  validate(params, seqs);
  std::vector<size_t> all(seqs.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  return internal::sufficient_stats_unchecked(params, seqs, all, per_step_emissions, num_threads);
}

}  // namespace lgssm
