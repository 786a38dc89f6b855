#include <nanobind/nanobind.h>

#include <Eigen/Core>

namespace nb = nanobind;

void bind_params(nb::module_& m);
void bind_inference(nb::module_& m);
void bind_learn(nb::module_& m);
void bind_continuous(nb::module_& m);
void bind_gibbs(nb::module_& m);
void bind_streaming(nb::module_& m);
void bind_diagnostics(nb::module_& m);
void bind_information(nb::module_& m);

NB_MODULE(_core, m) {
  m.doc() = "lgssm's C++ core (private; use the lgssm package).";
  // The vector instruction sets this build compiled Eigen for (LGSSM_NATIVE).
  m.attr("simd") = Eigen::SimdInstructionSetsInUse();
  m.attr("__version__") = LGSSM_VERSION;
  bind_params(m);
  bind_inference(m);
  bind_learn(m);
  bind_continuous(m);
  bind_gibbs(m);
  bind_streaming(m);
  bind_diagnostics(m);
  bind_information(m);
}
