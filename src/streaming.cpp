// The streaming filter and the fixed-lag smoother (streaming.hpp): the batch
// filter's step (KalmanFilter, kalman.hpp) and the batch smoother's backward
// recursion (BackwardRecursion, kalman.hpp), one observation at a time.
#include "lgssm/streaming.hpp"

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "checks.hpp"
#include "kalman.hpp"
#include "lgssm/error.hpp"
#include "linalg.hpp"

namespace lgssm {

using internal::BackwardRecursion;
using internal::KalmanFilter;
using internal::NoMallocScope;
using internal::shape_str;
using internal::sized;
using internal::sized_row;
using internal::throw_invalid;

namespace {

// The filter at each compiled state dimension (dispatch_state_dim).
using AnyFilter =
    std::variant<KalmanFilter<1>, KalmanFilter<2>, KalmanFilter<3>, KalmanFilter<4>, KalmanFilter<Eigen::Dynamic>>;

AnyFilter make_filter(Eigen::Index n, Eigen::Index p, bool keep_backward, bool compare_entries) {
  return internal::dispatch_state_dim(n, [&](auto dim) {
    return AnyFilter(std::in_place_type<KalmanFilter<dim>>, n, p, keep_backward, compare_entries);
  });
}

// Whether `s` has an entry for use k (one entry: constant).
bool covers(const MatrixSeries& s, Eigen::Index k) { return s.size() == 1 || s.size() > k; }

// The O(1) checks of a step t: the params' dimensions against the stream's,
// per-step parameters long enough, y_t finite or NaN and u_t finite.
void check_step(const Params& params, Eigen::Index n, Eigen::Index p, Eigen::Index m, Eigen::Index t,
                const Eigen::Ref<const Vector>* emission, const Eigen::Ref<const Vector>& input) {
  if (params.state_dim() != n || params.emission_dim() != p || params.input_dim() != m)
    throw_invalid("params",
                  "a model of (state_dim, emission_dim, input_dim) = " + shape_str(n, p, m) + " (the state's)",
                  shape_str(params.state_dim(), params.emission_dim(), params.input_dim()));
  const auto& d = params.dynamics;
  const auto& e = params.emissions;
  const bool dynamics_ok = t == 0 || (covers(d.weights, t - 1) && covers(d.bias, t - 1) &&
                                      covers(d.input_weights, t - 1) && covers(d.cov, t - 1));
  const bool emissions_ok = emission == nullptr || (covers(e.weights, t) && covers(e.bias, t) &&
                                                    covers(e.input_weights, t) && covers(e.cov, t));
  if (!dynamics_ok || !emissions_ok) internal::check_series_lengths(params, t + 1);  // throws, naming the parameter
  if (emission) {
    const auto& y = *emission;
    if (y.size() != p) throw_invalid("emission", "shape " + shape_str(p) + " (emission_dim)", shape_str(y.size()));
    for (Eigen::Index i = 0; i < p; ++i)
      if (std::isinf(y(i)))
        throw_invalid("emission", "finite values or NaN for missing", number(y(i)) + " at " + shape_str(i));
  }
  if (input.size() != 0 && input.size() != m)
    throw_invalid("input",
                  m == 0 ? "no input (the model has input_dim 0)" : "shape " + shape_str(m) + " (input_dim) or none",
                  shape_str(input.size()));
  for (Eigen::Index i = 0; i < input.size(); ++i)
    if (!std::isfinite(input(i))) throw_invalid("input", "finite values", number(input(i)) + " at " + shape_str(i));
}

}  // namespace

// ---------------------------------------------------------------------------
// FilterState

struct FilterState::Impl {
  Eigen::Index n, p, m, t = 0;
  double loglik = 0.0;
  bool check_params;
  AnyFilter filter;
  const Params* last_params = nullptr;  // without check_params: the object the factors came from

  // With check_params the filter compares the emission entries its factors
  // came from at each step; without, it keeps them while the params object is the same.
  Impl(Eigen::Index state_dim, Eigen::Index emission_dim, Eigen::Index input_dim, bool check, bool keep_backward)
      : n(state_dim),
        p(emission_dim),
        m(input_dim),
        check_params(check),
        filter(make_filter(state_dim, emission_dim, keep_backward, check)) {}
  // A copy's next step recomputes the factors (last_params is not copied).
  Impl(const Impl& o)
      : n(o.n), p(o.p), m(o.m), t(o.t), loglik(o.loglik), check_params(o.check_params), filter(o.filter) {}

