#include "unconstrained.hpp"

#include <Eigen/Eigenvalues>
#include <cmath>

#include "lgssm/error.hpp"

namespace lgssm::internal {

Eigen::Index unconstrained_size(const Slot& s) {
  const Eigen::Index n = s.value.rows();
  if (s.affine) return s.affine->design.cols();
  if (!s.is_cov) return s.value.size();
  if (s.structure == CovStructure::kFull) return n * (n + 1) / 2;
  return s.structure == CovStructure::kDiagonal ? n : 1;
}

Eigen::Index unconstrained_size(const std::vector<Slot>& slots) {
  Eigen::Index size = 0;
  for (const auto& s : slots) size += unconstrained_size(s);
  return size;
}

namespace {

const char* structure_name(CovStructure s) {
  switch (s) {
    case CovStructure::kDiagonal:
      return "diagonal";
    case CovStructure::kScalar:
      return "scalar";
    default:
      return "full";
  }
}

}  // namespace

void check_structure(const std::string& name, const Eigen::Ref<const Matrix>& cov, CovStructure s) {
  if (s == CovStructure::kFull) return;
  const Eigen::Index n = cov.rows();
  for (Eigen::Index j = 0; j < n; ++j)
    for (Eigen::Index i = 0; i < n; ++i) {
      const bool bad = (i != j && cov(i, j) != 0.0) || (s == CovStructure::kScalar && i == j && cov(i, i) != cov(0, 0));
      if (bad)
        throw_invalid(name, std::string("a ") + structure_name(s) + " matrix (its declared structure)",
                      "entry (" + std::to_string(i) + ", " + std::to_string(j) + ") = " + std::to_string(cov(i, j)));
    }
}

Vector vec(const Eigen::Ref<const Matrix>& m) { return m.reshaped(); }

bool holds_variances(const Slot& s) {
  if (!s.is_cov || !s.affine) return false;
  const Eigen::Index n = s.value.rows();
  const Matrix& d = s.affine->design;
  for (Eigen::Index r = 0; r < d.rows(); ++r) {
    Eigen::Index nonzeros = 0;
    for (Eigen::Index c = 0; c < d.cols(); ++c)
      if (d(r, c) != 0.0) {
        if (r % n != r / n || d(r, c) < 0.0 || ++nonzeros > 1) return false;
      }
  }
  return true;
}

std::vector<Eigen::Index> free_components(const Affine& a, Eigen::Index n) {
  std::vector<Eigen::Index> out;
  for (Eigen::Index i = 0; i < n; ++i) {
    bool free = false;
    for (Eigen::Index j = 0; j < n && !free; ++j) free = !a.design.row(i + j * n).isZero(0.0);
    if (free) out.push_back(i);
  }
  return out;
}

namespace {

// The exponential map of a constrained covariance whose free values are not
// variances alone: over the free components f, Sigma_ff = expm(X), X = sum_k
// x_k B_k with B_k the design's column k as a matrix on f. On a Jordan algebra
// (the constraint's condition) expm(X) lies in the span, so every x gives a
// positive definite covariance on the constraint, and every such covariance
// has one x: the coordinates of logm(Sigma_ff).
class ExpMap {
 public:
  explicit ExpMap(const Slot& s) : free_(free_components(*s.affine, s.value.rows())) {
    const Eigen::Index n = s.value.rows(), k = s.affine->design.cols(), f = static_cast<Eigen::Index>(free_.size());
    span_.resize(f * f, k);
    for (Eigen::Index c = 0; c < k; ++c)
      span_.col(c) = Matrix(s.affine->design.col(c).reshaped(n, n))(free_, free_).reshaped();
  }

  // x for the slot's value (projected onto the constraint).
  Vector coordinates(const Slot& s) const {
    const Eigen::Index n = s.value.rows();
    const Vector beta = free_values(*s.affine, s.value);
    const Matrix sigma = Matrix((s.affine->design * beta).reshaped(n, n))(free_, free_);
    const Eigen::SelfAdjointEigenSolver<Matrix> eig(sigma);
    if (!(eig.eigenvalues().minCoeff() > 0.0))
      throw_invalid(s.name, "a positive definite block of free components for gradient-based fitting",
                    "smallest eigenvalue " + std::to_string(eig.eigenvalues().minCoeff()));
    const Matrix x =
        eig.eigenvectors() * eig.eigenvalues().array().log().matrix().asDiagonal() * eig.eigenvectors().transpose();
    return span_.colPivHouseholderQr().solve(x.reshaped());
  }

