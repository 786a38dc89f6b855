// The M-step, the unconstrained parameterization and the Fisher-identity
// gradient (learn.hpp), and the check of parameter properties (props.hpp).
#include "lgssm/learn.hpp"

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <tuple>

#include "checks.hpp"
#include "lgssm/error.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"
#include "unconstrained.hpp"

namespace lgssm {

using internal::check_structure;
using internal::factor_pd;
using internal::stacked;
using internal::throw_invalid;
using internal::vec;

Matrix project(const Matrix& cov, CovStructure s) {
  if (s == CovStructure::kFull) return 0.5 * (cov + cov.transpose());
  if (s == CovStructure::kDiagonal) return Matrix(cov.diagonal().asDiagonal());
  return Matrix::Identity(cov.rows(), cov.cols()) * cov.diagonal().mean();
}

Matrix internal::solve_free(const RegressionStats& s, Matrix w, const std::vector<Eigen::Index>& free) {
  if (free.empty()) return w;
  const Matrix g = s.moment(w);
  w(Eigen::all, free) += Eigen::LDLT<Matrix>(s.xx(free, free)).solve(g(Eigen::all, free).transpose()).transpose();
  return w;
}

std::vector<Eigen::Index> internal::free_columns(const ParamProps::Conditional& props, Eigen::Index n, Eigen::Index m) {
  std::vector<Eigen::Index> free;
  auto add = [&](bool trainable, Eigen::Index from, Eigen::Index count) {
    for (Eigen::Index j = from; trainable && j < from + count; ++j) free.push_back(j);
  };
  add(props.weights, 0, n);
  add(props.input_weights, n, m);
  add(props.bias, n + m, 1);
  return free;
}

RegressionStats internal::with_prior(const RegressionStats& s, const MniwPrior* p) {
  if (p == nullptr) return s;
  RegressionStats a = s;
  a.cov_score.resize(0, 0);  // the data's exact score alone; the prior's terms go through rr and count
  a.cov_score_at.resize(0, 0);
  const Matrix diff = p->loc - s.w0;
  const Matrix dk = diff * p->col_precision;
  a.xx += p->col_precision;
  a.rx += dk;
  a.rr += dk * diff.transpose() + p->scale;
  a.count += p->df + static_cast<double>(p->loc.rows() + p->loc.cols()) + 1.0;
  return a;
}

RegressionStats internal::initial_with_prior(const SufficientStats& s, const ConjugatePrior* prior) {
  if (prior == nullptr) return s.initial;
  const NiwPrior& p = prior->initial;
  const MniwPrior as_mniw{p.loc, Matrix::Constant(1, 1, p.mean_concentration), p.df, p.scale};
  return with_prior(s.initial, &as_mniw);
}

bool internal::any_trainable(const ParamProps::Conditional& c) {
  return c.weights || c.bias || c.input_weights || c.cov;
}

const RegressionStats& internal::pooled_dynamics(const SufficientStats& s) {
  if (s.dynamics.size() != 1)
    throw_invalid("stats.dynamics", "one pooled group (discrete time)", std::to_string(s.dynamics.size()) + " groups");
  return s.dynamics[0];
}

namespace {

// The nonzero entries of one column of a design, as (row of M, column of M, value).
struct DesignEntry {
  Eigen::Index row, col;
  double value;
};

std::vector<std::vector<DesignEntry>> design_entries(const Matrix& design, Eigen::Index rows) {
  std::vector<std::vector<DesignEntry>> out(static_cast<size_t>(design.cols()));
  for (Eigen::Index j = 0; j < design.cols(); ++j)
    for (Eigen::Index i = 0; i < design.rows(); ++i)
      if (design(i, j) != 0.0) out[static_cast<size_t>(j)].push_back({i % rows, i / rows, design(i, j)});
  return out;
}

Matrix constrained(const Affine& a, const Vector& beta, Eigen::Index rows, Eigen::Index cols) {
  Vector v = a.fixed;
  if (beta.size() > 0) v.noalias() += a.design * beta;
  return v.reshaped(rows, cols);
}

// The rows of positive variance in `cov`; throws if a free entry lies in another row.
std::vector<Eigen::Index> noisy_rows(const std::vector<std::vector<DesignEntry>>& entries, const Matrix& cov,
                                     const std::string& name) {
  std::vector<Eigen::Index> noisy;
  for (Eigen::Index i = 0; i < cov.rows(); ++i)
    if (cov(i, i) > 0.0) noisy.push_back(i);
  for (const auto& column : entries)
    for (const auto& e : column)
      if (!(cov(e.row, e.row) > 0.0))
        throw_invalid(name,
                      "free entries only in rows with noise (a constrained fit of a row with zero variance is not "
                      "defined; fix its entries)",
                      "a free entry in row " + std::to_string(e.row) + ", whose variance is " +
                          std::to_string(cov(e.row, e.row)));
  return noisy;
}

}  // namespace

void internal::check_noisy_rows(const Affine& a, const Matrix& cov, const std::string& name) {
  noisy_rows(design_entries(a.design, cov.rows()), cov, name);
}

Matrix internal::solve_constrained(const RegressionStats& s, const Matrix& w, const Affine& a, const Matrix& cov,
                                   const std::string& name) {
  const Eigen::Index p = w.rows(), c = w.cols(), k = a.design.cols();
  const Matrix wc = constrained(a, free_values(a, w), p, c);
  if (k == 0) return wc;
  const auto entries = design_entries(a.design, p);
  const std::vector<Eigen::Index> noisy = noisy_rows(entries, cov, name);
  const Eigen::LLT<Matrix> llt(cov(noisy, noisy));
  if (llt.info() != Eigen::Success)
    throw_invalid(name, "a covariance whose block over the rows with noise is positive definite (constrained M-step)",
                  "a singular block");
  Matrix precision = Matrix::Zero(p, p);
  const auto k_noisy = static_cast<Eigen::Index>(noisy.size());
  precision(noisy, noisy) = Matrix(llt.solve(Matrix::Identity(k_noisy, k_noisy)));
  // normal = D^T (xx (x) precision) D and rhs = D^T vec(precision moment(W_c)), over the design's nonzeros.
  Matrix normal(k, k);
  Matrix y(p, c);
  for (Eigen::Index j = 0; j < k; ++j) {
    y.setZero();
    for (const auto& e : entries[static_cast<size_t>(j)])
      y.noalias() += e.value * precision.col(e.row) * s.xx.row(e.col);
    for (Eigen::Index i = 0; i < k; ++i) {
      double sum = 0.0;
      for (const auto& e : entries[static_cast<size_t>(i)]) sum += e.value * y(e.row, e.col);
      normal(i, j) = sum;
    }
  }
  const Matrix pg = precision * s.moment(wc);
  Vector rhs(k);
  for (Eigen::Index i = 0; i < k; ++i) {
    double sum = 0.0;
    for (const auto& e : entries[static_cast<size_t>(i)]) sum += e.value * pg(e.row, e.col);
    rhs(i) = sum;
  }
  const Vector step = Eigen::LDLT<Matrix>(normal).solve(rhs);
  return wc + (a.design * step).reshaped(p, c);
}

Affine internal::stacked_constraint(const ParamProps::Conditional& props, const Matrix& w, Eigen::Index n,
                                    Eigen::Index m) {
  const Eigen::Index p = w.rows();
  struct Piece {
    bool trainable;
    const std::optional<Affine>& constraint;
    Eigen::Index from, count;
  };
  const Piece pieces[] = {{props.weights, props.weights_constraint, 0, n},
                          {props.input_weights, props.input_weights_constraint, n, m},
                          {props.bias, props.bias_constraint, n + m, 1}};
  Eigen::Index free = 0;
  for (const auto& piece : pieces)
    if (piece.trainable) free += piece.constraint ? piece.constraint->design.cols() : p * piece.count;
  Affine out{Vector::Zero(w.size()), Matrix::Zero(w.size(), free)};
  Eigen::Index col = 0;
  for (const auto& piece : pieces) {
    const Eigen::Index at = p * piece.from, size = p * piece.count;
    if (!piece.trainable) {
      out.fixed.segment(at, size) = vec(w.middleCols(piece.from, piece.count));
    } else if (piece.constraint) {
      const Eigen::Index k = piece.constraint->design.cols();
      out.fixed.segment(at, size) = piece.constraint->fixed;
      out.design.block(at, col, size, k) = piece.constraint->design;
      col += k;
    } else {
      out.design.block(at, col, size, size).setIdentity();
      col += size;
    }
  }
  return out;
}

Vector free_values(const Affine& a, const Matrix& m) {
  if (a.design.cols() == 0) return Vector();
  return a.design.colPivHouseholderQr().solve(vec(m) - a.fixed);
}

bool internal::has_constraints(const ParamProps::Conditional& c) {
  return c.weights_constraint || c.bias_constraint || c.input_weights_constraint;
}

bool has_constraints(const ParamProps& props) {
  return props.initial.mean_constraint || props.initial.cov_constraint || props.dynamics.cov_constraint ||
         props.emissions.cov_constraint || internal::has_constraints(props.dynamics) ||
         internal::has_constraints(props.emissions);
}

Matrix internal::project_cov(const Affine& a, const Matrix& cov) {
  return constrained(a, free_values(a, cov), cov.rows(), cov.cols());
}

Params project_constraints(const Params& params, const ParamProps& props) {
  Params out = params;
  auto project = [](const std::optional<Affine>& a, auto&& value) {
    if (!a) return;
    const Matrix m = value;
    value = constrained(*a, free_values(*a, m), m.rows(), m.cols());
  };
  project(props.initial.mean_constraint, out.initial.mean);
  project(props.initial.cov_constraint, out.initial.cov);
  for (auto [c, pc] : {std::pair{&out.dynamics, &props.dynamics}, std::pair{&out.emissions, &props.emissions}}) {
    project(pc->weights_constraint, c->weights[0]);
    project(pc->bias_constraint, c->bias[0]);
    project(pc->input_weights_constraint, c->input_weights[0]);
    project(pc->cov_constraint, c->cov[0]);
  }
  return out;
}

namespace {

using internal::any_trainable;
using internal::initial_with_prior;
using internal::pooled_dynamics;
using internal::solve_free;
using internal::with_prior;

// The M-step of a covariance given the mean scatter: its projection onto the
// structure, or onto the constraint (the MLE there; see Affine in props.hpp).
Matrix covariance_update(const Matrix& scatter, CovStructure structure, const std::optional<Affine>& constraint) {
  return constraint ? internal::project_cov(*constraint, scatter) : project(scatter, structure);
}

// Conditional M-step of one regression entry (see m_step in learn.hpp).
void regression_m_step(const RegressionStats& s, LinearGaussianParams& c, Eigen::Index entry,
                       const ParamProps::Conditional& props, const std::string& prefix) {
  if (s.count <= 0.0) return;
  const Eigen::Index n = c.weights.cols(), m = c.input_weights.cols();
  Matrix w = stacked(c, entry);
  const std::vector<Eigen::Index> free = internal::free_columns(props, n, m);
  if (!free.empty()) {
    w = internal::has_constraints(props)
            ? internal::solve_constrained(s, w, internal::stacked_constraint(props, w, n, m), c.cov[entry], prefix)
            : solve_free(s, w, free);
    c.weights[entry] = w.leftCols(n);
    c.input_weights[entry] = w.middleCols(n, m);
    c.bias[entry] = w.col(n + m);
  }
  if (props.cov) c.cov[entry] = covariance_update(s.scatter(w) / s.count, props.cov_structure, props.cov_constraint);
}

// The components of a covariance without noise by construction: of a frozen
// one, those of zero variance; of a constrained one, its fixed components of
// zero fixed variance; of a free one none (a variance that underflows to zero
// is a point outside the domain, not a deterministic component).
std::vector<Eigen::Index> deterministic_components(const Matrix& cov, bool trainable,
                                                   const std::optional<Affine>& constraint) {
  const Eigen::Index n = cov.rows();
  std::vector<Eigen::Index> out, free;
  if (trainable && constraint) free = internal::free_components(*constraint, n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const bool zero = trainable ? constraint && constraint->fixed(i + i * n) == 0.0 &&
                                      std::find(free.begin(), free.end(), i) == free.end()
                                : cov(i, i) <= 0.0;
    if (zero) out.push_back(i);
  }
  return out;
}

// The indices 0 .. n-1 not in `some`, ascending.
std::vector<Eigen::Index> complement(const std::vector<Eigen::Index>& some, Eigen::Index n) {
  std::vector<Eigen::Index> out;
  for (Eigen::Index i = 0; i < n; ++i)
    if (std::find(some.begin(), some.end(), i) == some.end()) out.push_back(i);
  return out;
}

// The gradient of sum E[log N(out | W x, cov)] w.r.t. W and cov (moment and
// scatter from `s`; at the E-step's own parameters, the gradient of log p(y)),
// over the components other than `deterministic` (zero
// rows and columns of cov); the others' rows of both gradients are zero: the
// complete-data density of a deterministic component does not depend on the
// free values (check_gradient_rows). cov must be positive definite over the rest.
void gaussian_gradient(const RegressionStats& s, const Matrix& w, const Matrix& cov, const std::string& name,
                       const std::vector<Eigen::Index>& deterministic, Matrix& grad_w, Matrix& grad_cov) {
  const std::vector<Eigen::Index> noisy = complement(deterministic, cov.rows());
  const auto llt = factor_pd(name, cov(noisy, noisy));
  grad_w = Matrix::Zero(w.rows(), w.cols());
  grad_w(noisy, Eigen::all) = Matrix(llt.solve(Matrix(s.moment(w)(noisy, Eigen::all))));
  grad_cov = Matrix::Zero(cov.rows(), cov.cols());
  if (s.cov_score.size() > 0 && w == s.w0 && cov == s.cov_score_at) {
    // At the E-step's parameters: the exact score (RegressionStats::cov_score), without a difference.
    grad_cov(noisy, noisy) = 0.5 * s.cov_score(noisy, noisy);
  } else {
    const Matrix inner = s.scatter(w)(noisy, noisy) - s.count * cov(noisy, noisy);
    const Matrix half = llt.solve(inner);
    grad_cov(noisy, noisy) = Matrix(0.5 * llt.solve(half.transpose()));
  }
  internal::symmetrize(grad_cov);
}

// The components `props` makes deterministic in a conditional (none without props).
std::vector<Eigen::Index> deterministic_components(const LinearGaussianParams& c,
                                                   const ParamProps::Conditional* props) {
  if (props == nullptr) return {};
  return deterministic_components(c.cov[0], props->cov, props->cov_constraint);
}

void regression_gradient(const RegressionStats& s, const LinearGaussianParams& c, const std::string& prefix,
                         const ParamProps::Conditional* props, LinearGaussianParams& grad) {
  const Eigen::Index n = c.weights.cols(), m = c.input_weights.cols();
  Matrix grad_w, grad_cov;
  gaussian_gradient(s, stacked(c, 0), c.cov[0], prefix + ".cov", deterministic_components(c, props), grad_w, grad_cov);
  grad.weights[0] = grad_w.leftCols(n);
  grad.input_weights[0] = grad_w.middleCols(n, m);
  grad.bias[0] = grad_w.col(n + m);
  grad.cov[0] = grad_cov;
}

}  // namespace

namespace {

// Throws naming the first parameter of `c` that `pc` makes trainable and that
// has a per-step series (gradient fits and the pooled M-step need one value).
void refuse_trainable_series(const std::string& prefix, const LinearGaussianParams& c,
                             const ParamProps::Conditional& pc, const std::string& expected) {
  const std::pair<const char*, bool> series[] = {{".weights", pc.weights && c.weights.size() > 1},
                                                 {".bias", pc.bias && c.bias.size() > 1},
                                                 {".input_weights", pc.input_weights && c.input_weights.size() > 1},
                                                 {".cov", pc.cov && c.cov.size() > 1}};
  for (const auto& [name, bad] : series)
    if (bad) throw_invalid(prefix + name, expected, "a per-step series");
}

void check_constraint(const std::string& name, const std::optional<Affine>& a, bool trainable, Eigen::Index entries,
                      Eigen::Index size) {
  if (!a) return;
  const std::string where = "props." + name + ".constraint";
  if (!trainable) throw_invalid(where, "no constraint on a frozen parameter (make it trainable)", "a constraint");
  if (entries != 1)
    throw_invalid(name, "a time-invariant value (it has a constraint)", std::to_string(entries) + " per-step entries");
  if (a->fixed.size() != size)
    throw_invalid(where + ".fixed", std::to_string(size) + " values (vec of the parameter)",
                  std::to_string(a->fixed.size()));
  if (a->design.rows() != size)
    throw_invalid(where + ".design", std::to_string(size) + " rows (vec of the parameter)",
                  std::to_string(a->design.rows()));
  if (!a->fixed.allFinite() || !a->design.allFinite()) throw_invalid(where, "finite values", "a NaN or an infinity");
  if (a->design.cols() == 0) return;
  const Eigen::Index rank = a->design.colPivHouseholderQr().rank();
  if (rank < a->design.cols())
    throw_invalid(where + ".design", "full column rank (each free value identified)",
                  "rank " + std::to_string(rank) + " with " + std::to_string(a->design.cols()) + " columns");
}

// A covariance constraint (n x n) of the form Affine describes in props.hpp:
// symmetric, block diagonal between free and fixed components, a positive
// semidefinite fixed block, and a free span closed under X Y + Y X.
void check_cov_constraint(const std::string& name, const std::optional<Affine>& a, bool trainable, Eigen::Index entries,
                          Eigen::Index n, CovStructure structure) {
  check_constraint(name, a, trainable, entries, n * n);
  if (!a) return;
  const std::string where = "props." + name + ".constraint";
  if (structure != CovStructure::kFull)
    throw_invalid("props." + name + ".structure", "'full' (a constraint replaces the structure)",
                  structure == CovStructure::kDiagonal ? "'diagonal'" : "'scalar'");
  const Matrix fixed = a->fixed.reshaped(n, n);
  auto at = [n](Eigen::Index i, Eigen::Index j) { return i + j * n; };  // the vec index of (i, j)
  for (Eigen::Index i = 0; i < n; ++i)
    for (Eigen::Index j = 0; j < n; ++j)
      if (fixed(i, j) != fixed(j, i) || a->design.row(at(i, j)) != a->design.row(at(j, i)))
        throw_invalid(where, "a symmetric constraint (the same fixed value and design row at (i, j) and (j, i))",
                      "a difference at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
  const std::vector<Eigen::Index> free = internal::free_components(*a, n);
  std::vector<Eigen::Index> held;
  for (Eigen::Index i = 0; i < n; ++i)
    if (std::find(free.begin(), free.end(), i) == free.end()) held.push_back(i);
  for (Eigen::Index i : free)
    for (Eigen::Index j = 0; j < n; ++j)
      if (fixed(i, j) != 0.0)
        throw_invalid(where + ".fixed",
                      "zero fixed entries in the rows of components with a free value (a block-diagonal "
                      "covariance: fixed block and free block)",
                      std::to_string(fixed(i, j)) + " at (" + std::to_string(i) + ", " + std::to_string(j) + ")");
  if (!held.empty())
    internal::check_covariance(where + ".fixed (its block of fixed components)", fixed(held, held),
                               internal::Definiteness::kSemidefinite);
  // The Jordan-algebra condition, on the free block: each B_k B_l + B_l B_k in the span.
  const Eigen::Index k = a->design.cols(), f = static_cast<Eigen::Index>(free.size());
  std::vector<Matrix> basis;
  Matrix span(f * f, k);
  for (Eigen::Index c = 0; c < k; ++c) {
    basis.push_back(Matrix(a->design.col(c).reshaped(n, n))(free, free));
    span.col(c) = basis.back().reshaped();
  }
  const auto qr = span.colPivHouseholderQr();
  for (Eigen::Index c = 0; c < k; ++c)
    for (Eigen::Index d = c; d < k; ++d) {
      const Matrix j = basis[c] * basis[d] + basis[d] * basis[c];
      const Vector jv = j.reshaped();
      const double residual = (jv - span * qr.solve(jv)).norm();
      if (residual > 1e-10 * basis[c].norm() * basis[d].norm())
        throw_invalid(where + ".design",
                      "free values whose span is closed under X Y + Y X (diagonal, block-diagonal, equal-variance "
                      "or equal-variance-and-covariance blocks), for which the M-step is closed form",
                      "free values " + std::to_string(c) + " and " + std::to_string(d) + " whose product leaves it");
    }
}

void check_constraints(const std::string& prefix, const LinearGaussianParams& c, const ParamProps::Conditional& pc) {
  check_constraint(prefix + ".weights", pc.weights_constraint, pc.weights, c.weights.size(),
                   c.weights.rows() * c.weights.cols());
  check_constraint(prefix + ".bias", pc.bias_constraint, pc.bias, c.bias.size(), c.bias.rows() * c.bias.cols());
  check_constraint(prefix + ".input_weights", pc.input_weights_constraint, pc.input_weights, c.input_weights.size(),
                   c.input_weights.rows() * c.input_weights.cols());
  check_cov_constraint(prefix + ".cov", pc.cov_constraint, pc.cov, c.cov.size(), c.cov.rows(), pc.cov_structure);
}

}  // namespace

void validate(const Params& params, const ParamProps& props) {
  validate(params);
  if (params.initial.is_diffuse() && (props.initial.mean || props.initial.cov || props.initial.mean_constraint))
    throw_invalid(props.initial.cov ? "initial.cov" : "initial.mean",
                  "frozen with a diffuse initialization (the diffuse likelihood does not depend on the initial "
                  "mean and covariance of the diffuse directions; freeze initial.mean and initial.cov)",
                  "trainable");
  check_constraint("initial.mean", props.initial.mean_constraint, props.initial.mean, 1, params.state_dim());
  check_cov_constraint("initial.cov", props.initial.cov_constraint, props.initial.cov, 1, params.state_dim(),
                       props.initial.cov_structure);
  check_constraints("dynamics", params.dynamics, props.dynamics);
  check_constraints("emissions", params.emissions, props.emissions);
  // The constrained M-step's condition on the starting covariances (solve_constrained).
  if (props.initial.mean_constraint)
    internal::check_noisy_rows(*props.initial.mean_constraint, params.initial.cov, "initial.mean");
  for (auto [c, pc, name] : {std::tuple{&params.dynamics, &props.dynamics, "dynamics"},
                             std::tuple{&params.emissions, &props.emissions, "emissions"}})
    if (internal::has_constraints(*pc)) {
      const Matrix w = stacked(*c, 0);
      internal::check_noisy_rows(internal::stacked_constraint(*pc, w, c->weights.cols(), c->input_weights.cols()),
                                 c->cov[0], std::string(name) + ".weights, input_weights and bias");
    }
  check_structure("initial.cov", params.initial.cov, props.initial.cov_structure);
  for (Eigen::Index i = 0; i < params.dynamics.cov.size(); ++i)
    check_structure("dynamics.cov", params.dynamics.cov[i], props.dynamics.cov_structure);
  for (Eigen::Index i = 0; i < params.emissions.cov.size(); ++i)
    check_structure("emissions.cov", params.emissions.cov[i], props.emissions.cov_structure);
  const std::string invariant = "a time-invariant value when trainable (or freeze it)";
  refuse_trainable_series("dynamics", params.dynamics, props.dynamics, invariant);
  // Emissions: all per step, with one entry count (each entry fitted from its
  // step's statistics), or the per-step ones frozen (the trainable ones
  // time-invariant, fitted from the pooled statistics: internal::per_step_emissions).
  const auto& e = params.emissions;
  if (!internal::per_step_emissions(e)) {
    refuse_trainable_series("emissions", e, props.emissions,
                            invariant + ", unless every emission parameter has one entry per step");
  } else if (e.bias.size() != e.weights.size() || e.input_weights.size() != e.weights.size() ||
             e.cov.size() != e.weights.size()) {
    throw_invalid("emissions", "weights, bias, input_weights and cov with one entry count when all are per step",
                  "entries " + std::to_string(e.weights.size()) + ", " + std::to_string(e.bias.size()) + ", " +
                      std::to_string(e.input_weights.size()) + ", " + std::to_string(e.cov.size()));
  }
}

bool internal::per_step_emissions(const LinearGaussianParams& e) {
  return e.weights.size() > 1 && e.bias.size() > 1 && e.input_weights.size() > 1 && e.cov.size() > 1;
}

Params m_step(const Params& params, const ParamProps& props, const SufficientStats& stats,
              const ConjugatePrior* prior) {
  if (prior) validate(params, *prior);
  Params out = params;
  const RegressionStats init = initial_with_prior(stats, prior);
  if (init.count > 0) {
    const Matrix m = props.initial.mean_constraint
                         ? internal::solve_constrained(init, params.initial.mean, *props.initial.mean_constraint,
                                                       params.initial.cov, "initial.mean")
                         : solve_free(init, params.initial.mean,
                                      props.initial.mean ? std::vector<Eigen::Index>{0} : std::vector<Eigen::Index>{});
    out.initial.mean = m;
    if (props.initial.cov)
      out.initial.cov =
          covariance_update(init.scatter(m) / init.count, props.initial.cov_structure, props.initial.cov_constraint);
  }
  if (any_trainable(props.dynamics))
    regression_m_step(with_prior(pooled_dynamics(stats), prior ? &prior->dynamics : nullptr), out.dynamics, 0,
                      props.dynamics, "dynamics.weights, input_weights and bias");
  if (stats.emissions.size() > 1 && !internal::per_step_emissions(params.emissions))
    throw_invalid("stats.emissions", "one pooled set (the emission parameters are not all per step)",
                  std::to_string(stats.emissions.size()) + " per-step sets");
  const Eigen::Index entries = std::min<Eigen::Index>(out.emissions.weights.size(), stats.emissions.size());
  for (Eigen::Index t = 0; t < entries; ++t)
    regression_m_step(with_prior(stats.emissions[t], prior ? &prior->emissions : nullptr), out.emissions, t,
                      props.emissions, "emissions.weights, input_weights and bias");
  return out;
}

Vector to_unconstrained(const Params& params, const ParamProps& props) {
  Params p = params;
  return internal::pack(internal::trainable_slots(p, props));
}

Params from_unconstrained(const Vector& x, const Params& base, const ParamProps& props) {
  Params p = base;
  auto slots = internal::trainable_slots(p, props);
  internal::unpack(x, slots);
  return p;
}

namespace {

// The natural-parameter gradient (log_prob_natural_gradient in learn.hpp) of
// the groups flagged; the others keep params' values (unused by the caller).
// Given props, over the components it does not make deterministic
// (gaussian_gradient); else every covariance must be positive definite.
Params natural_gradient(const Params& params, const SufficientStats& stats, const ConjugatePrior* prior, bool initial,
                        bool dynamics, bool emissions, const ParamProps* props) {
  if (prior) validate(params, *prior);
  if (emissions && stats.emissions.size() != 1)
    throw_invalid("stats", "emission statistics pooled over time (gradients need time-invariant parameters)",
                  std::to_string(stats.emissions.size()) + " per-step entries");
  Params g = params;
  if (initial) {
    Matrix grad_mean;
    gaussian_gradient(
        initial_with_prior(stats, prior), params.initial.mean, params.initial.cov, "initial.cov",
        props ? deterministic_components(params.initial.cov, props->initial.cov, props->initial.cov_constraint)
              : std::vector<Eigen::Index>{},
        grad_mean, g.initial.cov);
    g.initial.mean = grad_mean.col(0);
  }
  if (dynamics)
    regression_gradient(with_prior(pooled_dynamics(stats), prior ? &prior->dynamics : nullptr), params.dynamics,
                        "dynamics", props ? &props->dynamics : nullptr, g.dynamics);
  if (emissions)
    regression_gradient(with_prior(stats.emissions[0], prior ? &prior->emissions : nullptr), params.emissions,
                        "emissions", props ? &props->emissions : nullptr, g.emissions);
  return g;
}

void check_time_invariant(const std::string& prefix, const LinearGaussianParams& c) {
  const std::pair<const char*, const MatrixSeries*> members[] = {
      {".weights", &c.weights}, {".bias", &c.bias}, {".input_weights", &c.input_weights}, {".cov", &c.cov}};
  for (const auto& [name, series] : members)
    if (series->size() != 1)
      throw_invalid(prefix + name, "a time-invariant value (gradients over all parameters)",
                    std::to_string(series->size()) + " per-step entries");
}

}  // namespace

// Throws unless every free value of a trainable mean, weight, bias or input
// weight lies in a component that `props` does not make deterministic: the
// gradient over those is not the complete-data one (a deterministic state's
// row, an exactly observed emission's).
void internal::check_gradient_rows(const Params& params, const ParamProps& props) {
  // A differentiated group's covariance: positive definite over its components
  // with noise; its free means or weights: none in a deterministic row.
  auto check = [](const Matrix& cov, const std::vector<Eigen::Index>& deterministic, const std::string& name,
                  const Affine* free) {
    const std::vector<Eigen::Index> noisy = complement(deterministic, cov.rows());
    factor_pd(name + ".cov", cov(noisy, noisy));
    if (free == nullptr || deterministic.empty()) return;
    for (const auto& column : design_entries(free->design, cov.rows()))
      for (const auto& e : column)
        if (std::find(deterministic.begin(), deterministic.end(), e.row) != deterministic.end())
          throw_invalid(name == "initial" ? "initial.mean" : name + ".weights, input_weights and bias",
                        "free entries only in rows with noise for gradient-based fitting (the row of a component "
                        "without noise is not identified by the complete-data likelihood; fix its entries)",
                        "a free entry in row " + std::to_string(e.row) + ", whose variance is fixed at 0");
  };
  const Eigen::Index n = params.state_dim();
  if (props.initial.mean || props.initial.cov) {
    const Affine all{Vector::Zero(n), Matrix::Identity(n, n)};
    const Affine* mean =
        props.initial.mean ? (props.initial.mean_constraint ? &*props.initial.mean_constraint : &all) : nullptr;
    check(params.initial.cov,
          deterministic_components(params.initial.cov, props.initial.cov, props.initial.cov_constraint), "initial",
          mean);
  }
  for (auto [c, pc, name] : {std::tuple{&params.dynamics, &props.dynamics, "dynamics"},
                             std::tuple{&params.emissions, &props.emissions, "emissions"}}) {
    if (!any_trainable(*pc)) continue;
    const auto deterministic = deterministic_components(*c, pc);
    std::optional<Affine> free;
    if (!deterministic.empty() && (pc->weights || pc->bias || pc->input_weights))
      free = internal::stacked_constraint(*pc, stacked(*c, 0), c->weights.cols(), c->input_weights.cols());
    check(c->cov[0], deterministic, name, free ? &*free : nullptr);
  }
}

Params log_prob_natural_gradient(const Params& params, const SufficientStats& stats, const ConjugatePrior* prior) {
  check_time_invariant("dynamics", params.dynamics);
  check_time_invariant("emissions", params.emissions);
  return natural_gradient(params, stats, prior, true, true, true, nullptr);
}

Params log_prior_gradient(const Params& params, const ConjugatePrior& prior) {
  check_time_invariant("dynamics", params.dynamics);
  check_time_invariant("emissions", params.emissions);
  SufficientStats none;  // no data: the prior's pseudo-observations alone
  none.initial = RegressionStats(params.initial.mean);
  none.dynamics.emplace_back(stacked(params.dynamics, 0));
  none.emissions.emplace_back(stacked(params.emissions, 0));
  return natural_gradient(params, none, &prior, true, true, true, nullptr);
}

Vector log_prob_gradient(const Params& params, const ParamProps& props, const SufficientStats& stats,
                         const ConjugatePrior* prior) {
  // Only the groups with a trainable member are differentiated (a frozen
  // covariance need not be definite), over their components with noise.
  internal::check_gradient_rows(params, props);
  const Params g = natural_gradient(params, stats, prior, props.initial.mean || props.initial.cov,
                                    any_trainable(props.dynamics), any_trainable(props.emissions), &props);
  // Chain rule to the unconstrained coordinates.
  Params p = params, gc = g;
  return internal::chain(internal::trainable_slots(p, props), internal::trainable_slots(gc, props));
}

DataGradient log_prob_data_gradient(const Params& params, const Sequence& seq) {
  validate(params);
  validate(params, seq);
  const Eigen::Index steps = seq.num_timesteps(), p = params.emission_dim(), m = params.input_dim();
  const SmootherResult sm = internal::smoother_unchecked(params, seq);
  DataGradient out{RowMatrix::Zero(steps, p), RowMatrix::Zero(steps, m)};
  const auto& e = params.emissions;
  const auto& d = params.dynamics;
  // The factors of R_oo and Q, refactored only when the observed pattern or
  // the entry changes (once per call for time-invariant parameters and no
  // missing data).
  Eigen::LLT<Matrix> llt_r, llt_q;
  std::vector<Eigen::Index> observed, last_observed;
  Eigen::Index last_r = -1, last_q = -1;
  Vector resid(p), solved, dyn_resid(params.state_dim());
  for (Eigen::Index t = 0; t < steps; ++t) {
    const auto y = seq.emissions.row(t).transpose();
    const auto mean = sm.smoothed_means.row(t).transpose();
    const Eigen::Map<const Vector> u(m > 0 ? seq.inputs.row(t).data() : nullptr, m);
    resid.noalias() = y - e.bias.at(t);
    resid.noalias() -= e.weights.at(t) * mean;
    resid.noalias() -= e.input_weights.at(t) * u;
    observed.clear();
    for (Eigen::Index i = 0; i < p; ++i)
      if (!std::isnan(y(i))) observed.push_back(i);
    const Eigen::Index r_entry = e.cov.size() == 1 ? 0 : t;
    if (!observed.empty()) {
      if (observed != last_observed || r_entry != last_r) {
        llt_r = factor_pd("emissions.cov (its observed block at step " + std::to_string(t) + ")",
                          Matrix(e.cov.at(t)(observed, observed)));
        last_observed = observed;
        last_r = r_entry;
      }
      solved = llt_r.solve(resid(observed));
      out.emissions.row(t)(observed) = -solved.transpose();
      if (m > 0) out.inputs.row(t).noalias() += solved.transpose() * e.input_weights.at(t)(observed, Eigen::all);
    }
    if (m > 0 && t >= 1) {
      const Eigen::Index q_entry = d.cov.size() == 1 ? 0 : t - 1;
      if (q_entry != last_q) {
        llt_q = factor_pd("dynamics.cov", d.cov.at(t - 1));
        last_q = q_entry;
      }
      dyn_resid.noalias() = mean - d.bias.at(t - 1);
      dyn_resid.noalias() -= d.weights.at(t - 1) * sm.smoothed_means.row(t - 1).transpose();
      dyn_resid.noalias() -= d.input_weights.at(t - 1) * u;
      llt_q.solveInPlace(dyn_resid);
      out.inputs.row(t).noalias() += dyn_resid.transpose() * d.input_weights.at(t - 1);
    }
  }
  return out;
}

double log_det_jacobian(const Vector& x, const Params& base, const ParamProps& props, Vector& grad) {
  Params p = base;
  const auto slots = internal::trainable_slots(p, props);
  return internal::log_det_jacobian(x, slots, grad);
}

double log_posterior_unconstrained(const Vector& x, const Params& base, const ParamProps& props,
                                   const std::vector<Sequence>& seqs, const ConjugatePrior* prior, Vector& grad,
                                   int num_threads) {
  validate(base);
  validate(base, seqs);
  internal::check_gradient_rows(base, props);  // a structural error, not a point outside the domain
  double f = log_det_jacobian(x, base, props, grad);
  try {
    const Params params = from_unconstrained(x, base, props);
    const SufficientStats stats = sufficient_stats(params, seqs, false, num_threads);
    grad += log_prob_gradient(params, props, stats, prior);
    f += stats.marginal_loglik + (prior ? log_prior(params, *prior) : 0.0);
  } catch (const invalid_argument&) {
    f = -internal::kInf;  // parameters not valid in floating point: zero density
  }
  if (std::isfinite(f) && grad.allFinite()) return f;
  grad.setZero();
  return -internal::kInf;
}

}  // namespace lgssm
