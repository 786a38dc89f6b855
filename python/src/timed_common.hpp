// The continuous-time bindings' sequences (continuous and information).
#pragma once

#include <utility>
#include <vector>

#include "fit_common.hpp"
#include "lgssm/continuous.hpp"

namespace lgssm::bindings {

// The sequences with their times, moved out of the per-sequence lists (not validated).
inline std::vector<TimedSequence> to_timed(std::vector<RowMatrix>& emissions, std::vector<RowMatrix>& inputs,
                                           std::vector<Vector>& times) {
  std::vector<Sequence> plain = to_sequences(emissions, inputs);
  std::vector<TimedSequence> seqs(plain.size());
  for (size_t i = 0; i < seqs.size(); ++i)
    seqs[i] = {std::move(plain[i]), i < times.size() ? std::move(times[i]) : Vector()};
  return seqs;
}

}  // namespace lgssm::bindings