  // Writes fixed + embed(expm(X)) into the slot.
  void write(const Vector& x, Slot& s) const {
    const Eigen::Index f = static_cast<Eigen::Index>(free_.size());
    const Matrix big_x = (span_ * x).reshaped(f, f);
    const Eigen::SelfAdjointEigenSolver<Matrix> eig(big_x);
    s.value = s.affine->fixed.reshaped(s.value.rows(), s.value.cols());
    s.value(free_, free_) =
        eig.eigenvectors() * eig.eigenvalues().array().exp().matrix().asDiagonal() * eig.eigenvectors().transpose();
  }

  // d/dx from g = d/dSigma (symmetric) at the slot's value: with Sigma_ff = U
  // diag(mu) U^T and lambda = log mu, d/dX = U ((U^T g_ff U) o Phi) U^T, Phi_ij
  // = (mu_i - mu_j) / (lambda_i - lambda_j) (mu_i where they meet; the
  // derivative of expm, self-adjoint), and d/dx_k = <B_k, d/dX>.
  Vector gradient(const Slot& s, const Eigen::Ref<const Matrix>& g) const {
    const Eigen::SelfAdjointEigenSolver<Matrix> eig(Matrix(s.value(free_, free_)));
    const Vector& mu = eig.eigenvalues();
    const Matrix& u = eig.eigenvectors();
    const Eigen::Index f = mu.size();
    Matrix inner = u.transpose() * Matrix(g(free_, free_)) * u;
    for (Eigen::Index i = 0; i < f; ++i)
      for (Eigen::Index j = 0; j < f; ++j) {
        const double d = std::log(mu(i)) - std::log(mu(j));
        inner(i, j) *= std::abs(d) < 1e-8 ? mu(j) * (1.0 + 0.5 * d) : mu(j) * std::expm1(d) / d;
      }
    const Matrix dx = u * inner * u.transpose();
    return span_.transpose() * dx.reshaped();
  }

