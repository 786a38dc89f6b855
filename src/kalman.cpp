#include "kalman.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "checks.hpp"
#include "lgssm/error.hpp"

namespace lgssm::internal {

namespace {
constexpr double kEps = std::numeric_limits<double>::epsilon();

// 2 sum_i log|d_i| over the diagonal of a triangular factor.
template <class Derived>
double log_det_of_factor(const Eigen::MatrixBase<Derived>& l) {
  return 2.0 * l.diagonal().cwiseAbs().array().log().sum();
}
}  // namespace

template <int N, int G>
KalmanFilter<N, G>::KalmanFilter(Eigen::Index state_dim, Eigen::Index emission_dim, bool keep_backward,
                                 bool compare_entries, Eigen::Index width)
    : n_(state_dim),
      p_(emission_dim),
      mean_(n_, width),
      cov_(n_, n_),
      factor_(n_, n_),
      psd_(n_),
      tmp_n_(n_, width),
      tmp_nn_(n_, n_),
      y_hat_(p_, width),
      h_m_(p_, width),
      resid_(p_, width),
      quad_(1, width),
      column_loglik_(1, width),
      work_(p_ + 2 * n_),
      pattern_(p_),
      last_pattern_(p_, -1),
      positive_var_(p_),
      compare_entries_(compare_entries),
      prepared_h_(compare_entries ? p_ : 0, compare_entries ? n_ : 0),
      prepared_r_(compare_entries ? p_ : 0, compare_entries ? p_ : 0),
      chol_r_(p_, p_),
      order_(p_),
      w_(p_, n_),
      q1_(p_, n_),
      q1_sorted_(p_, n_),
      t_(n_, n_),
      e_tilde_(n_, width),
      array_(2 * n_, 2 * n_),
      w_n_(n_, width),
      j_(n_, n_),
      exact_array_(p_ + n_, n_),
      j_exact_(p_, n_),
      j_exact_a_(p_, n_),
      exact_resid_(p_, width),
      keep_backward_(keep_backward),
      back_a_(n_, width),
      back_omega_(n_, n_),
      back_a_mat_(n_, n_),
      last_predicted_cov_(Mat::Constant(n_, n_, std::numeric_limits<double>::quiet_NaN())),
      last_predicted_factor_(n_, n_),
      steady_filtered_cov_(n_, n_) {
  noisy_.reserve(p_);
  exact_.reserve(p_);
}

template <int N, int G>
void KalmanFilter<N, G>::predict(const Params& params, Eigen::Index t, const Eigen::Ref<const Columns>& u) {
  if (t == 0) {
    leave_steady_state();
    mean_.colwise() = params.initial.mean;
    cov_ = params.initial.cov;
  } else {
    const LinearGaussianParams& d = params.dynamics;
    const Eigen::Index k = t - 1;  // transition z_{t-1} -> z_t
    const auto f = sized<N, N>(d.weights.at(k));
    tmp_n_.noalias() = columns_product(f, mean_);
    tmp_n_.colwise() += sized<N, 1>(d.bias.at(k));
    if (u.size() > 0) tmp_n_.noalias() += sized<N, Eigen::Dynamic>(d.input_weights.at(k)) * u;
    mean_ = tmp_n_;
    // After an update at the fixed point: its predicted moments (update() says
    // whether the step keeps them); a second predict in a row (a forecast) runs
    // the recursion.
    predicted_steady_ = steady_;
    steady_ = false;
    if (predicted_steady_) {
      cov_ = last_predicted_cov_;
      factor_ = last_predicted_factor_;
      return;
    }
    tmp_nn_.noalias() = f * cov_;
    cov_.noalias() = tmp_nn_ * f.transpose();
    cov_ += sized<N, N>(d.cov.at(k));
  }
  symmetrize(cov_);
  factor_ = psd_.compute(cov_);
  const double change = (cov_ - last_predicted_cov_).cwiseAbs().maxCoeff();  // NaN at t = 0 and after set_moments
  calm_steps_ = t > 0 && change <= 4.0 * kEps * cov_.cwiseAbs().maxCoeff() ? calm_steps_ + 1 : 0;
  last_predicted_cov_ = cov_;
  last_predicted_factor_ = factor_;
}

template <int N, int G>
void KalmanFilter<N, G>::leave_steady_state() {
  steady_ = predicted_steady_ = false;
  calm_steps_ = 0;
  last_predicted_cov_.setConstant(std::numeric_limits<double>::quiet_NaN());
}

template <int N, int G>
void KalmanFilter<N, G>::look_ahead(const Sequence& seq) {
  ahead_ = G == 1 && p_ > n_ ? &seq : nullptr;
  run_end_ = run_begin_;
  if (!ahead_) return;
  const Eigen::Index steps = std::clamp<Eigen::Index>((Eigen::Index(1) << 16) / p_, 8, 256);  // y~ of 0.5 MB at most
  run_data_.resize(p_, steps);
  run_z_.resize(n_, steps);
  run_perp_.resize(steps);
}

template <int N, int G>
bool KalmanFilter<N, G>::collapsed(const LinearGaussianParams& e, Eigen::Index t) {
  if constexpr (G != 1) return false;
  const Eigen::Index po = static_cast<Eigen::Index>(noisy_.size());
  if (!ahead_ || po <= n_ || !exact_.empty() || e.weights.size() != 1 || e.cov.size() != 1) return false;
  if (t >= run_begin_ && t < run_end_) return true;
  // The run from t: the next steps with this step's pattern (the factors hold for them).
  const RowMatrix& ys = ahead_->emissions;
  const Eigen::Index steps = std::min(run_data_.cols(), ys.rows() - t);
  const bool complete = po == p_;  // nothing missing: a row of the run has no NaN
  Eigen::Index len = 1;
  for (; len < steps; ++len) {
    bool same = true;
    if (complete)
      same = all_finite(ys.row(t + len));  // emissions are finite or NaN
    else
      for (Eigen::Index i = 0; i < p_ && same; ++i) same = std::isnan(ys(t + len, i)) == (pattern_[i] == 0);
    if (!same) break;
  }
  auto data = run_data_.topLeftCorner(po, len);
  const bool inputs = ahead_->inputs.size() > 0;
  for (Eigen::Index j = 0; j < len; ++j) {
    y_hat_ = e.bias.vec(t + j);
    if (inputs) y_hat_.noalias() += e.input_weights.at(t + j) * ahead_->inputs.row(t + j).transpose();
    if (complete)
      data.col(j) = ys.row(t + j).transpose() - y_hat_;
    else
      for (Eigen::Index a = 0; a < po; ++a) data(a, j) = ys(t + j, noisy_[a]) - y_hat_(noisy_[a]);
  }
  const auto l_r = chol_r_.topLeftCorner(po, po);
  if (noisy_cov_is_diagonal_)
    data = l_r.diagonal().cwiseInverse().asDiagonal() * data;
  else
    l_r.template triangularView<Eigen::Lower>().solveInPlace(data);
  const Eigen::Index k = std::min(po, n_);
  const auto q1 = q1_.topLeftCorner(po, k);
  auto z = run_z_.topLeftCorner(k, len);
  z.noalias() = q1.transpose() * data;
  data.noalias() -= q1 * z;
  run_perp_.head(len) = data.colwise().squaredNorm().transpose();
  run_begin_ = t;
  run_end_ = t + len;
  return true;
}

template <int N, int G>
void KalmanFilter<N, G>::prepare(const LinearGaussianParams& e, Eigen::Index t) {
  run_end_ = run_begin_;  // the run's terms were made with the old factors
  const Eigen::Index po = static_cast<Eigen::Index>(noisy_.size());
  if (po == 0) return;
  const auto h = sized<Eigen::Dynamic, N>(e.weights.at(t));
  const auto r = e.cov.at(t);
  auto l_r = chol_r_.topLeftCorner(po, po);
  bool diagonal = true;
  for (Eigen::Index b = 0; b < po; ++b)
    for (Eigen::Index a = 0; a < po; ++a) {
      l_r(a, b) = r(noisy_[b], noisy_[a]);  // symmetric: along r's rows (row-major)
      diagonal = diagonal && (a == b || l_r(a, b) == 0.0);
    }
  noisy_cov_is_diagonal_ = diagonal;
  if (diagonal) {
    l_r.diagonal() = l_r.diagonal().cwiseSqrt();
  } else {
    Eigen::LLT<Eigen::Ref<Matrix>> llt(l_r);  // in place: the factor overwrites `l_r`
    (void)llt;
  }
  log_det_r_ = log_det_of_factor(l_r);

  // W = L_R^{-1} H_N, its rows sorted by decreasing norm, then W = Q1 T.
  auto w = w_.topRows(po);
  for (Eigen::Index a = 0; a < po; ++a) w.row(a) = h.row(noisy_[a]);
  if (diagonal)
    w = l_r.diagonal().cwiseInverse().asDiagonal() * w;
  else
    l_r.template triangularView<Eigen::Lower>().solveInPlace(w);
  for (Eigen::Index a = 0; a < po; ++a) {
    order_[a] = a;
    work_(a) = w.row(a).squaredNorm();
  }
  std::sort(order_.begin(), order_.begin() + po, [&](Eigen::Index i, Eigen::Index j) { return work_(i) > work_(j); });
  auto w_sorted = q1_.topRows(po);  // scratch for the permutation
  for (Eigen::Index a = 0; a < po; ++a) w_sorted.row(a) = w.row(order_[a]);
  w = w_sorted;
  const Eigen::Index k = std::min(po, n_);
  auto q1_sorted = q1_sorted_.topLeftCorner(po, k);
  thin_qr(w, q1_sorted, t_, w_n_.data(), work_.data());
  for (Eigen::Index a = 0; a < po; ++a) q1_.row(order_[a]).head(k) = q1_sorted.row(a);
}

template <int N, int G>
bool KalmanFilter<N, G>::prepared_for(const LinearGaussianParams& e, Eigen::Index t) const {
  const Eigen::Index wi = e.weights.size() == 1 ? 0 : t;
  const Eigen::Index ri = e.cov.size() == 1 ? 0 : t;
  if (pattern_ != last_pattern_ || ri != last_cov_ || wi != last_weights_) return false;
  if (!compare_entries_) return true;
  const auto same = [](const RowMatrix& a, const ConstMatrixMap& b) {  // both row-major: contiguous
    return std::equal(a.data(), a.data() + a.size(), b.data());
  };
  return same(prepared_h_, e.weights.at(t)) && same(prepared_r_, e.cov.at(t));
}

template <int N, int G>
double KalmanFilter<N, G>::update(const Params& params, Eigen::Index t, const Eigen::Ref<const Columns>& y,
                                  const Eigen::Ref<const Columns>& u) {
  const LinearGaussianParams& e = params.emissions;
  const auto r = e.cov.at(t);
  const Eigen::Index ri = e.cov.size() == 1 ? 0 : t;
  if (compare_entries_ || ri != noisy_cov_) {  // R's diagonal, read once per entry (a strided sweep)
    for (Eigen::Index i = 0; i < p_; ++i) positive_var_[i] = r(i, i) > 0.0;
    noisy_cov_ = ri;
  }
  noisy_.clear();
  exact_.clear();
  for (Eigen::Index i = 0; i < p_; ++i) {
    if (std::isnan(y(i, 0))) {
      pattern_[i] = 0;
    } else if (positive_var_[i]) {
      pattern_[i] = 1;
      noisy_.push_back(i);
    } else {
      pattern_[i] = 2;
      exact_.push_back(i);
    }
  }
  // In the steady state (predict() used the fixed point), the step's
  // covariance terms are those of the step that reached it if its pattern is
  // the same; otherwise the full recursion resumes from the fixed point.
  const bool prepared = prepared_for(e, t);
  const bool reuse = predicted_steady_ && exact_.empty() && !noisy_.empty() && prepared;
  predicted_steady_ = steady_ = false;
  if (keep_backward_) {
    back_a_.setZero();
    if (!reuse) {
      back_omega_.setZero();
      back_a_mat_.setIdentity();
    }
  }
  column_loglik_.setZero();
  if (noisy_.empty() && exact_.empty()) {
    calm_steps_ = 0;
    return 0.0;
  }
  if (!prepared) {
    calm_steps_ = 0;  // another pattern: this step's filtered covariance is not the last steps' fixed point
    prepare(e, t);
    last_pattern_ = pattern_;
    last_cov_ = e.cov.size() == 1 ? 0 : t;
    last_weights_ = e.weights.size() == 1 ? 0 : t;
    if (compare_entries_) {
      prepared_h_ = e.weights.at(t);
      prepared_r_ = r;
    }
  }
  const Eigen::Index po = static_cast<Eigen::Index>(noisy_.size());
  const Eigen::Index k = std::min(po, n_);
  bool collapse = false;
  if constexpr (G == 1) collapse = po > 0 && collapsed(e, t);
  if (collapse) {
    // e~ = z_t - T m, |e_perp|^2 from the run.
    const Eigen::Index j = t - run_begin_;
    e_tilde_.noalias() = t_.template triangularView<Eigen::Upper>() * mean_;  // zero below row k (T's are)
    e_tilde_.topRows(k) = run_z_.col(j).head(k) - e_tilde_.topRows(k);
    quad_.setConstant(run_perp_(j));
  } else {
    // y_hat = D u + d (+ H m below).
    y_hat_.colwise() = e.bias.vec(t);
    if (u.size() > 0) y_hat_.noalias() += e.input_weights.at(t) * u;
  }
  if (po > 0 && !collapse) {
    const auto h = sized<Eigen::Dynamic, N>(e.weights.at(t));
    // Whitened innovation e = L_R^{-1} (y_N - H_N m - D_N u - d_N).
    auto resid = resid_.topRows(po);
    h_m_.noalias() = columns_product(h, mean_);
    for (Eigen::Index a = 0; a < po; ++a) {
      const Eigen::Index i = noisy_[a];
      resid.row(a) = y.row(i) - y_hat_.row(i) - h_m_.row(i);
    }
    auto l_r = chol_r_.topLeftCorner(po, po);
    if (noisy_cov_is_diagonal_)
      resid.array().colwise() /= l_r.diagonal().array();
    else
      l_r.template triangularView<Eigen::Lower>().solveInPlace(resid);
    // e~ = Q1^T e, e_perp = e - Q1 e~.
    const auto q1 = q1_.topLeftCorner(po, k);
    e_tilde_.setZero();
    e_tilde_.topRows(k).noalias() = q1.transpose() * resid;
    quad_.setZero();
    if (po > k) {
      resid.noalias() -= q1 * e_tilde_.topRows(k);
      quad_ = resid.colwise().squaredNorm();
    }
  }
  if (po > 0) {
    // [[I, T C], [0, C]] Theta = [[L, 0], [Kb, C+]] (kept in the steady state).
    if (!reuse) {
      array_.topLeftCorner(n_, n_).setIdentity();
      tmp_nn_.noalias() = t_.template triangularView<Eigen::Upper>() * factor_;
      array_.topRightCorner(n_, n_) = tmp_nn_;
      array_.bottomLeftCorner(n_, n_).setZero();
      array_.bottomRightCorner(n_, n_) = factor_;
      lower_triangularize(array_, n_, work_.data());
      log_det_s_ = log_det_of_factor(array_.topLeftCorner(n_, n_));
    }
    const auto l = array_.topLeftCorner(n_, n_).template triangularView<Eigen::Lower>();
    w_n_ = e_tilde_;
    l.solveInPlace(w_n_);
    quad_ += w_n_.colwise().squaredNorm();
    mean_.noalias() += columns_product(array_.template bottomLeftCorner<N, N>(n_, n_), w_n_);
    factor_ = array_.bottomRightCorner(n_, n_);
    if (keep_backward_) {
      if (!reuse) {
        j_ = t_.template triangularView<Eigen::Upper>();
        l.solveInPlace(j_);
        back_omega_.noalias() = j_.transpose() * j_;
        back_a_mat_.noalias() -= array_.bottomLeftCorner(n_, n_) * j_;
      }
      back_a_.noalias() = columns_product(j_.transpose(), w_n_);
    }
    column_loglik_.array() = -0.5 * (static_cast<double>(po) * kLog2Pi + log_det_r_ + log_det_s_ + quad_.array());
  }
  if (!exact_.empty()) update_exact(e, t, y);
  if (reuse) {
    cov_ = steady_filtered_cov_;
    steady_ = true;
  } else {
    cov_.noalias() = factor_ * factor_.transpose();
    symmetrize(cov_);
    // The steady state: the predicted covariance has changed by at most a few
    // ulps over the last steps, with time-invariant F, Q, H, R and this step's
    // pattern (then the Riccati recursion, contractive, stays at its fixed
    // point to round-off). A stream's parameters may change between calls.
    const auto one = [](const MatrixSeries& m) { return m.size() == 1; };
    const LinearGaussianParams& d = params.dynamics;
    if (calm_steps_ >= 2 && exact_.empty() && !compare_entries_ && one(d.weights) && one(d.cov) && one(e.weights) &&
        one(e.cov)) {
      steady_filtered_cov_ = cov_;
      steady_ = true;
    }
  }
  // With finite inputs, a NaN can only come from overflow (|y| near 1e308).
  for (Eigen::Index j = 0; j < column_loglik_.size(); ++j)
    if (std::isnan(column_loglik_(j))) column_loglik_(j) = -std::numeric_limits<double>::infinity();
  return column_loglik_.sum();
}

template <int N, int G>
void KalmanFilter<N, G>::update_exact(const LinearGaussianParams& e, Eigen::Index t,
                                      const Eigen::Ref<const Columns>& y) {
  const Eigen::Index ne = static_cast<Eigen::Index>(exact_.size());
  const auto h = sized<Eigen::Dynamic, N>(e.weights.at(t));
  const double scale = factor_.norm();
  const auto fail = [&](Eigen::Index i) {
    throw invalid_argument("emissions.cov: component " + std::to_string(i) + " of step " + std::to_string(t) +
                           " is observed exactly (zero variance) but is already determined by the model and the "
                           "earlier data (zero predicted variance), so the data have no density; give it a "
                           "positive variance");
  };
  if (ne > n_) fail(exact_[n_]);
  // [H_E C; C] Theta = [[L_E, 0], [Kb, C+]].
  auto pre = exact_array_.topRows(ne + n_);
  for (Eigen::Index a = 0; a < ne; ++a) pre.row(a).noalias() = h.row(exact_[a]) * factor_;
  pre.bottomRows(n_) = factor_;
  lower_triangularize(pre, ne, work_.data());
  auto w = exact_resid_.topRows(ne);
  for (Eigen::Index a = 0; a < ne; ++a) {
    const Eigen::Index i = exact_[a];
    if (!(std::abs(pre(a, a)) > 64.0 * kEps * h.row(i).norm() * scale)) fail(i);
    w.row(a) = y.row(i) - y_hat_.row(i);
    w.row(a).noalias() -= h.row(i) * mean_;
  }
  const auto l = pre.topLeftCorner(ne, ne).template triangularView<Eigen::Lower>();
  l.solveInPlace(w);
  const auto kb = pre.bottomLeftCorner(n_, ne);
  mean_.noalias() += kb * w;
  factor_.leftCols(n_ - ne) = pre.bottomRightCorner(n_, n_ - ne);
  factor_.rightCols(ne).setZero();
  if (keep_backward_) {
    // With the noisy stage's (a_N, Omega_N, A_N) in back_*: compose.
    auto j = j_exact_.topRows(ne);
    for (Eigen::Index a = 0; a < ne; ++a) j.row(a) = h.row(exact_[a]);
    l.solveInPlace(j);
    tmp_n_.noalias() = j.transpose() * w;  // a_E
    back_a_.noalias() += columns_product(back_a_mat_.transpose(), tmp_n_);
    auto ja = j_exact_a_.topRows(ne);
    ja.noalias() = j * back_a_mat_;  // J_E A_N
    back_omega_.noalias() += ja.transpose() * ja;
    back_a_mat_.noalias() -= kb * ja;  // A = (I - Kb J_E) A_N
  }
  column_loglik_.array() -= 0.5 * (static_cast<double>(ne) * kLog2Pi + log_det_of_factor(pre.topLeftCorner(ne, ne)) +
                                   w.colwise().squaredNorm().array());
}

template class KalmanFilter<1>;
template class KalmanFilter<2>;
template class KalmanFilter<3>;
template class KalmanFilter<4>;
template class KalmanFilter<Eigen::Dynamic>;
template class KalmanFilter<1, Eigen::Dynamic>;
template class KalmanFilter<2, Eigen::Dynamic>;
template class KalmanFilter<3, Eigen::Dynamic>;
template class KalmanFilter<4, Eigen::Dynamic>;
template class KalmanFilter<Eigen::Dynamic, Eigen::Dynamic>;

}  // namespace lgssm::internal
