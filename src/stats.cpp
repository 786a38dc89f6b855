#include "lgssm/stats.hpp"

#include <Eigen/Cholesky>
#include <cmath>

#include "internal.hpp"
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

// x = [z; u; 1] with E[z] = m: fills the mean and adds E[x x^T] = x x^T + blkdiag(P, 0).
void add_regressor(RegressionStats& s, Vector& x, const Eigen::Ref<const Vector>& m,
                   const Eigen::Ref<const Matrix>& p, const RowMatrix& inputs, Eigen::Index t) {
  const Eigen::Index n = m.size(), k = x.size();
  x.head(n) = m;
  if (k > n + 1) x.segment(n, k - n - 1) = inputs.row(t).transpose();
  x(k - 1) = 1.0;
  s.xx.noalias() += x * x.transpose();
  s.xx.topLeftCorner(n, n) += p;
}

// Posterior moments of y_t when some components are missing: the missing part
// given z_t and y_o is y_m = A z_t + c + e, e ~ N(0, S), with
// A = H_m - K H_o, c = D_m u + d_m + K (y_o - D_o u - d_o), S = R_mm - K R_om,
// K = R_mo R_oo^{-1}. Adds E[y x^T] and E[y y^T] to `s`.
void add_emission_with_missing(RegressionStats& s, const Params& params, const Sequence& seq,
                               Eigen::Index t, const Vector& x, const Eigen::Ref<const Vector>& m,
                               const Eigen::Ref<const Matrix>& p) {
  const auto& e = params.emissions;
  const Eigen::Index dim = params.emission_dim(), n = params.state_dim();
  std::vector<Eigen::Index> obs, mis;
  for (Eigen::Index i = 0; i < dim; ++i) (std::isnan(seq.emissions(t, i)) ? mis : obs).push_back(i);
  const Matrix h = e.weights.at(t), r = e.cov.at(t);
  Vector offset = e.bias.vec(t);  // D u + d
  if (params.input_dim() > 0) offset += e.input_weights.at(t) * seq.inputs.row(t).transpose();
  const Eigen::Index no = obs.size(), nm = mis.size();
  Matrix h_m = h(mis, Eigen::all), r_mm = r(mis, mis);
  Vector c = offset(mis);
  Matrix a = h_m, cov_c = r_mm;
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
  Vector y_bar(dim);
  for (Eigen::Index i = 0; i < no; ++i) y_bar(obs[i]) = seq.emissions(t, obs[i]);
  const Vector y_m = a * m + c;
  for (Eigen::Index i = 0; i < nm; ++i) y_bar(mis[i]) = y_m(i);
  s.yx.noalias() += y_bar * x.transpose();
  s.yy.noalias() += y_bar * y_bar.transpose();
  const Matrix c_mz = a * p;  // Cov[y_m, z_t | y]
  for (Eigen::Index i = 0; i < nm; ++i) s.yx.row(mis[i]).head(n) += c_mz.row(i);
  const Matrix c_mm = c_mz * a.transpose() + cov_c;
  s.yy(mis, mis) += c_mm;
}

}  // namespace

SufficientStats internal::sufficient_stats_one(const Params& params, const Sequence& seq, bool per_step_emissions,
                                               const std::vector<Eigen::Index>& dynamics_groups,
                                               Eigen::Index num_dynamics_groups) {
  const SmootherResult sm = internal::smoother_unchecked(params, seq);
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps();
  const Eigen::Index k = n + params.input_dim() + 1;
  SufficientStats s(n, params.emission_dim(), params.input_dim(), per_step_emissions ? steps : 1,
                    num_dynamics_groups);
  s.marginal_loglik = sm.marginal_loglik;
  s.num_sequences = 1.0;
  s.initial_sum = sm.smoothed_means.row(0).transpose();
  s.initial_outer = sm.smoothed_covariances[0] + s.initial_sum * s.initial_sum.transpose();

  Vector x(k);
  for (Eigen::Index t = 1; t < steps; ++t) {
    RegressionStats& ds = s.dynamics[dynamics_groups.empty() ? 0 : dynamics_groups[t - 1]];
    add_regressor(ds, x, sm.smoothed_means.row(t - 1).transpose(),
                  sm.smoothed_covariances[t - 1], seq.inputs, t);
    const Vector m = sm.smoothed_means.row(t).transpose();
    ds.yx.noalias() += m * x.transpose();
    ds.yx.leftCols(n) += sm.smoothed_cross_covariances[t - 1];
    ds.yy.noalias() += m * m.transpose();
    ds.yy += sm.smoothed_covariances[t];
    ds.count += 1.0;
  }

  for (Eigen::Index t = 0; t < steps; ++t) {
    RegressionStats& es = s.emissions[per_step_emissions ? t : 0];
    const auto m = sm.smoothed_means.row(t).transpose();
    const auto p = sm.smoothed_covariances[t];
    add_regressor(es, x, m, p, seq.inputs, t);
    if (seq.emissions.row(t).array().isNaN().any()) {
      add_emission_with_missing(es, params, seq, t, x, m, p);
    } else {
      const auto y = seq.emissions.row(t).transpose();
      es.yx.noalias() += y * x.transpose();
      es.yy.noalias() += y * y.transpose();
    }
    es.count += 1.0;
  }
  return s;
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