 private:
  std::vector<Eigen::Index> free_;
  Matrix span_;  // (f * f, k): vec of each B_k
};

}  // namespace

MatrixMap as_map(Vector& v) { return MatrixMap(v.data(), v.size(), 1); }
MatrixMap as_map(Matrix& m) { return MatrixMap(m.data(), m.rows(), m.cols()); }

std::vector<Slot> trainable_slots(Params& p, const ParamProps& props) {
  return trainable_slots(p.initial, &p.dynamics, p.emissions, props);
}

std::vector<Slot> trainable_slots(InitialParams& initial, LinearGaussianParams* dynamics,
                                  LinearGaussianParams& emissions, const ParamProps& props, bool every_entry) {
  std::vector<Slot> slots;
  auto add = [&](const std::string& name, MatrixMap v, bool is_cov = false, CovStructure s = CovStructure::kFull,
                 const std::optional<Affine>& affine = std::nullopt) {
    slots.push_back({name, v, is_cov, s, affine ? &*affine : nullptr});
  };
  if (props.initial.mean)
    add("initial.mean", as_map(initial.mean), false, CovStructure::kFull, props.initial.mean_constraint);
  if (props.initial.cov)
    add("initial.cov", as_map(initial.cov), true, props.initial.cov_structure, props.initial.cov_constraint);
  auto add_series = [&](const std::string& name, MatrixSeries& s, bool is_cov = false,
                        CovStructure structure = CovStructure::kFull,
                        const std::optional<Affine>& affine = std::nullopt) {
    if (s.size() == 1) return add(name, s[0], is_cov, structure, affine);
    if (!every_entry)
      throw_invalid(name, "a time-invariant value for gradient-based fitting (or freeze it)",
                    std::to_string(s.size()) + " per-step entries");
    for (Eigen::Index k = 0; k < s.size(); ++k) add(name + "[" + std::to_string(k) + "]", s[k], is_cov, structure);
  };
  auto conditional = [&](const std::string& prefix, LinearGaussianParams& c, const ParamProps::Conditional& pr) {
    if (pr.weights) add_series(prefix + ".weights", c.weights, false, CovStructure::kFull, pr.weights_constraint);
    if (pr.bias) add_series(prefix + ".bias", c.bias, false, CovStructure::kFull, pr.bias_constraint);
    if (pr.input_weights && c.input_weights.cols() > 0)
      add_series(prefix + ".input_weights", c.input_weights, false, CovStructure::kFull, pr.input_weights_constraint);
    if (pr.cov) add_series(prefix + ".cov", c.cov, true, pr.cov_structure, pr.cov_constraint);
  };
  if (dynamics) conditional("dynamics", *dynamics, props.dynamics);
  conditional("emissions", emissions, props.emissions);
  return slots;
}

Eigen::LLT<Matrix> factor_pd(const std::string& name, const Eigen::Ref<const Matrix>& cov) {
  Eigen::LLT<Matrix> llt(cov);
  if (llt.info() != Eigen::Success)
    throw_invalid(name, "a positive definite matrix for gradient-based fitting", "a singular one");
  return llt;
}

// Full covariances: their Cholesky factor L, log of the diagonal first, then
// the strictly lower entries column by column. Diagonal: log standard
// deviations. Scalar: one log standard deviation. Constrained: beta, or for
// variances (holds_variances) log standard deviations.
Vector pack(const std::vector<Slot>& slots) {
  Vector x(unconstrained_size(slots));
  Eigen::Index at = 0;
  for (const auto& s : slots) {
    const Eigen::Index n = s.value.rows();
    if (s.affine) {
      const Eigen::Index k = s.affine->design.cols();
      x.segment(at, k) = s.is_cov && !holds_variances(s) ? ExpMap(s).coordinates(s) : free_values(*s.affine, s.value);
      if (holds_variances(s))
        for (Eigen::Index i = at; i < at + k; ++i) {
          if (!(x(i) > 0.0))
            throw_invalid(s.name, "positive variances for gradient-based fitting", std::to_string(x(i)));
          x(i) = 0.5 * std::log(x(i));
        }
      at += k;
    } else if (!s.is_cov) {
      for (Eigen::Index i = 0; i < s.value.rows(); ++i)
        for (Eigen::Index j = 0; j < s.value.cols(); ++j) x(at++) = s.value(i, j);
    } else if (s.structure == CovStructure::kFull) {
      const Matrix l = factor_pd(s.name, s.value).matrixL();
      for (Eigen::Index i = 0; i < n; ++i) x(at++) = std::log(l(i, i));
      for (Eigen::Index j = 0; j < n; ++j)
        for (Eigen::Index i = j + 1; i < n; ++i) x(at++) = l(i, j);
    } else {
      const Eigen::Index k = s.structure == CovStructure::kDiagonal ? n : 1;
      for (Eigen::Index i = 0; i < k; ++i) {
        if (!(s.value(i, i) > 0.0))
          throw_invalid(s.name, "positive variances for gradient-based fitting", std::to_string(s.value(i, i)));
        x(at++) = 0.5 * std::log(s.value(i, i));
      }
    }
  }
  return x;
}

std::vector<Eigen::Index> log_sd_coordinates(const std::vector<Slot>& slots) {
  std::vector<Eigen::Index> out;
  Eigen::Index at = 0;
  for (const auto& s : slots) {
    const Eigen::Index size = unconstrained_size(s);
    if (holds_variances(s) || (s.is_cov && !s.affine && s.structure != CovStructure::kFull))
      for (Eigen::Index i = at; i < at + size; ++i) out.push_back(i);
    at += size;
  }
  return out;
}

void unpack(const Vector& x, std::vector<Slot>& slots) {
  if (x.size() != unconstrained_size(slots))
    throw_invalid("x", std::to_string(unconstrained_size(slots)) + " unconstrained values", std::to_string(x.size()));
  Eigen::Index at = 0;
  for (auto& s : slots) {
    const Eigen::Index n = s.value.rows();
    if (s.affine) {
      const Eigen::Index k = s.affine->design.cols();
      Vector v = s.affine->fixed;
      if (s.is_cov && !holds_variances(s)) {
        ExpMap(s).write(x.segment(at, k), s);
        at += k;
        continue;
      }
      if (holds_variances(s)) {
        v.noalias() += s.affine->design * (2.0 * x.segment(at, k).array()).exp().matrix();
      } else if (k > 0) {
        v.noalias() += s.affine->design * x.segment(at, k);
      }
      s.value = v.reshaped(s.value.rows(), s.value.cols());
      at += k;
    } else if (!s.is_cov) {
      for (Eigen::Index i = 0; i < s.value.rows(); ++i)
        for (Eigen::Index j = 0; j < s.value.cols(); ++j) s.value(i, j) = x(at++);
    } else if (s.structure == CovStructure::kFull) {
      Matrix l = Matrix::Zero(n, n);
      for (Eigen::Index i = 0; i < n; ++i) l(i, i) = std::exp(x(at++));
      for (Eigen::Index j = 0; j < n; ++j)
        for (Eigen::Index i = j + 1; i < n; ++i) l(i, j) = x(at++);
      s.value = l * l.transpose();
    } else {
      s.value.setZero();
      if (s.structure == CovStructure::kDiagonal) {
        for (Eigen::Index i = 0; i < n; ++i) s.value(i, i) = std::exp(2.0 * x(at++));
      } else {
        s.value.diagonal().setConstant(std::exp(2.0 * x(at++)));
      }
    }
  }
}

double log_det_jacobian(const Vector& x, const std::vector<Slot>& slots, Vector& grad) {
  if (x.size() != unconstrained_size(slots))
    throw_invalid("x", std::to_string(unconstrained_size(slots)) + " unconstrained values", std::to_string(x.size()));
  grad = Vector::Zero(x.size());
  double out = 0.0;
  Eigen::Index at = 0;
  for (const auto& s : slots) {
    const Eigen::Index n = s.value.rows(), size = unconstrained_size(s);
    if (holds_variances(s)) {
      // beta_i = exp(2 x(at + i)).
      for (Eigen::Index i = at; i < at + size; ++i) {
        out += std::log(2.0) + 2.0 * x(i);
        grad(i) = 2.0;
      }
    } else if (s.is_cov && s.affine) {
      throw_invalid(s.name + ".constraint",
                    "free values that are variances (on the diagonal only) for the change of variables of "
                    "posterior sampling",
                    "a covariance constraint with covariances or shared blocks");
    } else if (s.is_cov) {
      // Full: x(at + i) = log L_ii with weight n - i + 1; diagonal and scalar: log sd with weight 2.
      const Eigen::Index logs = s.structure == CovStructure::kFull ? n : size;
      for (Eigen::Index i = 0; i < logs; ++i) {
        const double w = s.structure == CovStructure::kFull ? static_cast<double>(n - i + 1) : 2.0;
        out += std::log(2.0) + w * x(at + i);
        grad(at + i) = w;
      }
    }
    at += size;
  }
  return out;
}

Vector chain(const std::vector<Slot>& values, const std::vector<Slot>& gradients) {
  Vector out(unconstrained_size(values));
  Eigen::Index at = 0;
  for (size_t k = 0; k < values.size(); ++k) {
    const auto& s = values[k];
    const auto& gs = gradients[k].value;
    const Eigen::Index n = s.value.rows();
    if (s.affine) {  // d/dbeta = D^T vec(d/dM); for variances, d/dx = 2 beta d/dbeta
      const Eigen::Index size = s.affine->design.cols();
      if (s.is_cov && !holds_variances(s)) {
        out.segment(at, size) = ExpMap(s).gradient(s, gs);
        at += size;
        continue;
      }
      out.segment(at, size).noalias() = s.affine->design.transpose() * vec(gs);
      if (holds_variances(s)) out.segment(at, size).array() *= 2.0 * free_values(*s.affine, s.value).array();
      at += size;
    } else if (!s.is_cov) {
      for (Eigen::Index i = 0; i < gs.rows(); ++i)
        for (Eigen::Index j = 0; j < gs.cols(); ++j) out(at++) = gs(i, j);
    } else if (s.structure == CovStructure::kFull) {
      const Matrix l = factor_pd(s.name, s.value).matrixL();
      const Matrix gl = 2.0 * gs * l;  // d/dL of f(L L^T), for symmetric gs
      for (Eigen::Index i = 0; i < n; ++i) out(at++) = gl(i, i) * l(i, i);
      for (Eigen::Index j = 0; j < n; ++j)
        for (Eigen::Index i = j + 1; i < n; ++i) out(at++) = gl(i, j);
    } else if (s.structure == CovStructure::kDiagonal) {
      for (Eigen::Index i = 0; i < n; ++i) out(at++) = 2.0 * gs(i, i) * s.value(i, i);
    } else {
      out(at++) = 2.0 * gs.trace() * s.value(0, 0);
    }
  }
  return out;
}

}  // namespace lgssm::internal
