#include "lgssm/diagnostics.hpp"

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "checks.hpp"
#include "diffuse.hpp"
#include "innovation_step.hpp"
#include "kalman.hpp"
#include "lgssm/error.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"
#include "unconstrained.hpp"

namespace lgssm {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

using internal::InnovationStep;
using internal::row_at;

InnovationsResult innovations_unchecked(const Params& params, const Sequence& seq) {
  const Eigen::Index n = params.state_dim(), p = params.emission_dim(), steps = seq.num_timesteps();
  InnovationsResult out;
  out.step_logliks = Vector::Zero(steps);
  out.innovations = RowMatrix::Constant(steps, p, kNaN);
  out.innovation_covariances = MatrixSeries(steps, p, p);
  out.innovation_covariances.flat().setConstant(kNaN);
  out.standardized_innovations = out.innovations;
  out.scaled_innovations = out.innovations;
  internal::KalmanFilter<> kf(n, p);
  InnovationStep step;
  Eigen::Index t = 0;
  if (params.initial.is_diffuse()) {
    // The diffuse period: its innovations have infinite variance (NaN here, as
    // statsmodels leaves them out); the log-likelihood terms are the diffuse ones.
    internal::DiffuseFilter df(n, p);
    t = internal::run_diffuse_period(
        df, params, seq, [](Eigen::Index, const internal::DiffuseFilter&) {},
        [&](Eigen::Index k, const internal::DiffuseFilter& f, double step_loglik) {
          out.step_logliks(k) = step_loglik;
          kf.set_moments(f.mean(), f.cov());
        });
    out.num_diffuse_timesteps = t;
  }
  for (; t < steps; ++t) {
    const auto u = row_at(seq.inputs, t);
    const auto y = row_at(seq.emissions, t);
    kf.predict(params, t, u);
    step.compute(params, t, y, u, kf.mean(), kf.cov());
    out.step_logliks(t) = kf.update(params, t, y, u);
    const auto& o = step.observed;
    if (o.empty()) continue;
    out.innovations(t, o) = step.v.transpose();
    out.innovation_covariances[t](o, o) = step.f;
    out.standardized_innovations(t, o) = step.llt.matrixL().solve(step.v).transpose();
    out.scaled_innovations(t, o) = step.v.cwiseQuotient(step.f.diagonal().cwiseSqrt()).transpose();
  }
  out.marginal_loglik = out.step_logliks.sum();
  return out;
}

// x_i / sqrt(var_i), NaN where var_i = 0 (a component without noise).
Vector standardize(const Vector& x, const Vector& var) {
  Vector out(x.size());
  for (Eigen::Index i = 0; i < x.size(); ++i) out(i) = var(i) > 0.0 ? x(i) / std::sqrt(var(i)) : kNaN;
  return out;
}

}  // namespace

InnovationsResult innovations(const Params& params, const Sequence& seq) {
  validate(params);
  validate(params, seq);
  return innovations_unchecked(params, seq);
}

RowMatrix emissions_from_innovations(const Params& params, const Sequence& seq, const RowMatrix& standardized) {
  validate(params);
  validate(params, seq);
  internal::check_known_initial(params, "emissions_from_innovations (the innovations bootstrap)");
  const Eigen::Index n = params.state_dim(), p = params.emission_dim(), steps = seq.num_timesteps();
  if (standardized.rows() != steps || standardized.cols() != p)
    throw invalid_argument("standardized: expected shape (" + std::to_string(steps) + ", " + std::to_string(p) +
                           "), got (" + std::to_string(standardized.rows()) + ", " +
                           std::to_string(standardized.cols()) + ")");
  RowMatrix out = RowMatrix::Constant(steps, p, kNaN);
  internal::KalmanFilter<> kf(n, p);
  InnovationStep step;
  Vector y_new(p);
  for (Eigen::Index t = 0; t < steps; ++t) {
    const auto u = row_at(seq.inputs, t);
    kf.predict(params, t, u);
    step.compute(params, t, row_at(seq.emissions, t), u, kf.mean(), kf.cov());
    const auto& o = step.observed;
    y_new.setConstant(kNaN);
    if (!o.empty()) {
      const Vector w = standardized.row(t)(o).transpose();
      if (!w.allFinite())
        throw invalid_argument("standardized: expected finite values at the observed components of step " +
                               std::to_string(t) + ", got a NaN or infinite value");
      Vector made = step.y_hat;
      made.noalias() += step.llt.matrixL() * w;
      y_new(o) = made;
      out(t, o) = made.transpose();
    }
    kf.update(params, t, y_new, u);
  }
  return out;
}

