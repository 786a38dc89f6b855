// The threaded entry points against their serial selves, and parallel_for's
// contract (every index once, calls concurrent, the first exception rethrown,
// nested and concurrent calls and calls after fork() complete).
//
// Every batch function hands whole items (sequences; in the continuous M-step,
// transition groups) to parallel_for's workers, each item's result computed by
// one thread with the same operations as on one thread, and sums the per-item
// results in item order after the loop (stats.cpp, continuous.cpp). So with
// any number of threads each result equals the serial one bit for bit, and the
// tests compare with tolerance 0.
//
// Builds with LGSSM_CHECK_NO_MALLOC run parallel_for serially (Eigen's
// no-malloc flag is process-wide) unless the environment sets
// LGSSM_CHECK_NO_MALLOC=0; scripts/test.sh runs these tests threaded, under
// AddressSanitizer + UBSan and under ThreadSanitizer (this file is the
// executable lgssm_parallel_tests, so that the TSan build compiles only it).
#include "lgssm/parallel.hpp"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "lgssm/continuous.hpp"
#include "lgssm/fit.hpp"
#include "lgssm/inference.hpp"
#include "lgssm/learn.hpp"
#include "lgssm/stats.hpp"
#include "linalg.hpp"
#include "test_util.hpp"

namespace lgssm::test {
namespace {

// Every number of a result in a fixed order: results are equal when their
// flattenings are.
struct Flat {
  std::vector<double> values;
  Flat& operator<<(double x) {
    values.push_back(x);
    return *this;
  }
  template <class Derived>
  Flat& operator<<(const Eigen::DenseBase<Derived>& m) {
    for (Index i = 0; i < m.rows(); ++i)
      for (Index j = 0; j < m.cols(); ++j) values.push_back(m(i, j));
    return *this;
  }
  Flat& operator<<(const MatrixSeries& s) { return *this << s.size() << s.flat(); }
  Vector vector() const { return Eigen::Map<const Vector>(values.data(), static_cast<Index>(values.size())); }
};

Flat& operator<<(Flat& f, const FilterResult& r) {
  return f << r.marginal_loglik << r.filtered_means << r.filtered_covariances << r.predicted_means
           << r.predicted_covariances;
}
Flat& operator<<(Flat& f, const SmootherResult& r) {
  return f << static_cast<const FilterResult&>(r) << r.smoothed_means << r.smoothed_covariances
           << r.smoothed_cross_covariances;
}
Flat& operator<<(Flat& f, const SufficientStats& s) {
  f << s.marginal_loglik;
  const std::vector<RegressionStats> initial{s.initial};
  for (const auto* list : {&initial, &s.dynamics, &s.emissions}) {
    f << static_cast<double>(list->size());
    for (const RegressionStats& r : *list) f << r.w0 << r.xx << r.rx << r.rr << r.count;
  }
  return f;
}
Flat& operator<<(Flat& f, const LinearGaussianParams& c) {
  return f << c.weights << c.bias << c.input_weights << c.cov;
}
Flat& operator<<(Flat& f, const Params& p) { return f << p.initial.mean << p.initial.cov << p.dynamics << p.emissions; }
Flat& operator<<(Flat& f, const ContinuousParams& p) {
  return f << p.initial.mean << p.initial.cov << p.dynamics.drift << p.dynamics.diffusion_cov << p.emissions;
}
template <class Result>
Flat& operator<<(Flat& f, const std::vector<Result>& results) {
  for (const auto& r : results) f << r;
  return f;
}
template <class Fit>  // FitResult, ContinuousFitResult
auto operator<<(Flat& f, const Fit& r) -> decltype(r.summary, f) {
  return f << r.params << r.history << static_cast<double>(r.summary.iterations);
}

template <class T>
Vector flat(const T& x) {
  Flat f;
  f << x;
  return f.vector();
}

// run(threads) flattens what the entry points under test return on `threads`
// threads; on 2, 3 and 4 it must equal the serial result, bit for bit.
void expect_serial_on_threads(const Vector& serial, const std::function<Vector(int)>& run) {
  for (int threads : {2, 3, 4}) EXPECT_MATRIX_NEAR(run(threads), serial, 0.0) << "threads " << threads;
}

// Inputs, biases, full R; sequences of lengths 1..40 with missing components
// and wholly missing steps: more sequences than threads, of uneven cost.
Params batch_params() { return random_params({3, 4, 2, 0, true, false, -1, -1, 11}); }

std::vector<Sequence> batch_sequences(const Params& params, int count) {
  std::vector<Sequence> seqs;
  for (int i = 0; i < count; ++i) {
    const Index steps = 1 + (7 * i) % 40;
    std::vector<Index> missing_steps;
    if (steps > 3) missing_steps.push_back(steps / 2);
    seqs.push_back(random_sequence(params, {steps, 0.1, missing_steps, static_cast<std::uint64_t>(100 + i)}));
  }
  return seqs;
}

// ---------------------------------------------------------------------------
// parallel_for itself.

TEST(Parallel, ForCallsEveryIndexOnce) {
  for (Index n : {0, 1, 3, 200})
    for (int threads : {0, 1, 2, 4, 8}) {
      std::vector<int> calls(static_cast<size_t>(n), 0);  // entry i written by call i only
      parallel_for(n, [&](Index i) { ++calls[static_cast<size_t>(i)]; }, threads);
      for (Index i = 0; i < n; ++i)
        EXPECT_EQ(calls[static_cast<size_t>(i)], 1) << "n " << n << ", index " << i << ", threads " << threads;
    }
}

// Calls 0 and 1 each wait for the other to have started: they can only both
// return when they run at the same time, on two threads.
TEST(Parallel, ForRunsCallsConcurrently) {
#ifdef LGSSM_CHECK_NO_MALLOC
  if (lgssm::internal::no_malloc_checks())
    GTEST_SKIP() << "LGSSM_CHECK_NO_MALLOC builds run parallel_for serially unless LGSSM_CHECK_NO_MALLOC=0";
#endif
  std::mutex mutex;
  std::condition_variable arrived_cv;
  int arrived = 0;
  bool timed_out = false;
  std::vector<std::thread::id> ids(2);
  parallel_for(
      8,
      [&](Index i) {
        if (i >= 2) return;
        std::unique_lock<std::mutex> lock(mutex);
        ids[static_cast<size_t>(i)] = std::this_thread::get_id();
        ++arrived;
        arrived_cv.notify_all();
        if (!arrived_cv.wait_for(lock, std::chrono::seconds(60), [&] { return arrived == 2; })) timed_out = true;
      },
      2);
  EXPECT_FALSE(timed_out) << "calls 0 and 1 did not overlap within 60 s";
  EXPECT_NE(ids[0], ids[1]);
}

TEST(Parallel, ForRethrowsTheFirstException) {
  for (int threads : {1, 2, 4}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    try {
      parallel_for(
          100,
          [](Index i) {
            if (i == 37) throw std::runtime_error("index 37");
          },
          threads);
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), "index 37");
    }
    // Every call throws: one of the exceptions arrives, whichever was first.
    try {
      parallel_for(100, [](Index i) { throw std::runtime_error("index " + std::to_string(i)); }, threads);
      ADD_FAILURE() << "no exception";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("index ", 0), 0u) << e.what();
    }
  }
}

