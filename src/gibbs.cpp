// The blocked Gibbs sampler (gibbs.hpp): the conjugate draws and the sweeps.
#include "lgssm/gibbs.hpp"

#include <Eigen/Cholesky>
#include <chrono>
#include <cmath>
#include <random>
#include <string>

#include "checks.hpp"
#include "lgssm/error.hpp"
#include "lgssm/learn.hpp"
#include "lgssm/parallel.hpp"
#include "linalg.hpp"
#include "unchecked.hpp"

namespace lgssm {

using internal::throw_invalid;

namespace {

Matrix standard_normal(Eigen::Index rows, Eigen::Index cols, std::mt19937_64& rng) {
  std::normal_distribution<double> normal;
  Matrix e(rows, cols);
  for (Eigen::Index j = 0; j < cols; ++j)
    for (Eigen::Index i = 0; i < rows; ++i) e(i, j) = normal(rng);
  return e;
}

// x ~ IG(shape, scale) as scale / Gamma(shape, 1).
double inverse_gamma(double shape, double scale, std::mt19937_64& rng) {
  return scale / std::gamma_distribution<double>(shape, 1.0)(rng);
}

// A factor C (Sigma = C C^T) of Sigma ~ IW(df, scale) by Bartlett's
// decomposition: Sigma^{-1} = L^{-T} B B^T L^{-1} ~ W(df, scale^{-1}) for
// scale = L L^T and B lower triangular with B_ii^2 ~ chi^2(df - i) and
// standard normal B_ij (i > j) (Anderson 2003, Theorem 7.2.1), so
// Sigma = (B^{-1} L^T)^T (B^{-1} L^T): triangular solves, no inverse.
Matrix inverse_wishart_factor(double df, const Matrix& scale, std::mt19937_64& rng) {
  const Eigen::Index d = scale.rows();
  Matrix b = Matrix::Zero(d, d);
  std::normal_distribution<double> normal;
  for (Eigen::Index i = 0; i < d; ++i) {
    b(i, i) = std::sqrt(2.0 * std::gamma_distribution<double>(0.5 * (df - static_cast<double>(i)), 1.0)(rng));
    for (Eigen::Index j = 0; j < i; ++j) b(i, j) = normal(rng);
  }
  const Eigen::LLT<Matrix> llt(scale);
  if (llt.info() != Eigen::Success)
    throw std::runtime_error("fit_blocked_gibbs: the inverse Wishart scale is not positive definite");
  const Matrix lt = llt.matrixU();  // L^T
  return b.triangularView<Eigen::Lower>().solve(lt).transpose();
}

// One draw of (W, Sigma) of a regression from its conditional (gibbs.hpp's
// file comment), `a` holding the statistics with the prior's pseudo-observations.
void draw_regression(const RegressionStats& a, Matrix& w, Matrix& cov, const std::vector<Eigen::Index>& free,
                     bool cov_free, CovStructure structure, std::mt19937_64& rng) {
  const Eigen::Index d = w.rows();
  const double f = static_cast<double>(free.size()), dd = static_cast<double>(d);
  w = internal::solve_free(a, w, free);
  Matrix factor;
  if (cov_free) {
    const Matrix scatter = a.scatter(w);
    const double power = a.count - f;  // Sigma's density is |Sigma|^{-power / 2} exp(-tr(Sigma^{-1} A) / 2)
    if (structure == CovStructure::kFull) {
      factor = inverse_wishart_factor(power - dd - 1.0, scatter, rng);
    } else if (structure == CovStructure::kDiagonal) {
      Vector sd(d);
      for (Eigen::Index i = 0; i < d; ++i)
        sd(i) = std::sqrt(inverse_gamma(0.5 * power - 1.0, 0.5 * scatter(i, i), rng));
      factor = sd.asDiagonal();
    } else {
      const double s = inverse_gamma(0.5 * dd * power - 1.0, 0.5 * scatter.trace(), rng);
      factor = std::sqrt(s) * Matrix::Identity(d, d);
    }
    cov = factor * factor.transpose();
    internal::symmetrize(cov);
  } else {
    internal::PsdFactor<> psd(d);
    factor = psd.compute(cov);
  }
  if (free.empty()) return;
  // W_F = W*_F + C E L_K^{-T}, (K_n)_FF = L_K L_K^T: rows correlated by Sigma, columns by (K_n)_FF^{-1}.
  const Eigen::LLT<Matrix> lk(a.xx(free, free));
  const Matrix e = standard_normal(d, static_cast<Eigen::Index>(free.size()), rng);
  const Matrix col = lk.matrixL().solve(e.transpose()).transpose();
  w(Eigen::all, free) += factor * col;
}

void draw_conditional(const RegressionStats& a, LinearGaussianParams& c, Eigen::Index entry,
                      const ParamProps::Conditional& props, std::mt19937_64& rng) {
  const Eigen::Index n = c.weights.cols(), m = c.input_weights.cols();
  Matrix w = internal::stacked(c, entry);
  Matrix cov = c.cov[entry];
  draw_regression(a, w, cov, internal::free_columns(props, n, m), props.cov, props.cov_structure, rng);
  c.weights[entry] = w.leftCols(n);
  c.input_weights[entry] = w.middleCols(n, m);
  c.bias[entry] = w.col(n + m);
  c.cov[entry] = cov;
}

Params draw_params(const Params& params, const ParamProps& props, const SufficientStats& stats,
                   const ConjugatePrior& prior, std::mt19937_64& rng) {
  Params out = params;
  if (props.initial.mean || props.initial.cov) {
    Matrix w = params.initial.mean, cov = params.initial.cov;
    draw_regression(internal::initial_with_prior(stats, &prior), w, cov,
                    props.initial.mean ? std::vector<Eigen::Index>{0} : std::vector<Eigen::Index>{}, props.initial.cov,
                    props.initial.cov_structure, rng);
    out.initial.mean = w;
    out.initial.cov = cov;
  }
  if (internal::any_trainable(props.dynamics))
    draw_conditional(internal::with_prior(internal::pooled_dynamics(stats), &prior.dynamics), out.dynamics, 0,
                     props.dynamics, rng);
  // Per-step entries beyond the longest sequence have no terms: drawn from the prior.
  const size_t with_terms = stats.emissions.size();
  if (internal::any_trainable(props.emissions))
    for (Eigen::Index t = 0; t < out.emissions.weights.size(); ++t) {
      const RegressionStats none(internal::stacked(params.emissions, t));
      const RegressionStats& s = static_cast<size_t>(t) < with_terms ? stats.emissions[t] : none;
      draw_conditional(internal::with_prior(s, &prior.emissions), out.emissions, t, props.emissions, rng);
    }
  return out;
}

// The statistics need one emission entry per parameter entry.
void check_stats(const Params& params, const SufficientStats& stats) {
  const Eigen::Index entries = params.emissions.weights.size();
  const Eigen::Index given = static_cast<Eigen::Index>(stats.emissions.size());
  if (given < 1 || given > entries)
    throw_invalid("stats.emissions", "1 to " + std::to_string(entries) + " entries (one per emission parameter entry)",
                  std::to_string(given));
  if (stats.initial.w0.size() == 0) return;
  if (stats.initial.w0.rows() != params.state_dim() || stats.dynamics.empty() ||
      stats.dynamics[0].w0.rows() != params.state_dim() || stats.emissions[0].w0.rows() != params.emission_dim() ||
      stats.emissions[0].w0.cols() != params.state_dim() + params.input_dim() + 1)
    throw_invalid("stats", "statistics of this model's dimensions", "statistics of another shape");
}

// The empty statistics of `params` (no terms): conjugate_sample then draws from the prior.
SufficientStats no_terms(const Params& params) {
  SufficientStats s;
  s.initial = RegressionStats(params.initial.mean);
  s.dynamics.emplace_back(internal::stacked(params.dynamics, 0));
  for (Eigen::Index t = 0; t < params.emissions.weights.size(); ++t)
    s.emissions.emplace_back(internal::stacked(params.emissions, t));
  return s;
}

// One sequence's part of a sweep: z ~ p(z | y), the missing emission
// components ~ p(y_m | z, y_o), and the complete-data statistics; writes
// log p(y | params) into `loglik`.
SufficientStats augmented_stats(const Params& params, const Sequence& seq, bool per_step, std::uint64_t seed,
                                double& loglik) {
  std::mt19937_64 rng(seed);
  const SmootherResult sm = internal::smoothed_means_unchecked(params, seq);
  loglik = sm.marginal_loglik;
  const RowMatrix states = internal::simulation_smoother_draw(params, seq, sm.smoothed_means, rng);
  if (!seq.emissions.array().isNaN().any()) return internal::path_stats(params, seq, states, per_step);
  Sequence completed = seq;
  const auto& e = params.emissions;
  std::normal_distribution<double> normal;
  for (Eigen::Index t = 0; t < seq.num_timesteps(); ++t) {
    if (!seq.emissions.row(t).array().isNaN().any()) continue;
    const internal::MissingLaw law = internal::missing_law(e.cov.at(t), seq.emissions.row(t));
    Vector mean = e.weights.at(t) * states.row(t).transpose() + e.bias.vec(t);
    if (seq.inputs.cols() > 0) mean += e.input_weights.at(t) * seq.inputs.row(t).transpose();
    const Vector resid = seq.emissions.row(t)(law.observed).transpose() - mean(law.observed);
    Vector eps(law.missing.size());
    for (Eigen::Index i = 0; i < eps.size(); ++i) eps(i) = normal(rng);
    const Vector y_m = mean(law.missing) + law.gain * resid + law.noise_factor * eps;
    for (Eigen::Index i = 0; i < eps.size(); ++i) completed.emissions(t, law.missing[i]) = y_m(i);
  }
  return internal::path_stats(params, completed, states, per_step);
}

}  // namespace

namespace {

// The conjugate conditionals are those of whole parameters.
void check_no_constraints(const ParamProps& props) {
  if (has_constraints(props))
    internal::throw_invalid("props", "no element-wise constraints (Gibbs draws whole parameters; freeze instead)",
                            "a constraint");
}

}  // namespace

Params conjugate_sample(const Params& params, const ParamProps& props, const SufficientStats& stats,
                        const ConjugatePrior& prior, std::uint64_t seed) {
  validate(params, props);
  check_no_constraints(props);
  validate(params, prior);
  const SufficientStats empty = stats.initial.w0.size() == 0 ? no_terms(params) : SufficientStats();
  const SufficientStats& used = stats.initial.w0.size() == 0 ? empty : stats;
  check_stats(params, used);
  std::mt19937_64 rng(seed);
  return draw_params(params, props, used, prior, rng);
}

void GibbsOptions::validate() const { internal::check_count("num_threads", num_threads, 0); }

GibbsResult fit_blocked_gibbs(const Params& initial_params, const ParamProps& props, const std::vector<Sequence>& seqs,
                              const ConjugatePrior& prior, int sample_size, std::uint64_t seed,
                              const GibbsOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  options.validate();
  internal::check_count("sample_size", sample_size, 1);
  check_no_constraints(props);
  validate(initial_params, props);
  validate(initial_params, prior);
  validate(initial_params, seqs);
  const auto& e = initial_params.emissions;
  const bool per_step = internal::per_step_emissions(e);
  if (!per_step && (e.weights.size() > 1 || e.bias.size() > 1 || e.input_weights.size() > 1 || e.cov.size() > 1))
    throw_invalid("initial_params.emissions",
                  "weights, bias, input_weights and cov all time-invariant or all with one entry per step (Gibbs)",
                  "entries " + std::to_string(e.weights.size()) + ", " + std::to_string(e.bias.size()) + ", " +
                      std::to_string(e.input_weights.size()) + ", " + std::to_string(e.cov.size()));
  const Eigen::Index num_seqs = static_cast<Eigen::Index>(seqs.size());
  GibbsResult out;
  out.samples.reserve(sample_size);
  out.samples.push_back(initial_params);
  std::mt19937_64 rng(seed);
  std::vector<std::uint64_t> seeds(num_seqs);
  std::vector<SufficientStats> each(num_seqs);
  std::vector<double> lls(num_seqs);
  out.summary.message = "drew " + std::to_string(sample_size - 1) + " sweeps";
  for (int i = 1; i < sample_size; ++i) {
    const Params& current = out.samples.back();
    for (auto& s : seeds) s = rng();
    parallel_for(
        num_seqs, [&](Eigen::Index j) { each[j] = augmented_stats(current, seqs[j], per_step, seeds[j], lls[j]); },
        options.num_threads);
    SufficientStats total;
    double loglik = 0.0;
    for (Eigen::Index j = 0; j < num_seqs; ++j) {
      total += each[j];
      loglik += lls[j];
    }
    out.marginal_loglik.push_back(loglik);
    out.samples.push_back(draw_params(current, props, total, prior, rng));
    out.summary.iterations = i;
    if (options.callback && !options.callback(i - 1, loglik)) {
      out.summary.termination = Termination::kStopped;
      out.summary.message = "stopped by the callback after " + std::to_string(i) + " sweeps";
      break;
    }
  }
  out.summary.usable = true;
  out.summary.evaluations = static_cast<int>(out.marginal_loglik.size());
  if (!out.marginal_loglik.empty()) {
    out.summary.initial_objective = out.marginal_loglik.front();
    out.summary.final_objective = out.marginal_loglik.back();
  }
  out.summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

}  // namespace lgssm
