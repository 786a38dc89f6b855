// The free parameters, the exact score and information of log p(y) by forward
// sensitivity recursions of the Kalman filter, and covariances from an
// information matrix (information.hpp).
#include "lgssm/information.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <cmath>
#include <iomanip>
#include <limits>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "checks.hpp"
#include "continuous_stats.hpp"
#include "innovation_step.hpp"
#include "kalman.hpp"
#include "lgssm/error.hpp"
#include "lgssm/parallel.hpp"
#include "linalg.hpp"
#include "unconstrained.hpp"
#include "vanloan.hpp"

namespace lgssm {

namespace {

using internal::row_at;
using internal::Slot;
using internal::symmetrize;
using internal::throw_invalid;

// The model matrix a free parameter moves.
enum class Member {
  kInitialMean,
  kInitialCov,
  kDynamicsWeights,
  kDynamicsBias,
  kDynamicsInputWeights,
  kDynamicsCov,
  kEmissionsWeights,
  kEmissionsBias,
  kEmissionsInputWeights,
  kEmissionsCov,
  kDrift,         // continuous time: moves the transitions through TransitionSensitivities
  kDiffusionCov,  // likewise
};

Member member_of(const std::string& slot_name) {
  static const std::pair<const char*, Member> kNames[] = {{"initial.mean", Member::kInitialMean},
                                                          {"initial.cov", Member::kInitialCov},
                                                          {"dynamics.weights", Member::kDynamicsWeights},
                                                          {"dynamics.bias", Member::kDynamicsBias},
                                                          {"dynamics.input_weights", Member::kDynamicsInputWeights},
                                                          {"dynamics.cov", Member::kDynamicsCov},
                                                          {"emissions.weights", Member::kEmissionsWeights},
                                                          {"emissions.bias", Member::kEmissionsBias},
                                                          {"emissions.input_weights", Member::kEmissionsInputWeights},
                                                          {"emissions.cov", Member::kEmissionsCov},
                                                          {"dynamics.drift", Member::kDrift},
                                                          {"dynamics.diffusion_cov", Member::kDiffusionCov}};
  for (const auto& [name, member] : kNames)
    if (slot_name == name) return member;
  throw std::logic_error("information: unknown parameter " + slot_name);
}

// d(member) / d theta_k of one free parameter: a constant matrix shaped like the member.
struct Direction {
  Member member;
  Matrix d;
  const Matrix* of(Member m) const { return member == m ? &d : nullptr; }
};

// Each trainable slot as an affine map of its free parameters:
// value = offset + sum_k theta_k d_k over its `count` directions.
struct Layout {
  std::vector<Direction> directions;
  std::vector<Matrix> offsets;
  std::vector<Eigen::Index> counts;
  Vector theta;
};

Layout layout_of(const std::vector<Slot>& slots) {
  Layout out;
  std::vector<double> values;
  for (const auto& s : slots) {
    const Member member = member_of(s.name);
    const Eigen::Index rows = s.value.rows(), cols = s.value.cols();
    const size_t before = out.directions.size();
    auto add = [&](Matrix d, double value) {
      out.directions.push_back({member, std::move(d)});
      values.push_back(value);
    };
    auto unit = [&](Eigen::Index i, Eigen::Index j) {  // E_ij + E_ji (E_ii on the diagonal) of a covariance
      Matrix d = Matrix::Zero(rows, cols);
      d(i, j) = d(j, i) = 1.0;
      return d;
    };
    Matrix offset = Matrix::Zero(rows, cols);
    if (s.affine) {
      const Matrix& design = s.affine->design;
      offset = s.affine->fixed.reshaped(rows, cols);
      const Vector beta = free_values(*s.affine, s.value);
      for (Eigen::Index c = 0; c < design.cols(); ++c) add(design.col(c).reshaped(rows, cols), beta(c));
    } else if (!s.is_cov) {
      for (Eigen::Index i = 0; i < rows; ++i)
        for (Eigen::Index j = 0; j < cols; ++j) {
          Matrix d = Matrix::Zero(rows, cols);
          d(i, j) = 1.0;
          add(std::move(d), s.value(i, j));
        }
    } else if (s.structure == CovStructure::kFull) {
      for (Eigen::Index i = 0; i < rows; ++i)
        for (Eigen::Index j = 0; j <= i; ++j) add(unit(i, j), s.value(i, j));
    } else if (s.structure == CovStructure::kDiagonal) {
      for (Eigen::Index i = 0; i < rows; ++i) add(unit(i, i), s.value(i, i));
    } else {
      add(Matrix::Identity(rows, cols), s.value(0, 0));
    }
    out.offsets.push_back(std::move(offset));
    out.counts.push_back(static_cast<Eigen::Index>(out.directions.size() - before));
  }
  out.theta = Eigen::Map<const Vector>(values.data(), static_cast<Eigen::Index>(values.size()));
  return out;
}

// The layout of the trainable parameters of `params` (a copy: slots view their values).
Layout layout_of(const Params& params, const ParamProps& props) {
  validate(params, props);
  Params p = params;
  return layout_of(internal::trainable_slots(p, props));
}

// The sums of one sequence (information.hpp).
struct Sums {
  double loglik = 0.0;
  Vector score;
  Matrix hessian, opg, harvey;
  Sums() = default;
  Sums(Eigen::Index k, bool with_hessian)
      : score(Vector::Zero(k)),
        hessian(with_hessian ? Matrix::Zero(k, k) : Matrix()),
        opg(Matrix::Zero(k, k)),
        harvey(Matrix::Zero(k, k)) {}
};

// The pairs k <= l of K parameters, in the order of the second derivatives.
std::vector<std::pair<Eigen::Index, Eigen::Index>> pairs_of(Eigen::Index k) {
  std::vector<std::pair<Eigen::Index, Eigen::Index>> out;
  for (Eigen::Index i = 0; i < k; ++i)
    for (Eigen::Index j = i; j < k; ++j) out.emplace_back(i, j);
  return out;
}

// The derivatives of the transitions (F_g, Q_g) of a continuous-time model,
// one set per transition group g (a distinct gap), where the free parameters
// move them nonlinearly: weights[g][k] = dF_g / d theta_k and cov[g][k] =
// dQ_g / d theta_k (empty: zero), weights2[g][q] and cov2[g][q] the second
// derivatives of the pair q = (k, l) (empty: zero).
struct TransitionSensitivities {
  std::vector<std::vector<Matrix>> weights, cov, weights2, cov2;
};

// The recursions of information.hpp over one sequence. Suffixes: d* the first
// derivatives (one per parameter), d2* the second (one per pair k <= l). With
// `trans`, the transitions' derivatives come from it (the transition into step
// t from group groups[t - 1]) and second derivatives of the transition enter
// the prediction: a'_kl += F_kl m, P'_kl += F_kl Pf F^T + F Pf F_kl^T + Q_kl.
class Sensitivities {
 public:
  Sensitivities(const Params& params, const std::vector<Direction>& dirs, bool with_hessian,
                const TransitionSensitivities* trans = nullptr, const std::vector<Eigen::Index>* groups = nullptr)
      : params_(params),
        dirs_(dirs),
        trans_(trans),
        groups_(groups),
        n_(params.state_dim()),
        k_(static_cast<Eigen::Index>(dirs.size())) {
    if (with_hessian) pairs_ = pairs_of(k_);
    const size_t np = pairs_.size(), nk = dirs.size();
    da_.assign(nk, Vector::Zero(n_));
    dm_ = da_;
    dp_.assign(nk, Matrix::Zero(n_, n_));
    dpf_ = dp_;
    d2a_.assign(np, Vector::Zero(n_));
    d2m_ = d2a_;
    d2p_.assign(np, Matrix::Zero(n_, n_));
    d2pf_ = d2p_;
    fpf_.resize(n_, n_);
    tmp_.resize(n_, n_);
    x_.resize(n_, n_);
    dv_.resize(nk);
    e_.resize(nk);
    dw_.resize(nk);
    sdv_.resize(nk);
    ds_.resize(nk);
    u_.resize(nk);
    v_.resize(nk);
    a_.resize(nk);
    dh_.resize(nk);
  }

