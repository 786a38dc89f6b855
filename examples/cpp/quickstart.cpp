// The notebook's scenario in C++: simulate an LG-SSM (2-D latents, 10-D
// emissions, 100 steps), fit it by EM from a random start, smooth and forecast.
#include <cmath>
#include <iostream>
#include <lgssm/lgssm.hpp>
#include <random>

namespace {

lgssm::Params model(const lgssm::Matrix& dynamics, double dynamics_var, std::uint64_t seed) {
  const int n = 2, p = 10;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal;
  lgssm::RowMatrix h(p, n);
  for (int i = 0; i < h.size(); ++i) h.data()[i] = normal(rng);
  lgssm::Params params;
  params.initial = {lgssm::Vector::Zero(n), lgssm::Matrix::Identity(n, n)};
  params.dynamics = {lgssm::MatrixSeries::constant(dynamics), lgssm::MatrixSeries(1, n, 1),
                     lgssm::MatrixSeries(1, n, 0),
                     lgssm::MatrixSeries::constant(dynamics_var * lgssm::RowMatrix::Identity(n, n))};
  params.emissions = {lgssm::MatrixSeries::constant(h), lgssm::MatrixSeries(1, p, 1), lgssm::MatrixSeries(1, p, 0),
                      lgssm::MatrixSeries::constant(0.1 * lgssm::RowMatrix::Identity(p, p))};
  return params;
}

}  // namespace

int main() {
  const double theta = M_PI / 10;
  lgssm::Matrix rotation(2, 2);
  rotation << std::cos(theta), -std::sin(theta), std::sin(theta), std::cos(theta);
  const lgssm::Params truth = model(0.99 * rotation, 0.01, 0);
  const lgssm::SampleResult draw = lgssm::sample(truth, /*seed=*/3, /*num_timesteps=*/100);
  const lgssm::Sequence seq{draw.emissions, lgssm::RowMatrix()};

  lgssm::EmOptions options;
  options.num_iters = 100;
  const lgssm::FitResult fit = lgssm::fit_em(model(0.99 * lgssm::Matrix::Identity(2, 2), 0.1, 42), {}, {seq}, options);
  const lgssm::SmootherResult post = lgssm::smoother(fit.params, seq);
  const lgssm::ForecastResult future = lgssm::forecast(fit.params, seq, 50);

  std::cout << "log p(y | true params)   = " << lgssm::marginal_log_prob(truth, seq) << "\n"
            << "EM: first, last          = " << fit.history.front() << ", " << fit.history.back() << "\n"
            << "fitted log p(y)          = " << post.marginal_loglik << "\n"
            << "forecast emission var 50 = " << future.emission_covariances[49].trace() / 10 << "\n";
  return fit.history.back() > lgssm::marginal_log_prob(truth, seq) ? 0 : 1;
}