DisturbancesResult disturbances(const Params& params, const Sequence& seq) {
  validate(params);
  validate(params, seq);
  const Eigen::Index n = params.state_dim(), p = params.emission_dim(), steps = seq.num_timesteps();
  internal::BackwardTrace trace;
  const SmootherResult sm = internal::smoother_traced(params, seq, trace);
  DisturbancesResult out;
  out.marginal_loglik = sm.marginal_loglik;
  out.emission_disturbances.resize(steps, p);
  out.emission_disturbance_covariances = MatrixSeries(steps, p, p);
  out.emission_auxiliary_residuals.resize(steps, p);
  out.dynamics_disturbances.resize(steps - 1, n);
  out.dynamics_disturbance_covariances = MatrixSeries(steps - 1, n, n);
  out.dynamics_auxiliary_residuals.resize(steps - 1, n);
  const auto& d = params.dynamics;
  InnovationStep step;
  Vector r(n), eta(n);
  Matrix info(n, n), qn(n, n);
  for (Eigen::Index t = 0; t < steps; ++t) {
    // r_t, N_t: the score and information about z_t from y_{t+1:T-1}.
    if (t + 1 < steps) {
      const auto f = d.weights.at(t);
      const auto q = d.cov.at(t);
      const auto r_next = row_at(trace.score, t + 1);
      const auto info_next = trace.info[t + 1];
      r.noalias() = f.transpose() * r_next;
      info.noalias() = f.transpose() * info_next * f;
      // E[eta_t | y] = Q r^-_{t+1}; Var of it Q N^- Q; Cov[eta_t | y] = Q - Q N^- Q.
      eta.noalias() = q * r_next;
      qn.noalias() = q * info_next;
      Matrix qnq = qn * q;
      internal::symmetrize(qnq);
      out.dynamics_disturbances.row(t) = eta.transpose();
      out.dynamics_auxiliary_residuals.row(t) = standardize(eta, qnq.diagonal()).transpose();
      auto cov = out.dynamics_disturbance_covariances[t];
      cov = q - qnq;
      internal::symmetrize(cov);
    } else {
      r.setZero();
      info.setZero();
    }
    const auto y = row_at(seq.emissions, t);
    const auto u = row_at(seq.inputs, t);
    step.compute(params, t, y, u, sm.predicted_means.row(t).transpose(), sm.predicted_covariances[t]);
    const auto rr = params.emissions.cov.at(t);
    const auto& o = step.observed;
    Vector eps = Vector::Zero(p), var_hat = Vector::Zero(p);
    if (!o.empty()) {
      // u_t = F^{-1} (v - K^T r F) = F^{-1} (v - H_o P r); D_t = F^{-1} + F^{-1} H_o P N P H_o^T F^{-1}.
      const Vector ut = step.llt.solve(step.v - step.ph.transpose() * r);
      const Matrix r_o = rr(o, Eigen::all);  // R_{o.}
      eps.noalias() = r_o.transpose() * ut;
      const Matrix x = step.llt.matrixL().solve(r_o);          // L^{-1} R_{o.}
      const Matrix m = step.ph * step.llt.matrixU().solve(x);  // P H_o^T F^{-1} R_{o.}
      var_hat = x.colwise().squaredNorm().transpose() + (m.cwiseProduct(info * m)).colwise().sum().transpose();
    }
    out.emission_disturbances.row(t) = eps.transpose();
    out.emission_auxiliary_residuals.row(t) = standardize(eps, var_hat).transpose();
    // Cov[eps_t | y]: H_o P_{t|T} H_o^T on the observed block; the missing
    // components through their law given the noisy observed ones.
    auto cov = out.emission_disturbance_covariances[t];
    cov.setZero();
    const Matrix h_o = params.emissions.weights.at(t)(o, Eigen::all);
    const Matrix v_oo = h_o * sm.smoothed_covariances[t] * h_o.transpose();
    cov(o, o) = v_oo;
    const internal::MissingLaw law = internal::missing_law(rr, seq.emissions.row(t));
    if (!law.missing.empty()) {
      // Positions of the law's (noisy) observed components within o.
      std::vector<Eigen::Index> at;
      for (Eigen::Index i : law.observed) at.push_back(std::find(o.begin(), o.end(), i) - o.begin());
      const Matrix gv = law.gain * v_oo(at, Eigen::all);  // Cov[eps_m, eps_o | y]
      cov(law.missing, o) = gv;
      cov(o, law.missing) = gv.transpose();
      cov(law.missing, law.missing) =
          gv(Eigen::all, at) * law.gain.transpose() + law.noise_factor * law.noise_factor.transpose();
    }
    internal::symmetrize(cov);
  }
  return out;
}

MatrixSeries smoothed_autocovariances(const Params& params, const Sequence& seq, Eigen::Index lag) {
  validate(params);
  validate(params, seq);
  const Eigen::Index n = params.state_dim(), steps = seq.num_timesteps();
  if (lag < 0 || lag >= steps)
    internal::throw_invalid("lag", "an integer in [0, num_timesteps - 1] = [0, " + std::to_string(steps - 1) + "]",
                            std::to_string(lag));
  internal::BackwardTrace trace;
  const SmootherResult sm = internal::smoother_traced(params, seq, trace);
  if (lag == 0) return sm.smoothed_covariances;
  MatrixSeries out(steps - lag, n, n);
  const auto& f = params.dynamics.weights;
  Matrix m(n, n), tmp(n, n), left(n, n);
  for (Eigen::Index t = 0; t + lag < steps; ++t) {
    m.noalias() = f.at(t) * sm.filtered_covariances[t];
    for (Eigen::Index i = 1; i < lag; ++i) {
      tmp.noalias() = trace.transition[t + i] * m;
      m.noalias() = f.at(t + i) * tmp;
    }
    const Eigen::Index s = t + lag;
    left.setIdentity();
    left.noalias() -= sm.predicted_covariances[s] * trace.info[s];
    out[t].noalias() = left * m;
  }
  return out;
}

Eigen::Index num_free_parameters(const Params& params, const ParamProps& props) {
  validate(params);
  validate(params, props);
  Params p = params;
  return internal::unconstrained_size(
      internal::trainable_slots(p.initial, &p.dynamics, p.emissions, props, /*every_entry=*/true));
}

}  // namespace lgssm