  Sums run(const Sequence& seq) {
    const Eigen::Index p = params_.emission_dim();
    Sums out(k_, !pairs_.empty());
    internal::KalmanFilter<> kf(n_, p);
    internal::InnovationStep step("information");
    Vector s(k_), mean(n_);
    Matrix cov(n_, n_);
    for (Eigen::Index t = 0; t < seq.num_timesteps(); ++t) {
      const auto u = row_at(seq.inputs, t);
      const auto y = row_at(seq.emissions, t);
      if (t == 0)
        start();
      else
        predict(t, u, kf.mean(), kf.cov());
      kf.predict(params_, t, u);
      step.compute(params_, t, y, u, kf.mean(), kf.cov());
      mean = kf.mean();
      cov = kf.cov();
      out.loglik += kf.update(params_, t, y, u);
      if (step.observed.empty()) {  // nothing observed: the filtered moments are the predicted ones
        std::swap(dm_, da_);
        std::swap(dpf_, dp_);
        std::swap(d2m_, d2a_);
        std::swap(d2pf_, d2p_);
        continue;
      }
      update(u, step, mean, cov, s, out);
    }
    return out;
  }

 private:
  // The sensitivities of the initial distribution (t = 0).
  void start() {
    for (Eigen::Index k = 0; k < k_; ++k) {
      const Direction& dir = dirs_[k];
      if (const Matrix* d = dir.of(Member::kInitialMean))
        da_[k] = d->col(0);
      else
        da_[k].setZero();
      if (const Matrix* d = dir.of(Member::kInitialCov))
        dp_[k] = *d;
      else
        dp_[k].setZero();
    }
    for (size_t q = 0; q < pairs_.size(); ++q) {
      d2a_[q].setZero();
      d2p_[q].setZero();
    }
  }

