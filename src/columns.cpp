// Batches of sequences as blocks of columns (unchecked.hpp).
#include <algorithm>
#include <cmath>
#include <functional>
#include <unordered_map>

#include "unchecked.hpp"

namespace lgssm::internal {

namespace {
// The widest block of columns: wide enough that the shared covariance
// recursion (O(n^3) per step, once per block) is small against the block's
// mean recursions (O(n^2 + p n) per step and column), narrow enough that a
// block's means stay in cache and that a batch has blocks for every thread.
constexpr size_t kMaxWidth = 64;

// What the covariance recursion of a sequence depends on besides the
// parameters is its length and which entries are missing: a hash of both, and
// the exact comparison.
size_t pattern_hash(const Sequence& seq) {
  const RowMatrix& y = seq.emissions;
  size_t h = std::hash<Eigen::Index>()(y.rows());
  for (Eigen::Index i = 0; i < y.size(); ++i)
    if (std::isnan(y.data()[i])) h = h * 1000003u ^ static_cast<size_t>(i);
  return h;
}
bool same_pattern(const Sequence& a, const Sequence& b) {
  const RowMatrix &x = a.emissions, &y = b.emissions;
  if (x.rows() != y.rows()) return false;
  for (Eigen::Index i = 0; i < x.size(); ++i)
    if (std::isnan(x.data()[i]) != std::isnan(y.data()[i])) return false;
  return true;
}
}  // namespace

std::vector<std::vector<size_t>> column_blocks(const Params& params, const std::vector<Sequence>& seqs,
                                               const std::vector<size_t>& indices) {
  std::vector<std::vector<size_t>> groups;
  if (params.initial.is_diffuse()) {
    for (size_t i : indices) groups.push_back({i});
    return groups;
  }
  std::unordered_multimap<size_t, size_t> position;  // pattern hash -> group
  for (size_t i : indices) {
    const size_t h = pattern_hash(seqs[i]);
    const auto [first, last] = position.equal_range(h);
    const auto it =
        std::find_if(first, last, [&](const auto& e) { return same_pattern(seqs[groups[e.second][0]], seqs[i]); });
    if (it != last) {
      groups[it->second].push_back(i);
    } else {
      position.emplace(h, groups.size());
      groups.push_back({i});
    }
  }
  std::vector<std::vector<size_t>> blocks;
  for (const auto& g : groups) {  // equal blocks of at most kMaxWidth columns
    const size_t count = (g.size() + kMaxWidth - 1) / kMaxWidth;
    for (size_t b = 0, first = 0; b < count; ++b) {
      const size_t last = g.size() * (b + 1) / count;
      blocks.emplace_back(g.begin() + first, g.begin() + last);
      first = last;
    }
  }
  return blocks;
}

Sequence interleave(const std::vector<Sequence>& seqs, const std::vector<size_t>& block) {
  const Sequence& first = seqs[block.front()];
  const Eigen::Index width = static_cast<Eigen::Index>(block.size()), steps = first.num_timesteps();
  Sequence out{RowMatrix(steps * width, first.emissions.cols()), RowMatrix(0, 0)};
  const bool inputs = first.inputs.size() > 0;
  if (inputs) out.inputs.resize(steps * width, first.inputs.cols());
  const auto copy_rows = [&](const RowMatrix& from, RowMatrix& to, Eigen::Index j) {
    const Eigen::Index d = from.cols();
    for (Eigen::Index t = 0; t < steps; ++t) std::copy_n(from.data() + t * d, d, to.data() + (t * width + j) * d);
  };
  for (Eigen::Index j = 0; j < width; ++j) {
    const Sequence& s = seqs[block[j]];
    copy_rows(s.emissions, out.emissions, j);
    if (inputs) copy_rows(s.inputs, out.inputs, j);
  }
  return out;
}

}  // namespace lgssm::internal