  // Step t: predict, then (with an emission) update; the filter of kalman.hpp.
  double step(const Params& params, const Eigen::Ref<const Vector>* emission, const Eigen::Ref<const Vector>& input) {
    check_step(params, n, p, m, t, emission, input);
    if (!check_params && &params != last_params) {
      std::visit([](auto& kf) { kf.forget_factors(); }, filter);
      last_params = &params;
    }
    const double ll = std::visit(
        [&](auto& kf) {
          [[maybe_unused]] NoMallocScope no_malloc;
          kf.predict(params, t, input);
          return emission ? kf.update(params, t, *emission, input) : 0.0;
        },
        filter);
    loglik += ll;
    ++t;
    return ll;
  }
};

FilterState::FilterState(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FilterState::FilterState(Eigen::Index state_dim, Eigen::Index emission_dim, Eigen::Index input_dim,
                         Eigen::Index num_timesteps, double marginal_loglik, const Vector& mean, const Matrix& cov,
                         bool check_params) {
  if (state_dim < 1) throw_invalid("state_dim", "an integer >= 1", std::to_string(state_dim));
  if (emission_dim < 1) throw_invalid("emission_dim", "an integer >= 1", std::to_string(emission_dim));
  if (input_dim < 0) throw_invalid("input_dim", "an integer >= 0", std::to_string(input_dim));
  if (num_timesteps < 0) throw_invalid("num_timesteps", "an integer >= 0", std::to_string(num_timesteps));
  if (std::isnan(marginal_loglik) || marginal_loglik == std::numeric_limits<double>::infinity())
    throw_invalid("marginal_loglik", "a number < inf", number(marginal_loglik));
  if (mean.size() != state_dim) throw_invalid("mean", "shape " + shape_str(state_dim), shape_str(mean.size()));
  internal::check_finite("mean", mean);
  if (cov.rows() != state_dim || cov.cols() != state_dim)
    throw_invalid("cov", "shape " + shape_str(state_dim, state_dim), shape_str(cov.rows(), cov.cols()));
  internal::check_covariance("cov", cov, internal::Definiteness::kSemidefinite);
  impl_ = std::make_unique<Impl>(state_dim, emission_dim, input_dim, check_params, false);
  impl_->t = num_timesteps;
  impl_->loglik = marginal_loglik;
  std::visit([&](auto& kf) { kf.set_moments(mean, cov); }, impl_->filter);
}

FilterState::FilterState(const FilterState& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
FilterState::FilterState(FilterState&& other) noexcept = default;
FilterState& FilterState::operator=(const FilterState& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
  return *this;
}
FilterState& FilterState::operator=(FilterState&& other) noexcept = default;
FilterState::~FilterState() = default;

Eigen::Index FilterState::state_dim() const { return impl_->n; }
Eigen::Index FilterState::emission_dim() const { return impl_->p; }
Eigen::Index FilterState::input_dim() const { return impl_->m; }
Eigen::Index FilterState::num_timesteps() const { return impl_->t; }
double FilterState::marginal_loglik() const { return impl_->loglik; }
bool FilterState::check_params() const { return impl_->check_params; }
Vector FilterState::filtered_mean() const {
  return std::visit([](const auto& kf) -> Vector { return kf.mean(); }, impl_->filter);
}
Matrix FilterState::filtered_cov() const {
  return std::visit([](const auto& kf) -> Matrix { return kf.cov(); }, impl_->filter);
}

FilterState filter_init(const Params& params, bool check_params) {
  validate(params);
  internal::check_known_initial(params, "filter_init (the streaming filter)");
  auto impl = std::make_unique<FilterState::Impl>(params.state_dim(), params.emission_dim(), params.input_dim(),
                                                  check_params, false);
  std::visit([&](auto& kf) { kf.set_moments(params.initial.mean, params.initial.cov); }, impl->filter);
  return FilterState(std::move(impl));
}

double filter_step(const Params& params, FilterState& state, const Eigen::Ref<const Vector>& emission,
                   const Eigen::Ref<const Vector>& input) {
  return state.impl_->step(params, &emission, input);
}

void predict_step(const Params& params, FilterState& state, const Eigen::Ref<const Vector>& input) {
  state.impl_->step(params, nullptr, input);
}

// ---------------------------------------------------------------------------
// FixedLagSmoother

namespace {

// The last lag + 1 steps' filtered moments and backward terms in a ring
// (step s in slot s mod (lag + 1)), the smoothed window in time order, and
// the backward recursion's workspaces.
template <int N>
struct LagWindow {
  static constexpr int kDim = N;
  RowMatrix filtered_means, a, smoothed_means;
  MatrixSeries filtered_covs, transition, omega, smoothed_covs;
  BackwardRecursion<N> recursion;

  LagWindow(Eigen::Index slots, Eigen::Index n)
      : filtered_means(slots, n),
        a(slots, n),
        smoothed_means(slots, n),
        filtered_covs(slots, n, n),
        transition(slots, n, n),
        omega(slots, n, n),
        smoothed_covs(slots, n, n),
        recursion(n) {}

  // Keeps step t's terms, then smooths the window s0 .. t.
  void observe(const KalmanFilter<N>& kf, const Params& params, Eigen::Index t, Eigen::Index s0) {
    const Eigen::Index slots = a.rows();
    const Eigen::Index k = t % slots;
    sized_row<N>(filtered_means, k) = kf.mean();
    sized<N, N>(filtered_covs[k]) = kf.cov().transpose();  // symmetric
    sized_row<N>(a, k) = kf.backward_a();
    sized<N, N>(transition[k]) = kf.backward_transition();
    sized<N, N>(omega[k]) = kf.backward_omega();
    recursion.reset();
    for (Eigen::Index s = t; s >= s0; --s) {
      const Eigen::Index j = s % slots, i = s - s0;
      const auto pf = sized<N, N>(std::as_const(filtered_covs)[j]);
      const auto a_mat = sized<N, N>(std::as_const(transition)[j]);
      recursion.smooth_mean(sized_row<N>(std::as_const(filtered_means), j), pf, sized_row<N>(std::as_const(a), j),
                            a_mat, sized_row<N>(smoothed_means, i));
      recursion.smooth_cov(pf, a_mat, sized<N, N>(std::as_const(omega)[j]), sized<N, N>(smoothed_covs[i]));
      if (s == s0) break;
      const auto f = sized<N, N>(params.dynamics.weights.at(s - 1));
      recursion.transition_mean(f);
      recursion.transition_cov(f);
    }
  }
};

using AnyWindow = std::variant<LagWindow<1>, LagWindow<2>, LagWindow<3>, LagWindow<4>, LagWindow<Eigen::Dynamic>>;

}  // namespace

struct FixedLagSmoother::Impl {
  Params params;
  Eigen::Index lag;
  FilterState::Impl state;  // keeping the backward terms
  AnyWindow window;

  Impl(const Params& model, Eigen::Index lag_steps)
      : params(model),
        lag(lag_steps),
        state(model.state_dim(), model.emission_dim(), model.input_dim(), false, true),  // its own params
        window(internal::dispatch_state_dim(model.state_dim(), [&](auto dim) {
          return AnyWindow(std::in_place_type<LagWindow<dim>>, lag_steps + 1, model.state_dim());
        })) {}

  Eigen::Index window_start() const { return state.t <= lag ? 0 : state.t - 1 - lag; }
  Eigen::Index window_size() const { return state.t == 0 ? 0 : state.t - window_start(); }
};

FixedLagSmoother::FixedLagSmoother(const Params& params, Eigen::Index lag) {
  validate(params);
  internal::check_known_initial(params, "the fixed-lag smoother");
  if (lag < 0) throw_invalid("lag", "an integer >= 0", std::to_string(lag));
  impl_ = std::make_unique<Impl>(params, lag);
}
FixedLagSmoother::FixedLagSmoother(const FixedLagSmoother& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
FixedLagSmoother::FixedLagSmoother(FixedLagSmoother&& other) noexcept = default;
FixedLagSmoother& FixedLagSmoother::operator=(const FixedLagSmoother& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
  return *this;
}
FixedLagSmoother& FixedLagSmoother::operator=(FixedLagSmoother&& other) noexcept = default;
FixedLagSmoother::~FixedLagSmoother() = default;

double FixedLagSmoother::step(const Eigen::Ref<const Vector>& emission, const Eigen::Ref<const Vector>& input) {
  Impl& s = *impl_;
  const double ll = s.state.step(s.params, &emission, input);
  const Eigen::Index t = s.state.t - 1;
  std::visit(
      [&](auto& window) {
        const auto& kf = std::get<KalmanFilter<std::decay_t<decltype(window)>::kDim>>(s.state.filter);
        [[maybe_unused]] NoMallocScope no_malloc;
        window.observe(kf, s.params, t, s.window_start());
      },
      s.window);
  return ll;
}

Eigen::Index FixedLagSmoother::lag() const { return impl_->lag; }
Eigen::Index FixedLagSmoother::num_timesteps() const { return impl_->state.t; }
double FixedLagSmoother::marginal_loglik() const { return impl_->state.loglik; }
Eigen::Index FixedLagSmoother::window_start() const { return impl_->window_start(); }

Vector FixedLagSmoother::lagged_mean() const {
  if (impl_->state.t == 0) throw_invalid("smoother", "a step observed", "none");
  return std::visit([](const auto& w) -> Vector { return w.smoothed_means.row(0).transpose(); }, impl_->window);
}

Matrix FixedLagSmoother::lagged_cov() const {
  if (impl_->state.t == 0) throw_invalid("smoother", "a step observed", "none");
  return std::visit([](const auto& w) -> Matrix { return w.smoothed_covs[0]; }, impl_->window);
}

RowMatrix FixedLagSmoother::smoothed_means() const {
  return std::visit([&](const auto& w) -> RowMatrix { return w.smoothed_means.topRows(impl_->window_size()); },
                    impl_->window);
}

MatrixSeries FixedLagSmoother::smoothed_covariances() const {
  const Eigen::Index n = impl_->state.n, size = impl_->window_size();
  MatrixSeries out(size, n, n);
  std::visit([&](const auto& w) { out.flat() = w.smoothed_covs.flat().topRows(size); }, impl_->window);
  return out;
}

}  // namespace lgssm