// A parallel_for inside a parallel_for's call runs serially on that thread
// (the pool runs one job at a time): every index of both levels once.
TEST(Parallel, NestedCallsComplete) {
  constexpr Index outer = 6, inner = 50;
  std::vector<int> calls(static_cast<size_t>(outer * inner), 0);
  parallel_for(
      outer, [&](Index i) { parallel_for(inner, [&](Index j) { ++calls[static_cast<size_t>(i * inner + j)]; }, 2); },
      2);
  for (size_t k = 0; k < calls.size(); ++k) EXPECT_EQ(calls[k], 1) << "index " << k;
}

// Calls from several threads at once: one of them gets the pool, the others
// run serially; each completes with every index once.
TEST(Parallel, ConcurrentCallersComplete) {
  constexpr int callers = 3, rounds = 100;
  constexpr Index n = 64;
  std::vector<std::vector<int>> calls(callers, std::vector<int>(static_cast<size_t>(n * rounds), 0));
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c)
    threads.emplace_back([&, c] {
      for (int r = 0; r < rounds; ++r) parallel_for(n, [&](Index i) { ++calls[c][static_cast<size_t>(r * n + i)]; }, 2);
    });
  for (auto& t : threads) t.join();
  for (int c = 0; c < callers; ++c)
    for (size_t k = 0; k < calls[c].size(); ++k) ASSERT_EQ(calls[c][k], 1) << "caller " << c << ", index " << k;
}

