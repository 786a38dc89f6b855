/// @file
/// The uncertainty of fitted parameters: the exact score and Hessian of
/// log p(y) with respect to the free parameters, the outer product of the
/// per-step scores (OPG) and Harvey's information matrix, from forward
/// sensitivity recursions of the Kalman filter; and covariances from them.
///
/// The free parameters theta are on the user's scale, in the order of the
/// trainable parameters (initial.mean, initial.cov, dynamics.weights, .bias,
/// .input_weights, .cov, then the emissions' likewise; frozen ones excluded):
///   - a constrained parameter M (a mean, weight, bias, input weight or
///     covariance matrix), vec(M) = fixed + design beta (props.hpp): its free
///     values beta;
///   - any other of those: its entries, row by row;
///   - an unconstrained full covariance: its lower triangle row by row, (0,0), (1,0), (1,1),
///     (2,0), ...; a diagonal one its diagonal; a scalar one its one variance.
/// Every model matrix is then affine in theta, so d(matrix)/d theta_k is a
/// constant matrix and every second derivative of a model matrix is zero.
/// The count is num_free_parameters (diagnostics.hpp).
#pragma once

#include <string>
#include <vector>

#include "lgssm/continuous.hpp"
#include "lgssm/params.hpp"
#include "lgssm/props.hpp"

