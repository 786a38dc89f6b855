// Google Benchmark kernels of the C++ core: time per step of the filter, the
// smoother, the log likelihood alone, the streaming filter's step and the EM E-step, over (state_dim,
// emission_dim) sizes, and Eigen's dense GEMM as the machine's matrix-multiply
// yardstick in the same build. Run by scripts/bench.sh (see bench/README.md);
// each kernel reports items_per_second = time steps per second.
#include <benchmark/benchmark.h>

#include <Eigen/Dense>
#include <random>

#include "lgssm/inference.hpp"
#include "lgssm/stats.hpp"
#include "lgssm/streaming.hpp"

namespace {

using lgssm::Matrix;
using lgssm::MatrixSeries;
using lgssm::Params;
using lgssm::RowMatrix;
using lgssm::Sequence;

constexpr Eigen::Index kSteps = 1000;

Matrix standard_normal(std::mt19937_64& rng, Eigen::Index rows, Eigen::Index cols) {
  std::normal_distribution<double> normal;
  Matrix m(rows, cols);
  for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = normal(rng);
  return m;
}

// A stable random model (F = 0.95 Q for a random orthogonal Q; H standard
// normal; Q = 0.1 I; R = 0.1 I, or a random dense SPD matrix when full_r) and
// a sequence of kSteps steps drawn from it; fixed seeds.
struct Problem {
  Params params;
  Sequence seq;
  Problem(Eigen::Index n, Eigen::Index p, bool full_r) {
    std::mt19937_64 rng(n * 1000 + p);
    const Matrix q = Eigen::HouseholderQR<Matrix>(standard_normal(rng, n, n)).householderQ();
    Matrix r = 0.1 * Matrix::Identity(p, p);
    if (full_r) {
      const Matrix a = standard_normal(rng, p, p);
      r += a * a.transpose() / static_cast<double>(p);
    }
    params.initial = {lgssm::Vector::Zero(n), Matrix::Identity(n, n)};
    params.dynamics = {MatrixSeries::constant(0.95 * q), MatrixSeries(1, n, 1), MatrixSeries(1, n, 0),
                       MatrixSeries::constant(0.1 * Matrix::Identity(n, n))};
    params.emissions = {MatrixSeries::constant(standard_normal(rng, p, n)), MatrixSeries(1, p, 1),
                        MatrixSeries(1, p, 0), MatrixSeries::constant(r)};
    seq = {lgssm::sample(params, 7, kSteps).emissions, RowMatrix()};
  }
};

template <class Fn>
void run(benchmark::State& state, Fn fn) {
  const Problem problem(state.range(0), state.range(1), state.range(2) != 0);
  for (auto _ : state) benchmark::DoNotOptimize(fn(problem.params, problem.seq));
  state.SetItemsProcessed(state.iterations() * kSteps);
}

void BM_Filter(benchmark::State& state) {
  run(state, [](const Params& p, const Sequence& s) { return lgssm::filter(p, s); });
}
void BM_Smoother(benchmark::State& state) {
  run(state, [](const Params& p, const Sequence& s) { return lgssm::smoother(p, s); });
}
void BM_MarginalLogProb(benchmark::State& state) {
  run(state, [](const Params& p, const Sequence& s) { return lgssm::marginal_log_prob(p, s); });
}
// The streaming filter over the same sequence, one filter_step per observation,
// keyed on the params object as the Python API runs it (check_params = false).
void BM_FilterStep(benchmark::State& state) {
  run(state, [](const Params& p, const Sequence& s) {
    lgssm::FilterState stream = lgssm::filter_init(p, false);
    for (Eigen::Index t = 0; t < s.num_timesteps(); ++t) lgssm::filter_step(p, stream, s.emissions.row(t).transpose());
    return stream.marginal_loglik();
  });
}
void BM_EStep(benchmark::State& state) {
  run(state, [](const Params& p, const Sequence& s) { return lgssm::sufficient_stats(p, s); });
}

// (state_dim, emission_dim, full R): the cases of the peer comparison.
void sizes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"state", "emission", "full_r"});
  for (auto [n, p, full] : {std::tuple{2, 10, 0}, {4, 8, 0}, {4, 32, 0}, {16, 32, 0}, {8, 512, 0}, {8, 512, 1}})
    b->Args({n, p, full});
  b->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_Filter)->Apply(sizes);
BENCHMARK(BM_Smoother)->Apply(sizes);
BENCHMARK(BM_MarginalLogProb)->Apply(sizes);
BENCHMARK(BM_FilterStep)->Apply(sizes);
BENCHMARK(BM_EStep)->Apply(sizes);

// C = A B for n x n matrices: 2 n^3 flops, reported as items (flops) per second.
void BM_EigenGemm(benchmark::State& state) {
  const Eigen::Index n = state.range(0);
  std::mt19937_64 rng(1);
  const Matrix a = standard_normal(rng, n, n), b = standard_normal(rng, n, n);
  Matrix c(n, n);
  for (auto _ : state) {
    c.noalias() = a * b;
    benchmark::DoNotOptimize(c.data());
  }
  state.SetItemsProcessed(state.iterations() * 2 * n * n * n);
}
BENCHMARK(BM_EigenGemm)->ArgName("n")->Arg(512)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
