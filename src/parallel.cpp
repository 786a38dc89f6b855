#include <atomic>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "lgssm/inference.hpp"

namespace lgssm {

void parallel_for(Eigen::Index n, const std::function<void(Eigen::Index)>& fn, int num_threads) {
  const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
#ifdef LGSSM_CHECK_NO_MALLOC
  // Eigen's no-malloc flag is process-wide, so check builds run serially.
  const Eigen::Index workers = 1;
  (void)hw;
  (void)num_threads;
#else
  const Eigen::Index workers = std::min<Eigen::Index>(n, num_threads > 0 ? num_threads : hw);
#endif
  if (workers <= 1) {
    for (Eigen::Index i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<Eigen::Index> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&]() {
    for (Eigen::Index i = next++; i < n; i = next++) {
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next = n;  // stop handing out work
      }
    }
  };
  std::vector<std::thread> threads;
  for (Eigen::Index w = 1; w < workers; ++w) threads.emplace_back(work);
  work();
  for (auto& th : threads) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace lgssm