  // d(member)/d theta_k for the transition of group g, or null for zero.
  const Matrix* transition_direction(Eigen::Index k, Member member, Eigen::Index g) const {
    if (!trans_) return dirs_[k].of(member);
    const Matrix& d = (member == Member::kDynamicsWeights ? trans_->weights : trans_->cov)[g][k];
    return d.size() > 0 ? &d : nullptr;
  }

  // a' = F m + B u + b, P' = F Pf F^T + Q differentiated (transition into step t).
  void predict(Eigen::Index t, const Eigen::Ref<const Vector>& u, const Vector& m, const Matrix& pf) {
    const auto& dyn = params_.dynamics;
    const auto f = dyn.weights.at(t - 1);
    const Eigen::Index g = groups_ ? (*groups_)[t - 1] : 0;
    Matrix& fpf = fpf_;
    Matrix& tmp = tmp_;
    Matrix& x = x_;
    fpf.noalias() = f * pf;
    for (Eigen::Index k = 0; k < k_; ++k) {
      const Direction& dir = dirs_[k];
      da_[k].noalias() = f * dm_[k];
      tmp.noalias() = f * dpf_[k];
      dp_[k].noalias() = tmp * f.transpose();
      if (const Matrix* df = transition_direction(k, Member::kDynamicsWeights, g)) {
        da_[k].noalias() += *df * m;
        x.noalias() = *df * fpf.transpose();
        dp_[k] += x + x.transpose();
      }
      if (const Matrix* db = dir.of(Member::kDynamicsInputWeights); db && u.size() > 0) da_[k].noalias() += *db * u;
      if (const Matrix* db = dir.of(Member::kDynamicsBias)) da_[k] += db->col(0);
      if (const Matrix* dq = transition_direction(k, Member::kDynamicsCov, g)) dp_[k] += *dq;
    }
    for (size_t q = 0; q < pairs_.size(); ++q) {
      const auto [k, l] = pairs_[q];
      const Matrix* dfk = transition_direction(k, Member::kDynamicsWeights, g);
      const Matrix* dfl = transition_direction(l, Member::kDynamicsWeights, g);
      d2a_[q].noalias() = f * d2m_[q];
      tmp.noalias() = f * d2pf_[q];
      d2p_[q].noalias() = tmp * f.transpose();
      if (trans_) {
        if (const Matrix& f2 = trans_->weights2[g][q]; f2.size() > 0) {
          d2a_[q].noalias() += f2 * m;
          x.noalias() = f2 * fpf.transpose();
          d2p_[q] += x + x.transpose();
        }
        if (const Matrix& q2 = trans_->cov2[g][q]; q2.size() > 0) d2p_[q] += q2;
      }
      if (!dfk && !dfl) continue;
      x.setZero();
      if (dfk) {
        d2a_[q].noalias() += *dfk * dm_[l];
        tmp.noalias() = dpf_[l] * f.transpose();
        x.noalias() += *dfk * tmp;
      }
      if (dfl) {
        d2a_[q].noalias() += *dfl * dm_[k];
        tmp.noalias() = dpf_[k] * f.transpose();
        x.noalias() += *dfl * tmp;
      }
      if (dfk && dfl) {
        tmp.noalias() = pf * dfl->transpose();
        x.noalias() += *dfk * tmp;
      }
      d2p_[q] += x + x.transpose();
    }
  }