namespace lgssm {

/// The free parameters theta of `params` under `props` (layout in the file
/// comment). A constrained parameter's beta is design^+ (vec(M) - fixed).
/// Trainable parameters must be time-invariant (throws lgssm::invalid_argument).
Vector free_parameters(const Params& params, const ParamProps& props);

/// `base` with the free parameters set to `theta` (the inverse of
/// free_parameters; a covariance gets both triangles); frozen parameters are
/// kept from `base`. No definiteness check: the result may be invalid.
Params with_free_parameters(const Vector& theta, const Params& base, const ParamProps& props);

/// The score and information of log p(y) at `params`, summed over sequences.
struct InformationResult {
  Vector free_parameters;  ///< (num_params,): theta
  double marginal_loglik = 0.0;
  Vector score;  ///< (num_params,): d log p(y) / d theta
  /// (num_params, num_params): d^2 log p(y) / d theta d theta^T, exact (empty
  /// when not requested)
  Matrix hessian;
  /// (num_params, num_params): sum over sequences and steps of s_t s_t^T, s_t
  /// the score of log p(y_t | y_{0:t-1}) (Berndt, Hall, Hall & Hausman 1974)
  Matrix opg;
  /// (num_params, num_params): Harvey's information matrix (1989, eq. 3.4.69),
  ///   sum_t 1/2 tr(S_t^{-1} dS_t/dtheta_i S_t^{-1} dS_t/dtheta_j) + dv_t/dtheta_i^T S_t^{-1} dv_t/dtheta_j,
  /// what statsmodels calls the observed information matrix ('oim'), here
  /// with exact derivatives
  Matrix harvey;
};

/// The exact score, Hessian, OPG and Harvey's information of log p(y) with
/// respect to the free parameters theta (file comment), summed over `seqs`.
///
/// Forward sensitivities of the Kalman filter in covariance form (Harvey 1989,
/// "Forecasting, Structural Time Series Models and the Kalman Filter",
/// Sec. 3.4.5-3.4.6, differentiated once more for the Hessian). Per step t,
/// with the observed components o, a = m_{t|t-1}, P = P_{t|t-1},
/// v = y_o - H_o a - D_o u - d_o, S = H_o P H_o^T + R_oo (Cholesky; an error
/// naming the step when not positive definite), w = S^{-1} v, G = P H_o^T,
/// K = G S^{-1}, and a dot for d/d theta_k (two indices for d^2/d theta_k d theta_l):
///   v_k = -H_o a_k - H_o,k a - D_o,k u - d_o,k,
///   S_k = H_o P_k H_o^T + H_o,k G + G^T H_o,k^T + R_oo,k,
///   score_t,k = -1/2 tr((S^{-1} - w w^T) S_k) - w^T v_k                  (Harvey, Sec. 3.4.5),
///   e_k = v_k - S_k w,  U_k = P_k H_o^T + P H_o,k^T - K S_k,
///   m_k = a_k + U_k w + K v_k,   Pf_k = P_k - G_k K^T - K G_k^T + K S_k K^T,
/// and the second order
///   v_kl = -H_o a_kl - H_o,k a_l - H_o,l a_k,
///   S_kl = H_o P_kl H_o^T + Z + Z^T,  Z = H_o,k P_l H_o^T + H_o,l P_k H_o^T + H_o,k P H_o,l^T,
///   hess_t,kl = 1/2 tr(S^{-1} S_k S^{-1} S_l) - e_l^T S^{-1} e_k - 1/2 tr((S^{-1} - w w^T) S_kl) - w^T v_kl,
///   G_kl = P_kl H_o^T + P_k H_o,l^T + P_l H_o,k^T,
///   m_kl = a_kl + G_kl w + K (v_kl - S_kl w) + U_k S^{-1} e_l + U_l S^{-1} e_k,
///   Pf_kl = P_kl - (W + W^T) + K S_kl K^T,  W = G_kl K^T + U_k S^{-1} U_l^T,
/// with m = m_{t|t}, Pf = P_{t|t} (a step with nothing observed passes the
/// sensitivities through). The prediction a' = F m + B u + b, P' = F Pf F^T + Q:
///   a'_k = F m_k + F_k m + B_k u + b_k,  P'_k = F Pf_k F^T + F_k Pf F^T + F Pf F_k^T + Q_k,
///   a'_kl = F m_kl + F_k m_l + F_l m_k,  P'_kl = F Pf_kl F^T + Y + Y^T,
///   Y = F_k Pf_l F^T + F_l Pf_k F^T + F_k Pf F_l^T,
/// starting from a_k = initial.mean_k, P_k = initial.cov_k, second derivatives 0
/// (a known initial distribution: a diffuse one, params.hpp, is refused).
/// Missing components are left out exactly (only o enters each step); frozen
/// parameters may vary per step. Cost per step O(K n^2 (n + p)) for the score,
/// OPG and Harvey's matrix, O(K^2 n^2 (n + p)) with the Hessian, K = num_params;
/// memory O(K^2 n^2). The moments themselves come from the library's Kalman
/// filter (kalman.hpp).
/// @param params the model (validated)
/// @param props the trainable parameters (trainable ones time-invariant)
/// @param seqs the sequences (validated)
/// @param with_hessian whether to compute the Hessian (the only O(K^2) part)
/// @param num_threads threads over sequences (0: all)
/// @return theta, log p(y), the score, the Hessian, OPG and Harvey's matrix
InformationResult information(const Params& params, const ParamProps& props, const std::vector<Sequence>& seqs,
                              bool with_hessian = true, int num_threads = 0);

/// The same for a continuous-time model (continuous.hpp) observed at each
/// sequence's times. theta: the trainable initial-state parameters, then the
/// drift F (its entries, row by row), then the diffusion covariance Q_c (by its
/// structure: the lower triangle row by row, the diagonal, or the one
/// variance), then the emissions' parameters, each as in the file comment.
/// The model is the discrete-time one of its observation times (to_discrete),
/// so the recursions are those above with the transition (A_s, Sigma_s) of
/// each gap s, which moves nonlinearly with F and Q_c: its first and second
/// derivatives (A_s,k, Sigma_s,k, A_s,kl, Sigma_s,kl) are those of the computed
/// discretization, from the same scaling and squaring on hyper-dual numbers
/// (src/vanloan.hpp, transition_derivatives; per distinct gap and pair of
/// dynamics parameters), and the second-order prediction gains the terms
///   a'_kl += A_kl m,   P'_kl += A_kl Pf A^T + A Pf A_kl^T + Sigma_kl.
/// Throws lgssm::invalid_argument as the fits do for invalid parameters,
/// properties, data or times.
InformationResult information(const ContinuousParams& params, const ContinuousProps& props,
                              const std::vector<TimedSequence>& seqs, bool with_hessian = true, int num_threads = 0);

/// A parameter covariance from an information matrix A (symmetric, positive
/// definite at a regular maximum): A^{-1}, or with `meat` B the sandwich
/// A^{-1} B A^{-1} (Huber 1967; White 1982), by Cholesky solves of A, never an
/// explicit inverse of a matrix that may be singular. A is first checked by
/// its eigen-decomposition: when its smallest eigenvalue is <= K eps times its
/// largest (or negative: not a maximum), throws lgssm::invalid_argument naming
/// the parameter (from `names`, else its index) that weighs most in that
/// eigenvector, the direction the data do not determine (an unidentified
/// parameter).
/// @param information A, (K, K)
/// @param meat B, (K, K), or null
/// @param names the parameters' labels for the message (empty: indices)
/// @return the covariance, (K, K), symmetric
Matrix information_covariance(const Matrix& information, const Matrix* meat = nullptr,
                              const std::vector<std::string>& names = {});

}  // namespace lgssm
