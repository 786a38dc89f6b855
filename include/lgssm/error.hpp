/// @file
/// Exception types of lgssm.
///
/// Bad input throws lgssm::invalid_argument, whose message names the argument,
/// what was expected and what came. Numerical failure that the caller can act
/// on throws std::runtime_error with advice. Python sees ValueError and
/// RuntimeError respectively.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace lgssm {

/// Bad input: the message names the argument, what was expected and what came.
class invalid_argument : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

/// A number as printed in messages ("-1", "0.25", "1e-12").
std::string number(double x);

namespace internal {

/// Builds "<argument>: expected <expected>, got <got>" and throws it.
[[noreturn]] inline void throw_invalid(const std::string& argument, const std::string& expected,
                                       const std::string& got) {
  throw invalid_argument(argument + ": expected " + expected + ", got " + got);
}

/// Formats a shape as "(a, b, c)".
template <class... Dims>
std::string shape_str(Dims... dims) {
  std::ostringstream out;
  out << '(';
  const char* sep = "";
  ((out << sep << dims, sep = ", "), ...);
  out << ')';
  return out.str();
}

}  // namespace internal
}  // namespace lgssm