  // The update of the step differentiated, and the step's terms of the sums;
  // (a, pp) are the predicted moments.
  void update(const Eigen::Ref<const Vector>& u, const internal::InnovationStep& step, const Vector& a,
              const Matrix& pp, Vector& s, Sums& out) {
    const auto& o = step.observed;
    const auto po = static_cast<Eigen::Index>(o.size());
    const Matrix& h = step.h_o;
    const Matrix& g = step.ph;  // G = P H_o^T
    const Matrix sinv = step.llt.solve(Matrix::Identity(po, po));
    const Vector w = step.llt.solve(step.v);
    const Matrix gain = step.llt.solve(g.transpose()).transpose();  // K = G S^{-1}
    Matrix mm = sinv;                                               // S^{-1} - w w^T
    mm.noalias() -= w * w.transpose();
    Matrix dg(n_, po), x(po, po), tmp(n_, n_);
    for (Eigen::Index k = 0; k < k_; ++k) {
      const Direction& dir = dirs_[k];
      const Matrix* dh = dir.of(Member::kEmissionsWeights);
      dh_[k] = dh ? Matrix((*dh)(o, Eigen::all)) : Matrix();
      dv_[k].noalias() = -h * da_[k];
      dg.noalias() = dp_[k] * h.transpose();
      ds_[k].noalias() = h * dg;
      if (dh) {
        dv_[k].noalias() -= dh_[k] * a;
        x.noalias() = dh_[k] * g;
        ds_[k] += x + x.transpose();
        dg.noalias() += pp * dh_[k].transpose();
      }
      if (const Matrix* dd = dir.of(Member::kEmissionsInputWeights); dd && u.size() > 0)
        dv_[k].noalias() -= (*dd)(o, Eigen::all) * u;
      if (const Matrix* dd = dir.of(Member::kEmissionsBias)) dv_[k] -= dd->col(0)(o);
      if (const Matrix* dr = dir.of(Member::kEmissionsCov)) ds_[k] += (*dr)(o, o);
      s(k) = -0.5 * mm.cwiseProduct(ds_[k]).sum() - w.dot(dv_[k]);
      e_[k] = dv_[k];
      e_[k].noalias() -= ds_[k] * w;
      dw_[k].noalias() = sinv * e_[k];
      sdv_[k].noalias() = sinv * dv_[k];
      u_[k] = dg;
      u_[k].noalias() -= gain * ds_[k];
      v_[k].noalias() = u_[k] * sinv;
      a_[k].noalias() = sinv * ds_[k];
      dm_[k] = da_[k];
      dm_[k].noalias() += u_[k] * w;
      dm_[k].noalias() += gain * dv_[k];
      // Pf_k = P_k - G_k K^T - K G_k^T + K S_k K^T.
      dpf_[k] = dp_[k];
      tmp.noalias() = dg * gain.transpose();
      dpf_[k] -= tmp + tmp.transpose();
      dg.noalias() = gain * ds_[k];
      dpf_[k].noalias() += dg * gain.transpose();
      symmetrize(dpf_[k]);
    }
    out.score += s;
    out.opg.noalias() += s * s.transpose();
    for (Eigen::Index k = 0; k < k_; ++k)
      for (Eigen::Index l = 0; l <= k; ++l) {
        const double value = 0.5 * a_[k].cwiseProduct(a_[l].transpose()).sum() + dv_[k].dot(sdv_[l]);
        out.harvey(k, l) += value;
        if (l != k) out.harvey(l, k) += value;
      }
    if (pairs_.empty()) return;
    Vector d2v(po);
    Matrix d2s(po, po), d2g(n_, po), z(po, po), hdp(n_, po), wk(n_, n_);
    for (size_t q = 0; q < pairs_.size(); ++q) {
      const auto [k, l] = pairs_[q];
      const bool hk = dh_[k].size() > 0, hl = dh_[l].size() > 0;
      d2v.noalias() = -h * d2a_[q];
      d2g.noalias() = d2p_[q] * h.transpose();
      d2s.noalias() = h * d2g;
      if (hk || hl) {
        z.setZero();
        if (hk) {
          d2v.noalias() -= dh_[k] * da_[l];
          hdp.noalias() = dp_[l] * h.transpose();
          z.noalias() += dh_[k] * hdp;
          d2g.noalias() += dp_[l] * dh_[k].transpose();
        }
        if (hl) {
          d2v.noalias() -= dh_[l] * da_[k];
          hdp.noalias() = dp_[k] * h.transpose();
          z.noalias() += dh_[l] * hdp;
          d2g.noalias() += dp_[k] * dh_[l].transpose();
        }
        if (hk && hl) {
          hdp.noalias() = pp * dh_[l].transpose();
          z.noalias() += dh_[k] * hdp;
        }
        d2s += z + z.transpose();
      }
      const double value = 0.5 * a_[k].cwiseProduct(a_[l].transpose()).sum() - e_[l].dot(dw_[k]) -
                           0.5 * mm.cwiseProduct(d2s).sum() - w.dot(d2v);
      out.hessian(k, l) += value;
      if (l != k) out.hessian(l, k) += value;
      // m_kl = a_kl + G_kl w + K (v_kl - S_kl w) + U_k dw_l + U_l dw_k.
      d2v.noalias() -= d2s * w;
      d2m_[q] = d2a_[q];
      d2m_[q].noalias() += d2g * w;
      d2m_[q].noalias() += gain * d2v;
      d2m_[q].noalias() += u_[k] * dw_[l];
      d2m_[q].noalias() += u_[l] * dw_[k];
      // Pf_kl = P_kl - (W + W^T) + K S_kl K^T, W = G_kl K^T + U_k S^{-1} U_l^T.
      wk.noalias() = d2g * gain.transpose();
      wk.noalias() += v_[k] * u_[l].transpose();
      d2pf_[q] = d2p_[q];
      d2pf_[q] -= wk + wk.transpose();
      hdp.noalias() = gain * d2s;
      d2pf_[q].noalias() += hdp * gain.transpose();
      symmetrize(d2pf_[q]);
    }
  }

