#include "diffuse.hpp"

#include <Eigen/Cholesky>
#include <Eigen/Householder>
#include <Eigen/QR>
#include <cmath>
#include <limits>
#include <string>

#include "lgssm/error.hpp"
#include "linalg.hpp"

namespace lgssm::internal {

namespace {
constexpr double kEps = std::numeric_limits<double>::epsilon();

Eigen::Map<const Vector> row_of(const RowMatrix& m, Eigen::Index t) {
  if (m.size() == 0) return Eigen::Map<const Vector>(nullptr, 0);
  return Eigen::Map<const Vector>(m.row(t).data(), m.cols());
}
}  // namespace

Matrix compress_diffuse(const Matrix& a) {
  if (a.cols() == 0) return a;
  Eigen::ColPivHouseholderQR<Matrix> qr(a.transpose());  // A^T Pi = Q R
  qr.setThreshold(64.0 * kEps);
  const Eigen::Index rank = qr.rank();
  if (rank == a.cols()) return a;
  // A A^T = Pi R^T R Pi^T, R's rows past the rank zero.
  const Matrix r = qr.matrixR().topRows(rank).template triangularView<Eigen::Upper>();
  return qr.colsPermutation() * r.transpose();
}

DiffuseFilter::DiffuseFilter(Eigen::Index state_dim, Eigen::Index emission_dim)
    : n_(state_dim),
      p_(emission_dim),
      mean_(n_),
      cov_(n_, n_),
      m_star_(n_),
      k0_(n_),
      k1_(n_),
      z_o_(p_, n_),
      y_o_(p_),
      s2_o_(p_) {}

void DiffuseFilter::start(const Params& params) {
  mean_ = params.initial.mean;
  cov_ = params.initial.cov;
  diffuse_ = compress_diffuse(params.initial.diffuse);
}

void DiffuseFilter::set_state(const Eigen::Ref<const Vector>& mean, const Eigen::Ref<const Matrix>& cov,
                              const Matrix& diffuse) {
  mean_ = mean;
  cov_ = cov;
  diffuse_ = diffuse;
}

void DiffuseFilter::predict(const Params& params, Eigen::Index t, const Eigen::Ref<const Vector>& u) {
  const LinearGaussianParams& d = params.dynamics;
  const Eigen::Index k = t - 1;
  const auto f = d.weights.at(k);
  Vector m = f * mean_ + d.bias.vec(k);
  if (u.size() > 0) m.noalias() += d.input_weights.at(k) * u;
  mean_ = m;
  Matrix fp = f * cov_;
  cov_.noalias() = fp * f.transpose();
  cov_ += d.cov.at(k);
  symmetrize(cov_);
  diffuse_ = compress_diffuse(f * diffuse_);
}

double DiffuseFilter::update(const Params& params, Eigen::Index t, const Eigen::Ref<const Vector>& y,
                             const Eigen::Ref<const Vector>& u, DiffuseStepTerms* terms) {
  const LinearGaussianParams& e = params.emissions;
  const auto h = e.weights.at(t);
  const auto r = e.cov.at(t);
  if (terms) {
    terms->count = 0;
    terms->kind.assign(p_, 0);
    terms->z.resize(p_, n_);
    terms->k0.resize(n_, p_);
    terms->k1.resize(n_, p_);
    terms->v.resize(p_);
    terms->f_inf.resize(p_);
    terms->f_star.resize(p_);
  }
  std::vector<Eigen::Index> obs;
  for (Eigen::Index i = 0; i < p_; ++i)
    if (!std::isnan(y(i))) obs.push_back(i);
  const Eigen::Index po = static_cast<Eigen::Index>(obs.size());
  if (po == 0) return 0.0;
  Vector y_hat = e.bias.vec(t);
  if (u.size() > 0) y_hat.noalias() += e.input_weights.at(t) * u;
  auto z = z_o_.topRows(po);
  auto w = y_o_.head(po);
  auto s2 = s2_o_.head(po);
  bool diagonal = true;
  for (Eigen::Index a = 0; a < po; ++a) {
    z.row(a) = h.row(obs[a]);
    w(a) = y(obs[a]) - y_hat(obs[a]);
    s2(a) = r(obs[a], obs[a]);
    for (Eigen::Index b = 0; b < po; ++b) diagonal = diagonal && (a == b || r(obs[a], obs[b]) == 0.0);
  }
  if (!diagonal) {
    // R_oo = P^T L D L^T P: y* = L^{-1} P y_o has independent components of variances D.
    Matrix r_oo(po, po);
    for (Eigen::Index b = 0; b < po; ++b)
      for (Eigen::Index a = 0; a < po; ++a) r_oo(a, b) = r(obs[a], obs[b]);
    const Eigen::LDLT<Matrix> ldlt(r_oo);
    Matrix zt = ldlt.transpositionsP() * Matrix(z);
    Vector wt = ldlt.transpositionsP() * Vector(w);
    ldlt.matrixL().solveInPlace(zt);
    ldlt.matrixL().solveInPlace(wt);
    z = zt;
    w = wt;
    s2 = ldlt.vectorD().cwiseMax(0.0);
    for (Eigen::Index a = 0; a < po; ++a) obs[a] = -1;  // transformed: no original component index
  }
  double loglik = 0.0;
  for (Eigen::Index a = 0; a < po; ++a) {
    const double v = w(a) - z.row(a).dot(mean_);
    loglik += update_component(z.row(a).transpose(), v, s2(a), t, obs[a], terms);
  }
  return std::isnan(loglik) ? -std::numeric_limits<double>::infinity() : loglik;
}

double DiffuseFilter::update_component(const Eigen::Ref<const Vector>& z, double v, double s2, Eigen::Index t,
                                       Eigen::Index i, DiffuseStepTerms* terms) {
  const Eigen::Index q = diffuse_.cols();
  m_star_.noalias() = cov_ * z;
  const double f_star = z.dot(m_star_) + s2;
  double beta = 0.0;
  if (q > 0) {
    g_.noalias() = diffuse_.transpose() * z;
    const double tol = 64.0 * kEps * diffuse_.norm() * z.norm();
    if (g_.norm() > tol) {
      // H g = beta e_1 (H = I - tau [1; ess][1; ess]^T): (A H)^T z = beta e_1.
      Vector essential(q > 1 ? q - 1 : 0);
      double tau = 0.0;
      g_.makeHouseholder(essential, tau, beta);
      Vector work(n_);
      diffuse_.applyHouseholderOnTheRight(essential, tau, work.data());
      k0_ = diffuse_.col(0) / beta;
      diffuse_ = Matrix(diffuse_.rightCols(q - 1));
    }
  }
  double loglik;
  char kind;
  if (beta != 0.0) {
    kind = 1;
    const double f_inf = beta * beta;
    k1_ = (m_star_ - k0_ * f_star) / f_inf;
    mean_ += k0_ * v;
    cov_.noalias() += (k0_ * f_star - m_star_) * k0_.transpose();
    cov_.noalias() -= k0_ * m_star_.transpose();
    symmetrize(cov_);
    loglik = -0.5 * (kLog2Pi + std::log(f_inf));
    if (terms) terms->f_inf(terms->count) = f_inf;
  } else {
    kind = 2;
    if (!(f_star > 64.0 * kEps * z.squaredNorm() * cov_.norm()) && s2 == 0.0) {
      const std::string which = i >= 0 ? "component " + std::to_string(i) : "a (decorrelated) component";
      throw invalid_argument("emissions.cov: " + which + " of step " + std::to_string(t) +
                             " is observed exactly (zero variance) but is already determined by the model and the "
                             "earlier data (zero predicted variance), so the data have no density; give it a "
                             "positive variance");
    }
    k0_ = m_star_ / f_star;
    mean_ += k0_ * v;
    cov_.noalias() -= k0_ * m_star_.transpose();
    symmetrize(cov_);
    loglik = -0.5 * (kLog2Pi + std::log(f_star) + v * v / f_star);
    if (terms) terms->f_inf(terms->count) = 0.0;
  }
  if (terms) {
    const Eigen::Index c = terms->count++;
    terms->kind[c] = kind;
    terms->z.row(c) = z.transpose();
    terms->k0.col(c) = k0_;
    if (kind == 1) terms->k1.col(c) = k1_;
    terms->v(c) = v;
    terms->f_star(c) = f_star;
  }
  return loglik;
}

void check_diffuse_identified(const DiffuseTrace& trace, const char* what) {
  if (trace.final_rank == 0) return;
  throw invalid_argument(std::string(what) + ": the data do not identify the diffuse initial state (after all " +
                         std::to_string(trace.num_steps) + " steps, " + std::to_string(trace.final_rank) +
                         " diffuse direction(s) remain unobserved), so its posterior is improper; give those "
                         "directions a known initial distribution or use more data");
}

void diffuse_smoother(const Params& params, const Sequence& seq, const DiffuseTrace& trace,
                      const RowMatrix& predicted_means, const MatrixSeries& predicted_covariances,
                      const MatrixSeries& filtered_covariances, const Vector& score, const Matrix& info,
                      bool covariances, RowMatrix& smoothed_means, MatrixSeries* smoothed_covariances,
                      MatrixSeries* smoothed_cross_covariances) {
  const Eigen::Index n = params.state_dim(), p = params.emission_dim();
  DiffuseFilter replay(n, p);
  DiffuseStepTerms terms;
  Vector r0 = score, r1 = Vector::Zero(n);
  Matrix n0 = info, n1 = Matrix::Zero(n, n), n2 = Matrix::Zero(n, n);
  const Matrix eye = Matrix::Identity(n, n);
  Matrix l0(n, n), l1(n, n), zz(n, n);
  for (Eigen::Index t = trace.num_steps - 1; t >= 0; --t) {
    const Vector a = predicted_means.row(t).transpose();
    const Matrix ps = predicted_covariances[t];
    const Matrix& ai = trace.predicted_diffuse[t];
    replay.set_state(a, ps, ai);
    const auto u = row_of(seq.inputs, t);
    replay.update(params, t, row_of(seq.emissions, t), u, &terms);
    for (Eigen::Index j = terms.count - 1; j >= 0; --j) {
      const auto z = terms.z.row(j).transpose();
      const auto k0 = terms.k0.col(j);
      const double v = terms.v(j), f_star = terms.f_star(j);
      l0 = eye;
      l0.noalias() -= k0 * z.transpose();
      if (terms.kind[j] == 1) {
        const double f_inf = terms.f_inf(j);
        const auto k1 = terms.k1.col(j);
        l1.noalias() = (-k1) * z.transpose();
        r1 = z * (v / f_inf) + l0.transpose() * r1 + l1.transpose() * r0;
        r0 = l0.transpose() * r0;
        if (covariances) {
          zz.noalias() = z * z.transpose();
          const Matrix n0l1 = n0 * l1, n1l1 = n1 * l1;
          Matrix n2_new = zz * (-f_star / (f_inf * f_inf)) + l0.transpose() * n2 * l0 + l0.transpose() * n1l1 +
                          l1.transpose() * n1 * l0 + l1.transpose() * n0l1;
          Matrix n1_new = zz / f_inf + l0.transpose() * n1 * l0 + l1.transpose() * n0 * l0 + l0.transpose() * n0l1;
          n0 = l0.transpose() * n0 * l0;
          n1 = n1_new;
          n2 = n2_new;
          symmetrize(n0);
          symmetrize(n1);
          symmetrize(n2);
        }
      } else {
        r0 = z * (v / f_star) + l0.transpose() * r0;
        r1 = l0.transpose() * r1;
        if (covariances) {
          n0 = z * z.transpose() / f_star + l0.transpose() * n0 * l0;
          n1 = l0.transpose() * n1 * l0;
          n2 = l0.transpose() * n2 * l0;
          symmetrize(n0);
          symmetrize(n1);
          symmetrize(n2);
        }
      }
    }
    // The predicted level of step t.
    const Matrix pi = ai * ai.transpose();
    smoothed_means.row(t) = (a + ps * r0 + pi * r1).transpose();
    if (covariances) {
      const Matrix pin1ps = pi * n1 * ps;
      Matrix var = ps - ps * n0 * ps - pin1ps - pin1ps.transpose() - pi * n2 * pi;
      symmetrize(var);
      (*smoothed_covariances)[t] = var;
    }
    if (t == 0) break;
    const auto f = params.dynamics.weights.at(t - 1);
    if (covariances) {
      const Matrix& af = trace.filtered_diffuse[t - 1];
      const Matrix ps_prev = filtered_covariances[t - 1];
      const Matrix c = (eye - ps * n0 - pi * n1) * f * ps_prev - (ps * n1 + pi * n2) * (f * af) * af.transpose();
      (*smoothed_cross_covariances)[t - 1] = c;
      n0 = f.transpose() * n0 * f;
      n1 = f.transpose() * n1 * f;
      n2 = f.transpose() * n2 * f;
    }
    r0 = f.transpose() * r0;
    r1 = f.transpose() * r1;
  }
}

}  // namespace lgssm::internal
