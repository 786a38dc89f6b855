/// @file
/// Parallel loops over independent items (sequences, gaps, minibatch members),
/// on a pool of worker threads that persists across calls.
#pragma once

#include <Eigen/Core>
#include <functional>
#include <vector>

namespace lgssm {

/// Applies fn(i) for i in [0, n) on up to `num_threads` threads (0: all
/// hardware threads), the calling thread included; returns when every call has
/// returned. The first exception thrown by any call is rethrown (the remaining
/// indices are then skipped). A call made from inside fn runs serially on the
/// calling thread. Items are handed out in index order, so each call's work is
/// independent of the thread count; a result that sums over items must be
/// summed by the caller in index order to be independent of it too.
void parallel_for(Eigen::Index n, const std::function<void(Eigen::Index)>& fn, int num_threads = 0);

/// fn(item) for every item, in parallel: one result per item, in order.
template <class T, class Fn>
auto parallel_map(const std::vector<T>& items, Fn fn, int num_threads = 0) {
  std::vector<decltype(fn(items.front()))> out(items.size());
  parallel_for(static_cast<Eigen::Index>(items.size()), [&](Eigen::Index i) { out[i] = fn(items[i]); }, num_threads);
  return out;
}

}  // namespace lgssm
