// One step's innovation in the conventional (covariance) form (private): the
// quantities the diagnostics (diagnostics.cpp) and the score and information
// recursions (information.cpp) are written in.
#pragma once

#include <Eigen/Cholesky>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "lgssm/params.hpp"
#include "linalg.hpp"

namespace lgssm::internal {

// The innovation of one step from the predicted moments (m, P) = (m_{t|t-1}, P_{t|t-1}):
// the observed components o, H_o, the prediction y^_o = H_o m + D_o u + d_o,
// v_o = y_o - y^_o, F = H_o P H_o^T + R_oo and its Cholesky factor, and P H_o^T. `caller` prefixes the error raised
// when F is not numerically positive definite.
class InnovationStep {
 public:
  explicit InnovationStep(std::string caller = "innovations") : caller_(std::move(caller)) {}

  template <class Mean, class Cov>
  void compute(const Params& params, Eigen::Index t, const Eigen::Ref<const Vector>& y,
               const Eigen::Ref<const Vector>& u, const Mean& m, const Cov& p) {
    const auto& e = params.emissions;
    observed.clear();
    for (Eigen::Index i = 0; i < y.size(); ++i)
      if (!std::isnan(y(i))) observed.push_back(i);
    if (observed.empty()) return;
    h_o = e.weights.at(t)(observed, Eigen::all);
    y_hat = h_o * m + e.bias.vec(t)(observed);
    if (u.size() > 0) y_hat.noalias() += e.input_weights.at(t)(observed, Eigen::all) * u;
    v = y(observed) - y_hat;
    ph = p * h_o.transpose();
    f = h_o * ph;
    f += e.cov.at(t)(observed, observed);
    symmetrize(f);
    llt.compute(f);
    if (llt.info() != Eigen::Success)
      throw std::runtime_error(caller_ + ": the innovation covariance of step " + std::to_string(t) +
                               " is not numerically positive definite (the observed components are nearly "
                               "determined by the past); give them larger variances");
  }
  std::vector<Eigen::Index> observed;
  Matrix h_o;
  Vector y_hat, v;
  Matrix ph, f;
  Eigen::LLT<Matrix> llt;

 private:
  std::string caller_;
};

}  // namespace lgssm::internal
