// An independent reference for exact inference in small LG-SSMs: the joint
// Gaussian of every variable of a sequence, built by stacking the linear
// recursions of params.hpp into one linear map of independent noises, then
// conditioned on the observed emission entries with a dense Cholesky solve.
// Nothing of the library is used except the Params / MatrixSeries containers.
// Cost is cubic in num_timesteps * (state_dim + 2 emission_dim): keep T small.
#pragma once

#include <Eigen/Dense>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "lgssm/params.hpp"

namespace lgssm::test {

using Eigen::Index;

// The joint Gaussian N(mean, cov) of
//   x = (z_0 .. z_{N-1}, y_0 .. y_{N-1}, r_0 .. r_{N-1}),
// where r_t = H_t z_t + D_t u_t + d_t + (noise ~ N(0, R_t) independent of
// everything else) is a replicate of y_t: its law given the data is the
// posterior predictive of y_t.
struct DenseJoint {
  Index num_timesteps = 0;
  Index state_dim = 0;
  Index emission_dim = 0;
  Vector mean;
  Matrix cov;

  Index z(Index t) const { return t * state_dim; }
  Index y(Index t) const { return num_timesteps * state_dim + t * emission_dim; }
  Index r(Index t) const { return num_timesteps * (state_dim + emission_dim) + t * emission_dim; }
};

// Builds the joint of N steps. `inputs` is (N, input_dim) or empty.
//   z_0 = m + e_0,  z_t = F_{t-1} z_{t-1} + B_{t-1} u_t + b_{t-1} + e_t,
//   y_t = H_t z_t + D_t u_t + d_t + v_t,  r_t likewise with its own v'_t,
// with e_0 ~ N(0, S), e_t ~ N(0, Q_{t-1}), v_t, v'_t ~ N(0, R_t), where a
// subscript is the entry of the parameter series. So x = M w + c for the
// stacked noises w ~ N(0, W), and cov = M W M^T.
inline DenseJoint dense_joint(const Params& params, Index num_timesteps, const RowMatrix& inputs) {
  const Index n = params.initial.mean.size();
  const Index p = params.emissions.weights.rows();
  const Index size = num_timesteps * (n + 2 * p);
  const bool has_inputs = inputs.cols() > 0;
  DenseJoint joint;
  joint.num_timesteps = num_timesteps;
  joint.state_dim = n;
  joint.emission_dim = p;
  // Noise w_i is laid out like x_i: e_t at z(t), v_t at y(t), v'_t at r(t).
  Matrix map = Matrix::Zero(size, size);
  Vector offset = Vector::Zero(size);
  Matrix noise_cov = Matrix::Zero(size, size);
  for (Index t = 0; t < num_timesteps; ++t) {
    const Index zt = joint.z(t);
    if (t == 0) {
      offset.segment(zt, n) = params.initial.mean;
      noise_cov.block(zt, zt, n, n) = params.initial.cov;
    } else {
      const Index zp = joint.z(t - 1);
      const Matrix f = params.dynamics.weights.at(t - 1);
      map.middleRows(zt, n) = f * map.middleRows(zp, n);
      Vector c = f * offset.segment(zp, n) + Vector(params.dynamics.bias.vec(t - 1));
      if (has_inputs) c += Matrix(params.dynamics.input_weights.at(t - 1)) * inputs.row(t).transpose();
      offset.segment(zt, n) = c;
      noise_cov.block(zt, zt, n, n) = params.dynamics.cov.at(t - 1);
    }
    map.block(zt, zt, n, n) += Matrix::Identity(n, n);

    const Matrix h = params.emissions.weights.at(t);
    Vector c = h * offset.segment(zt, n) + Vector(params.emissions.bias.vec(t));
    if (has_inputs) c += Matrix(params.emissions.input_weights.at(t)) * inputs.row(t).transpose();
    for (const Index row : {joint.y(t), joint.r(t)}) {
      map.middleRows(row, p) = h * map.middleRows(zt, n);
      map.block(row, row, p, p) += Matrix::Identity(p, p);
      offset.segment(row, p) = c;
      noise_cov.block(row, row, p, p) = params.emissions.cov.at(t);
    }
  }
  joint.mean = offset;
  const Matrix cov = map * noise_cov * map.transpose();
  joint.cov = 0.5 * (cov + cov.transpose());
  return joint;
}

struct Gaussian {
  Vector mean;
  Matrix cov;
};

// Indices into x and values of the observed (non-NaN) emission entries of
// steps first..last (inclusive).
struct Observed {
  std::vector<Index> index;
  Vector value;
};

inline Observed observed_entries(const DenseJoint& joint, const RowMatrix& emissions, Index first, Index last) {
  Observed obs;
  std::vector<double> values;
  for (Index t = first; t <= last; ++t)
    for (Index i = 0; i < emissions.cols(); ++i)
      if (!std::isnan(emissions(t, i))) {
        obs.index.push_back(joint.y(t) + i);
        values.push_back(emissions(t, i));
      }
  obs.value = Eigen::Map<const Vector>(values.data(), static_cast<Index>(values.size()));
  return obs;
}

// The law of all of x given x_O = value:
//   mean + S_{:,O} S_OO^{-1} (value - mean_O),  S - S_{:,O} S_OO^{-1} S_{O,:}.
inline Gaussian condition(const DenseJoint& joint, const Observed& obs) {
  const Index k = static_cast<Index>(obs.index.size());
  const Index size = joint.mean.size();
  if (k == 0) return {joint.mean, joint.cov};
  Matrix s_all_o(size, k);
  Matrix s_oo(k, k);
  Vector resid(k);
  for (Index j = 0; j < k; ++j) {
    s_all_o.col(j) = joint.cov.col(obs.index[j]);
    resid(j) = obs.value(j) - joint.mean(obs.index[j]);
    for (Index i = 0; i < k; ++i) s_oo(i, j) = joint.cov(obs.index[i], obs.index[j]);
  }
  const Eigen::LLT<Matrix> llt(s_oo);
  if (llt.info() != Eigen::Success) throw std::runtime_error("dense reference: S_OO not PD");
  const Matrix gain_t = llt.solve(s_all_o.transpose());  // S_OO^{-1} S_{O,:}
  Gaussian post;
  post.mean = joint.mean + gain_t.transpose() * resid;
  const Matrix cov = joint.cov - s_all_o * gain_t;
  post.cov = 0.5 * (cov + cov.transpose());
  return post;
}

// log N(value; mean, cov) by a Cholesky factor of cov.
inline double log_normal_density(const Vector& value, const Vector& mean, const Matrix& cov) {
  const Index k = value.size();
  if (k == 0) return 0.0;
  const Eigen::LLT<Matrix> llt(cov);
  if (llt.info() != Eigen::Success) throw std::runtime_error("dense reference: cov not PD");
  const Vector white = llt.matrixL().solve(value - mean);
  const double log_det = 2.0 * llt.matrixLLT().diagonal().array().log().sum();
  const double log_two_pi = 1.83787706640934548356;
  return -0.5 * (white.squaredNorm() + log_det + static_cast<double>(k) * log_two_pi);
}

// log N(x_O; mean_O, cov_OO) of a Gaussian over x.
inline double log_marginal_density(const Gaussian& g, const Observed& obs) {
  const Index k = static_cast<Index>(obs.index.size());
  Vector mean(k);
  Matrix cov(k, k);
  for (Index i = 0; i < k; ++i) {
    mean(i) = g.mean(obs.index[i]);
    for (Index j = 0; j < k; ++j) cov(i, j) = g.cov(obs.index[i], obs.index[j]);
  }
  return log_normal_density(obs.value, mean, cov);
}

// Every quantity of filter, smoother and posterior_predictive, computed from
// the dense joint. Covariances are std::vectors of per-step matrices.
struct DenseReference {
  double marginal_loglik = 0.0;
  Matrix filtered_means, predicted_means, smoothed_means;  // (T, n)
  std::vector<Matrix> filtered_covariances, predicted_covariances, smoothed_covariances;
  std::vector<Matrix> smoothed_cross_covariances;  // T-1 of Cov[z_{t+1}, z_t | y]
  Matrix predictive_means;                         // (T, p): E[r_t | y]
  std::vector<Matrix> predictive_covariances;      // Cov[r_t | y]
  Vector smoothed_state_mean;                      // (T n,): E[(z_0..z_{T-1}) | y]
  Matrix smoothed_state_cov;                       // (T n, T n)
};

inline DenseReference dense_reference(const Params& params, const Sequence& seq) {
  const Index num_timesteps = seq.num_timesteps();
  const DenseJoint joint = dense_joint(params, num_timesteps, seq.inputs);
  const Index n = joint.state_dim, p = joint.emission_dim;
  DenseReference ref;
  ref.filtered_means.resize(num_timesteps, n);
  ref.predicted_means.resize(num_timesteps, n);
  ref.smoothed_means.resize(num_timesteps, n);
  ref.predictive_means.resize(num_timesteps, p);

  const Observed all = observed_entries(joint, seq.emissions, 0, num_timesteps - 1);
  ref.marginal_loglik = log_marginal_density({joint.mean, joint.cov}, all);
  const Gaussian post = condition(joint, all);
  for (Index t = 0; t < num_timesteps; ++t) {
    const Gaussian filt = condition(joint, observed_entries(joint, seq.emissions, 0, t));
    const Gaussian pred = condition(joint, observed_entries(joint, seq.emissions, 0, t - 1));
    const Index zt = joint.z(t), rt = joint.r(t);
    ref.filtered_means.row(t) = filt.mean.segment(zt, n).transpose();
    ref.filtered_covariances.push_back(filt.cov.block(zt, zt, n, n));
    ref.predicted_means.row(t) = pred.mean.segment(zt, n).transpose();
    ref.predicted_covariances.push_back(pred.cov.block(zt, zt, n, n));
    ref.smoothed_means.row(t) = post.mean.segment(zt, n).transpose();
    ref.smoothed_covariances.push_back(post.cov.block(zt, zt, n, n));
    if (t + 1 < num_timesteps) ref.smoothed_cross_covariances.push_back(post.cov.block(joint.z(t + 1), zt, n, n));
    ref.predictive_means.row(t) = post.mean.segment(rt, p).transpose();
    ref.predictive_covariances.push_back(post.cov.block(rt, rt, p, p));
  }
  ref.smoothed_state_mean = post.mean.head(num_timesteps * n);
  ref.smoothed_state_cov = post.cov.topLeftCorner(num_timesteps * n, num_timesteps * n);
  return ref;
}

// A second route to log p(y_obs): the chain rule
//   sum_t log p(y_{t,obs} | y_{0:t-1,obs}),
// each factor a marginal of the joint conditioned on the earlier entries.
inline double dense_loglik_chain_rule(const Params& params, const Sequence& seq) {
  const DenseJoint joint = dense_joint(params, seq.num_timesteps(), seq.inputs);
  double total = 0.0;
  for (Index t = 0; t < seq.num_timesteps(); ++t) {
    const Gaussian before = condition(joint, observed_entries(joint, seq.emissions, 0, t - 1));
    total += log_marginal_density(before, observed_entries(joint, seq.emissions, t, t));
  }
  return total;
}

struct DenseForecast {
  Matrix means;                     // (K, n): E[z_{T+k} | y]
  std::vector<Matrix> covariances;  // Cov[z_{T+k} | y]
  Matrix emission_means;            // (K, p): E[y_{T+k} | y]
  std::vector<Matrix> emission_covariances;
};

// The joint extended to T + K steps (inputs: the sequence's, then
// `forecast_inputs`), conditioned on the observed entries of the first T.
inline DenseForecast dense_forecast(const Params& params, const Sequence& seq, Index num_forecast_timesteps,
                                    const RowMatrix& forecast_inputs) {
  const Index num_timesteps = seq.num_timesteps();
  const Index total = num_timesteps + num_forecast_timesteps;
  RowMatrix inputs;
  if (seq.inputs.cols() > 0) {
    inputs.resize(total, seq.inputs.cols());
    inputs.topRows(num_timesteps) = seq.inputs;
    inputs.bottomRows(num_forecast_timesteps) = forecast_inputs;
  }
  const DenseJoint joint = dense_joint(params, total, inputs);
  const Gaussian post = condition(joint, observed_entries(joint, seq.emissions, 0, num_timesteps - 1));
  const Index n = joint.state_dim, p = joint.emission_dim;
  DenseForecast out;
  out.means.resize(num_forecast_timesteps, n);
  out.emission_means.resize(num_forecast_timesteps, p);
  for (Index k = 0; k < num_forecast_timesteps; ++k) {
    const Index zt = joint.z(num_timesteps + k), yt = joint.y(num_timesteps + k);
    out.means.row(k) = post.mean.segment(zt, n).transpose();
    out.covariances.push_back(post.cov.block(zt, zt, n, n));
    out.emission_means.row(k) = post.mean.segment(yt, p).transpose();
    out.emission_covariances.push_back(post.cov.block(yt, yt, p, p));
  }
  return out;
}

}  // namespace lgssm::test