// A child made by fork() after the pool has started (as a Dask or
// multiprocessing worker may be) has none of its threads; parallel_for there
// must still complete, on a pool of the child's own.
TEST(Parallel, ForkedChildCompletes) {
#if defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "ThreadSanitizer does not support threads after fork()";
#endif
  std::vector<int> warm(16, 0);
  parallel_for(16, [&](Index i) { ++warm[static_cast<size_t>(i)]; }, 2);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(60);  // a hang ends the child, and the test fails
    std::vector<int> calls(100, 0);
    parallel_for(100, [&](Index i) { ++calls[static_cast<size_t>(i)]; }, 2);
    bool once = true;
    for (int c : calls) once = once && c == 1;
    _exit(once ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << "the child was killed (signal " << WTERMSIG(status) << ")";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's parallel_for missed or repeated an index";
}

// ---------------------------------------------------------------------------
// The threaded entry points equal their serial selves.

TEST(Parallel, BatchInferenceEqualsSerial) {
  const Params params = batch_params();
  const auto seqs = batch_sequences(params, 24);
  std::vector<double> lls;
  std::vector<FilterResult> filtered;
  std::vector<SmootherResult> smoothed;
  for (const auto& s : seqs) {  // the single-sequence functions run on the calling thread
    lls.push_back(marginal_log_prob(params, s));
    filtered.push_back(filter(params, s));
    smoothed.push_back(smoother(params, s));
  }
  Flat serial;
  serial << lls << filtered << smoothed;
  expect_serial_on_threads(serial.vector(), [&](int threads) {
    Flat f;
    f << marginal_log_prob(params, seqs, threads) << filter(params, seqs, threads) << smoother(params, seqs, threads);
    return f.vector();
  });
}

TEST(Parallel, SufficientStatsEqualSerial) {
  const Params params = batch_params();
  const auto seqs = batch_sequences(params, 24);
  for (bool per_step : {false, true}) {
    SCOPED_TRACE(per_step ? "per-step emissions" : "pooled emissions");
    const auto run = [&](int threads) { return flat(sufficient_stats(params, seqs, per_step, threads)); };
    expect_serial_on_threads(run(1), run);
  }
}

TEST(Parallel, FitsEqualSerial) {
  const Params params = batch_params();
  const auto seqs = batch_sequences(params, 12);
  const ParamProps props;
  EmOptions em;
  em.num_iters = 4;
  SgdOptions sgd;
  sgd.num_epochs = 3;
  sgd.batch_size = 5;
  sgd.shuffle = true;
  sgd.adam.learning_rate = 1e-2;
  LbfgsOptions lbfgs;
  lbfgs.max_iters = 4;
  const auto run = [&](int threads) {
    em.num_threads = sgd.num_threads = lbfgs.num_threads = threads;
    Flat f;
    f << fit_em(params, props, seqs, em) << fit_sgd(params, props, seqs, sgd) << fit_lbfgs(params, props, seqs, lbfgs);
    return f.vector();
  };
  expect_serial_on_threads(run(1), run);
}

// A stable continuous-time model over state 2, observed at steps drawn from
// three lengths, so that sequences share transition groups.
ContinuousParams continuous_params() {
  const Params d = random_params({2, 3, 0, 0, true, false, -1, -1, 21});
  std::mt19937_64 rng(22);
  ContinuousParams p;
  p.initial = d.initial;
  p.emissions = d.emissions;
  p.dynamics.drift = random_matrix(rng, 2, 2, 0.5) - Matrix::Identity(2, 2);
  p.dynamics.diffusion_cov = random_cov(rng, 2);
  return p;
}

std::vector<TimedSequence> continuous_sequences(const ContinuousParams& params, int count) {
  std::mt19937_64 rng(23);
  std::uniform_int_distribution<int> pick(0, 2);
  const double steps[] = {0.1, 0.25, 0.6};
  std::vector<TimedSequence> out;
  for (int i = 0; i < count; ++i) {
    const Index length = 2 + i % 9;
    Vector times(length);
    times(0) = 0.5 * i;
    for (Index k = 1; k < length; ++k) times(k) = times(k - 1) + steps[pick(rng)];
    out.push_back(
        {random_sequence(to_discrete(params, times), {length, 0.1, {}, static_cast<std::uint64_t>(200 + i)}), times});
  }
  return out;
}

TEST(Parallel, ContinuousTimeEqualsSerial) {
  const ContinuousParams params = continuous_params();
  const auto seqs = continuous_sequences(params, 10);
  const ContinuousProps props;
  ContinuousEmOptions em;
  em.num_iters = 3;
  const auto run = [&](int threads) {
    Flat f;
    const ContinuousStats stats = sufficient_stats(params, seqs, threads);
    f << stats.gaps << stats.stats;
    f << m_step(params, props, stats, 5, threads);  // threaded over the transition groups
    Vector gradient;
    f << log_prob_and_gradient(params, props, seqs, gradient, threads) << gradient;
    em.num_threads = threads;
    return (f << fit_em(params, props, seqs, em)).vector();
  };
  expect_serial_on_threads(run(1), run);
}

}  // namespace
}  // namespace lgssm::test
