// parallel_for on a persistent pool of worker threads (parallel.hpp).
//
// One job runs at a time: a call finding the pool busy (a call from another
// thread of the caller's program), or made from inside a job (nested), runs
// serially on its own thread, so no call ever waits for another and none can
// deadlock. The workers are started on first use and kept; the pool grows to
// the largest thread count asked for. After fork() the child has none of the
// parent's threads: a call in a new process starts a pool of its own (the
// parent's copy is left untouched, its locks possibly held by threads that do
// not exist in the child).
#include "lgssm/parallel.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "linalg.hpp"

namespace lgssm {

#ifdef LGSSM_CHECK_NO_MALLOC
bool internal::no_malloc_checks() {
  static const bool on = [] {
    const char* v = std::getenv("LGSSM_CHECK_NO_MALLOC");
    return v == nullptr || std::string(v) != "0";
  }();
  return on;
}
#endif

namespace {

// True on the pool's workers, and on a caller while it runs its job.
thread_local bool in_job = false;

class Pool {
 public:
  // Runs fn over [0, n) on `workers` threads, this one included.
  void run(Eigen::Index n, const std::function<void(Eigen::Index)>& fn, int workers) {
    Job job(n, fn);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (static_cast<int>(threads_.size()) < workers - 1) {
        const int index = static_cast<int>(threads_.size());
        threads_.emplace_back([this, index] { serve(index); });
      }
      job_ = &job;
      helpers_ = workers - 1;
      pending_ = helpers_;
      ++generation_;
    }
    wake_.notify_all();
    in_job = true;
    job.work();
    in_job = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return pending_ == 0; });
      job_ = nullptr;
    }
    if (job.error) std::rethrow_exception(job.error);
  }

  std::atomic<bool> busy{false};

 private:
  struct Job {
    Job(Eigen::Index n, const std::function<void(Eigen::Index)>& fn) : n(n), fn(&fn) {}
    Eigen::Index n;
    const std::function<void(Eigen::Index)>* fn;
    std::atomic<Eigen::Index> next{0};
    std::mutex error_mutex;
    std::exception_ptr error;

    void work() {
      for (Eigen::Index i = next++; i < n; i = next++) {
        try {
          (*fn)(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (!error) error = std::current_exception();
          next = n;  // hand out no more work
        }
      }
    }
  };

  // Worker `index`: joins each job that asks for more than `index` helpers.
  void serve(int index) {
    in_job = true;
    unsigned long seen = 0;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= helpers_) continue;
      Job* job = job_;
      lock.unlock();
      job->work();
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> threads_;  // never joined: the pool lives as long as the process
  Job* job_ = nullptr;
  int helpers_ = 0;  // workers taking part in the current job
  int pending_ = 0;  // of those, the ones not yet done
  unsigned long generation_ = 0;
};

// The process's pool, made on first use and again in a forked child. Never
// destroyed: its workers wait for jobs until the process ends.
Pool& pool() {
  static std::mutex made;
  static Pool* current = nullptr;
  static pid_t owner = 0;
  std::lock_guard<std::mutex> lock(made);
  if (current == nullptr || owner != getpid()) {
    current = new Pool;  // a forked child's copy of the parent's pool is left as it is
    owner = getpid();
  }
  return *current;
}

}  // namespace

void parallel_for(Eigen::Index n, const std::function<void(Eigen::Index)>& fn, int num_threads) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  Eigen::Index workers = std::min<Eigen::Index>(n, num_threads > 0 ? num_threads : hw);
#ifdef LGSSM_CHECK_NO_MALLOC
  // Eigen's no-malloc flag is process-wide, so the checks run serially.
  if (internal::no_malloc_checks()) workers = 1;
#endif
  Pool* p = nullptr;
  if (workers > 1 && !in_job) {
    p = &pool();
    bool expected = false;
    if (!p->busy.compare_exchange_strong(expected, true)) p = nullptr;  // another caller's job runs
  }
  if (p == nullptr) {
    for (Eigen::Index i = 0; i < n; ++i) fn(i);
    return;
  }
  struct Release {
    Pool* p;
    ~Release() { p->busy = false; }
  } release{p};
  p->run(n, fn, static_cast<int>(workers));
}

}  // namespace lgssm
