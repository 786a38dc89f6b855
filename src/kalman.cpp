#include "kalman.hpp"

#include <cmath>

namespace lgssm::internal {

namespace {
constexpr double kLog2Pi = 1.8378770664093454835606594728112;

bool is_diagonal(const ConstMatrixMap& m) {
  for (Eigen::Index j = 0; j < m.cols(); ++j)
    for (Eigen::Index i = 0; i < m.rows(); ++i)
      if (i != j && m(i, j) != 0.0) return false;
  return true;
}
}  // namespace

template <int N>
KalmanFilter<N>::KalmanFilter(const Params& params, const RowMatrix& emissions)
    : params_(params),
      emissions_(emissions),
      n_(params.state_dim()),
      p_(params.emission_dim()),
      mean_(n_),
      cov_(n_, n_),
      tmp_n_(n_),
      tmp_nn_(n_, n_),
      y_hat_(p_),
      resid_(p_),
      observed_(p_),
      last_observed_(p_),
      chol_r_(p_, p_),
      whitened_(p_, n_),
      gram_(n_, n_),
      factor_(n_),
      m_mat_(n_, n_),
      llt_m_(n_),
      c_u_(n_, n_),
      v_(n_) {
  const MatrixSeries& r = params.emissions.cov;
  cov_is_diagonal_.resize(r.size());
  for (Eigen::Index i = 0; i < r.size(); ++i) cov_is_diagonal_[i] = is_diagonal(r[i]);
}

template <int N>
void KalmanFilter<N>::predict(Eigen::Index t, const Eigen::Ref<const Vector>& u) {
  if (t == 0) {
    mean_ = params_.initial.mean;
    cov_ = params_.initial.cov;
    symmetrize(cov_);
    return;
  }
  const LinearGaussianParams& d = params_.dynamics;
  const Eigen::Index k = t - 1;  // transition z_{t-1} -> z_t
  const auto f = view<N, N>(d.weights.at(k));
  tmp_n_.noalias() = f * mean_;
  tmp_n_ += view<N, 1>(d.bias.at(k));
  if (u.size() > 0) tmp_n_.noalias() += view<N, Eigen::Dynamic>(d.input_weights.at(k)) * u;
  mean_ = tmp_n_;
  tmp_nn_.noalias() = f * cov_;
  cov_.noalias() = tmp_nn_ * f.transpose();
  cov_ += view<N, N>(d.cov.at(k));
  symmetrize(cov_);
}

template <int N>
void KalmanFilter<N>::prepare_whitening(Eigen::Index t) {
  const LinearGaussianParams& e = params_.emissions;
  const Eigen::Index wi = e.weights.size() == 1 ? 0 : t;
  const Eigen::Index ri = e.cov.size() == 1 ? 0 : t;
  const bool pattern_same = observed_ == last_observed_;
  const bool cov_changed = !pattern_same || ri != last_cov_;
  if (!cov_changed && wi == last_weights_) return;
  const Eigen::Index po = num_observed_;
  const auto h = view<Eigen::Dynamic, N>(e.weights.at(t));
  if (cov_changed) {
    const auto r = e.cov.at(t);
    Eigen::Index a = 0;
    for (Eigen::Index i = 0; i < p_; ++i) {
      if (!observed_[i]) continue;
      Eigen::Index b = 0;
      for (Eigen::Index j = 0; j < p_; ++j)
        if (observed_[j]) chol_r_(a, b++) = r(i, j);
      ++a;
    }
    auto block = chol_r_.topLeftCorner(po, po);
    if (cov_is_diagonal_[ri]) {
      block.diagonal() = block.diagonal().cwiseSqrt();
    } else {
      Eigen::LLT<Eigen::Ref<Matrix>> llt(block);  // in place: the factor overwrites `block`
      (void)llt;
    }
    log_det_r_ = 2.0 * block.diagonal().array().log().sum();
    last_observed_ = observed_;
    last_cov_ = ri;
  }
  Eigen::Index a = 0;
  for (Eigen::Index i = 0; i < p_; ++i)
    if (observed_[i]) whitened_.row(a++) = h.row(i);
  auto w = whitened_.topRows(po);
  if (cov_is_diagonal_[ri])
    w = chol_r_.topLeftCorner(po, po).diagonal().cwiseInverse().asDiagonal() * w;
  else
    chol_r_.topLeftCorner(po, po).triangularView<Eigen::Lower>().solveInPlace(w);
  gram_.noalias() = w.transpose() * w;
  last_weights_ = wi;
}

template <int N>
double KalmanFilter<N>::update(Eigen::Index t, const Eigen::Ref<const Vector>& u) {
  num_observed_ = 0;
  for (Eigen::Index i = 0; i < p_; ++i) {
    observed_[i] = !std::isnan(emissions_(t, i));
    num_observed_ += observed_[i];
  }
  if (num_observed_ == 0) return 0.0;
  prepare_whitening(t);
  const Eigen::Index po = num_observed_;
  const LinearGaussianParams& e = params_.emissions;
  const Eigen::Index ri = e.cov.size() == 1 ? 0 : t;

  // Whitened innovation e = L_R^{-1} (y_o - H_o m - D_o u - d_o).
  y_hat_.noalias() = view<Eigen::Dynamic, N>(e.weights.at(t)).lazyProduct(mean_);
  y_hat_ += e.bias.vec(t);
  if (u.size() > 0) y_hat_.noalias() += e.input_weights.at(t) * u;
  Eigen::Index a = 0;
  for (Eigen::Index i = 0; i < p_; ++i)
    if (observed_[i]) resid_(a++) = emissions_(t, i) - y_hat_(i);
  auto resid = resid_.head(po);
  if (cov_is_diagonal_[ri])
    resid.array() /= chol_r_.topLeftCorner(po, po).diagonal().array();
  else
    chol_r_.topLeftCorner(po, po).triangularView<Eigen::Lower>().solveInPlace(resid);

  // M = I + C^T G C with P = C C^T.
  const Mat& c = factor_.compute(cov_);
  tmp_nn_.noalias() = gram_ * c;
  m_mat_.noalias() = c.transpose() * tmp_nn_;
  m_mat_.diagonal().array() += 1.0;
  llt_m_.compute(m_mat_);

  tmp_n_.noalias() = whitened_.topRows(po).transpose() * resid;  // W^T e
  v_.noalias() = c.transpose() * tmp_n_;
  llt_m_.matrixL().solveInPlace(v_);                           // U^{-T} C^T W^T e
  c_u_ = c;
  llt_m_.matrixU().template solveInPlace<Eigen::OnTheRight>(c_u_);      // C U^{-1}

  mean_.noalias() += c_u_ * v_;
  cov_.noalias() = c_u_ * c_u_.transpose();
  symmetrize(cov_);

  const double log_det_m = 2.0 * llt_m_.matrixLLT().diagonal().array().log().sum();
  const double quad = resid.squaredNorm() - v_.squaredNorm();
  return -0.5 * (static_cast<double>(po) * kLog2Pi + log_det_r_ + log_det_m + quad);
}

template class KalmanFilter<1>;
template class KalmanFilter<2>;
template class KalmanFilter<3>;
template class KalmanFilter<4>;
template class KalmanFilter<Eigen::Dynamic>;

}  // namespace lgssm::internal