  const Params& params_;
  const std::vector<Direction>& dirs_;
  const TransitionSensitivities* trans_;
  const std::vector<Eigen::Index>* groups_;
  Eigen::Index n_, k_;
  std::vector<std::pair<Eigen::Index, Eigen::Index>> pairs_;
  // Predicted (a, P) and filtered (m, Pf) sensitivities.
  std::vector<Vector> da_, dm_, d2a_, d2m_;
  std::vector<Matrix> dp_, dpf_, d2p_, d2pf_;
  // Per-step terms of each parameter: v_k, e_k, S^{-1} e_k, S^{-1} v_k, S_k, U_k, U_k S^{-1}, S^{-1} S_k, H_o,k.
  std::vector<Vector> dv_, e_, dw_, sdv_;
  std::vector<Matrix> ds_, u_, v_, a_, dh_;
  Matrix fpf_, tmp_, x_;  // workspaces of predict()
};

// x with 3 significant digits, for messages.
std::string short_number(double x) {
  std::ostringstream out;
  out << std::setprecision(3) << x;
  return out.str();
}

}  // namespace

Vector free_parameters(const Params& params, const ParamProps& props) { return layout_of(params, props).theta; }

Params with_free_parameters(const Vector& theta, const Params& base, const ParamProps& props) {
  Params p = base;
  auto slots = internal::trainable_slots(p, props);
  const Layout layout = layout_of(slots);
  if (theta.size() != layout.theta.size())
    throw_invalid("theta", std::to_string(layout.theta.size()) + " free parameters", std::to_string(theta.size()));
  Eigen::Index at = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    Matrix value = layout.offsets[i];
    for (Eigen::Index c = 0; c < layout.counts[i]; ++c, ++at) value += theta(at) * layout.directions[at].d;
    slots[i].value = value;
  }
  return p;
}

namespace {

// The per-sequence sums added up, in sequence order (parallel.hpp).
InformationResult summed(const Layout& layout, const std::vector<Sums>& sums, bool with_hessian) {
  const Eigen::Index k = layout.theta.size();
  InformationResult out;
  out.free_parameters = layout.theta;
  Sums total(k, with_hessian);
  for (const Sums& s : sums) {  // in sequence order (parallel.hpp)
    total.loglik += s.loglik;
    total.score += s.score;
    if (with_hessian) total.hessian += s.hessian;
    total.opg += s.opg;
    total.harvey += s.harvey;
  }
  out.marginal_loglik = total.loglik;
  out.score = std::move(total.score);
  out.hessian = std::move(total.hessian);
  out.opg = std::move(total.opg);
  out.harvey = std::move(total.harvey);
  return out;
}

bool moves_transitions(const Direction& d) { return d.member == Member::kDrift || d.member == Member::kDiffusionCov; }

// The transitions' derivatives over the distinct gaps `dts` (transition_derivatives
// per gap and pair of drift and diffusion parameters; only the pairs (k, k)
// without the Hessian).
TransitionSensitivities transition_sensitivities(const ContinuousDynamics& dyn, const std::vector<Direction>& dirs,
                                                 const std::vector<double>& dts, bool with_hessian, int num_threads) {
  const Eigen::Index k = static_cast<Eigen::Index>(dirs.size()), n = dyn.drift.rows();
  const auto pairs = pairs_of(k);
  const Matrix zero = Matrix::Zero(n, n);
  auto drift_of = [&](const Direction& d) -> const Matrix& { return d.member == Member::kDrift ? d.d : zero; };
  auto diffusion_of = [&](const Direction& d) -> const Matrix& {
    return d.member == Member::kDiffusionCov ? d.d : zero;
  };
  struct Gap {
    std::vector<Matrix> weights, cov, weights2, cov2;
  };
  const auto per_gap = parallel_map(
      dts,
      [&](double dt) {
        Gap out{std::vector<Matrix>(k), std::vector<Matrix>(k), std::vector<Matrix>(with_hessian ? pairs.size() : 0),
                std::vector<Matrix>(with_hessian ? pairs.size() : 0)};
        for (size_t q = 0; q < pairs.size(); ++q) {
          const auto [i, j] = pairs[q];
          if (!moves_transitions(dirs[i]) || !moves_transitions(dirs[j]) || (!with_hessian && i != j)) continue;
          internal::TransitionDerivatives d =
              internal::transition_derivatives(dyn.drift, dyn.diffusion_cov, drift_of(dirs[i]), diffusion_of(dirs[i]),
                                               drift_of(dirs[j]), diffusion_of(dirs[j]), dt);
          if (i == j) {
            out.weights[i] = std::move(d.weights_k);
            out.cov[i] = std::move(d.cov_k);
          }
          if (with_hessian) {
            out.weights2[q] = std::move(d.weights_kl);
            out.cov2[q] = std::move(d.cov_kl);
          }
        }
        return out;
      },
      num_threads);
  TransitionSensitivities out;
  for (const Gap& g : per_gap) {
    out.weights.push_back(g.weights);
    out.cov.push_back(g.cov);
    out.weights2.push_back(g.weights2);
    out.cov2.push_back(g.cov2);
  }
  return out;
}

}  // namespace

InformationResult information(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                              bool with_hessian, int num_threads) {
  const Layout layout = layout_of(params, props);
  validate(params, seqs);
  internal::check_known_initial(params, "the information matrices (standard errors)");
  const auto sums = parallel_map(
      seqs, [&](const Sequence& seq) { return Sensitivities(params, layout.directions, with_hessian).run(seq); },
      num_threads);
  return summed(layout, sums, with_hessian);
}

InformationResult information(const ContinuousParams& params, const ContinuousProps& props,
                              const std::vector<TimedSequence>& seqs, bool with_hessian, int num_threads) {
  internal::validate_fit(params, props, seqs);
  ContinuousParams p = params;  // the slots view its values
  // The initial state's slots, the dynamics', the emissions' (built by copies:
  // assigning a Slot would copy into the values it views).
  const auto rest = internal::trainable_slots(p.initial, nullptr, p.emissions, internal::discrete_props(props));
  const auto initial = [](const internal::Slot& s) { return s.name.rfind("initial.", 0) == 0; };
  // The drift row-major, as the theta layout (and its labels) has it; as_map
  // views a (column-major) Matrix transposed.
  RowMatrix drift = p.dynamics.drift, diffusion = p.dynamics.diffusion_cov;
  std::vector<internal::Slot> slots;
  for (const auto& s : rest)
    if (initial(s)) slots.push_back(s);
  if (props.drift)
    slots.push_back(
        {"dynamics.drift", MatrixMap(drift.data(), drift.rows(), drift.cols()), false, CovStructure::kFull});
  if (props.diffusion_cov)
    slots.push_back({"dynamics.diffusion_cov", MatrixMap(diffusion.data(), diffusion.rows(), diffusion.cols()), true,
                     props.diffusion_cov_structure});
  for (const auto& s : rest)
    if (!initial(s)) slots.push_back(s);
  const Layout layout = layout_of(slots);
  const internal::GapGroups gaps = internal::group_gaps(seqs);
  const std::vector<Discretization> discs = internal::discretize_all(params, gaps.dts);
  const TransitionSensitivities trans =
      transition_sensitivities(params.dynamics, layout.directions, gaps.dts, with_hessian, num_threads);
  std::vector<size_t> index(seqs.size());
  std::iota(index.begin(), index.end(), size_t{0});
  const auto sums = parallel_map(
      index,
      [&](size_t i) {
        const Params discrete = internal::assemble(params, discs, gaps.of_sequence[i]);
        return Sensitivities(discrete, layout.directions, with_hessian, &trans, &gaps.of_sequence[i]).run(seqs[i].seq);
      },
      num_threads);
  return summed(layout, sums, with_hessian);
}

Matrix information_covariance(const Matrix& information, const Matrix* meat, const std::vector<std::string>& names) {
  const Eigen::Index k = information.rows();
  if (information.cols() != k)
    throw_invalid("information", "a square matrix",
                  "shape (" + std::to_string(k) + ", " + std::to_string(information.cols()) + ")");
  if (!information.allFinite()) throw_invalid("information", "finite entries", "a NaN or an infinity");
  if (meat && (meat->rows() != k || meat->cols() != k || !meat->allFinite()))
    throw_invalid("meat", "a finite matrix of shape (" + std::to_string(k) + ", " + std::to_string(k) + ")",
                  "shape (" + std::to_string(meat->rows()) + ", " + std::to_string(meat->cols()) + ") or non-finite");
  if (!names.empty() && static_cast<Eigen::Index>(names.size()) != k)
    throw_invalid("names", std::to_string(k) + " labels", std::to_string(names.size()));
  auto label = [&](Eigen::Index i) { return names.empty() ? "parameter " + std::to_string(i) : names[i]; };
  if (k == 0) return Matrix(0, 0);
  // Equilibrate (scale = diag(A)^{-1/2}), so that the test and the factorization
  // do not depend on the parameters' units.
  Vector scale(k);
  for (Eigen::Index i = 0; i < k; ++i) {
    if (!(information(i, i) > 0.0))
      throw_invalid("information", "a positive definite information matrix (every parameter identified, at a maximum)",
                    "information " + short_number(information(i, i)) + " about " + label(i) +
                        (information(i, i) == 0.0 ? " (the data do not depend on it)" : " (not a maximum)"));
    scale(i) = 1.0 / std::sqrt(information(i, i));
  }
  Matrix a = scale.asDiagonal() * information * scale.asDiagonal();
  symmetrize(a);
  const Eigen::SelfAdjointEigenSolver<Matrix> eig(a);
  const double lo = eig.eigenvalues()(0), hi = eig.eigenvalues()(k - 1);
  if (!(lo > static_cast<double>(k) * std::numeric_limits<double>::epsilon() * hi)) {
    Eigen::Index worst = 0;
    eig.eigenvectors().col(0).cwiseAbs().maxCoeff(&worst);
    throw_invalid("information", "a positive definite information matrix (every parameter identified, at a maximum)",
                  std::string(lo > 0.0 ? "a numerically singular one" : "one that is not positive definite") +
                      " (scaled eigenvalues " + short_number(lo) + " .. " + short_number(hi) +
                      "): the direction of the smallest is mostly " + label(worst) +
                      ", which the data do not determine");
  }
  const Eigen::LLT<Matrix> llt(a);
  Matrix cov = llt.solve(Matrix::Identity(k, k));
  if (meat) {
    const Matrix b = scale.asDiagonal() * (*meat) * scale.asDiagonal();
    const Matrix half = llt.solve(b);
    cov = llt.solve(half.transpose());  // A^{-1} B A^{-1} (symmetric B)
  }
  cov = scale.asDiagonal() * cov * scale.asDiagonal();
  symmetrize(cov);
  return cov;
}

}  // namespace lgssm
