#pragma once
/// @file softmax_cross_entropy.hpp
/// Numerically stable softmax cross-entropy over a batch of logit columns (private helpers of the
/// reference models).

#include <cmath>
#include <span>

#include "fedpp/core/dataset.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp::detail {

/// Mutable column-major view of a scratch block (logits, activations).
template <typename S>
using ScratchMap = Eigen::Map<Matrix<S>>;

/// Turns logits into the scaled gradient of the summed cross-entropy, in place; returns the loss sum.
/**
 * For each column j of `Z` (C x m logits) with label `y[j]`, computes the loss
 * `log(sum_k exp(z_k)) - z_y` with the log-sum-exp shift by the column maximum, and replaces the
 * column by `scale * (softmax(z) - e_y)`, the gradient of `scale * loss` with respect to `z`.
 * Exponentials are computed in `S`; the per-sample logarithms and the sum in double.
 */
template <typename S>
double softmax_cross_entropy_backward(ScratchMap<S> Z, std::span<const Label> y, S scale) {
  double loss_sum = 0.0;
  for (Index j = 0; j < Z.cols(); ++j) {
    auto z = Z.col(j);
    const auto label = static_cast<Index>(y[static_cast<std::size_t>(j)]);
    const S shift = z.maxCoeff();
    const S z_label = z(label) - shift;
    z.array() = (z.array() - shift).exp();
    const S total = z.sum();  // >= 1: the maximum contributes exp(0)
    loss_sum += std::log(static_cast<double>(total)) - static_cast<double>(z_label);
    z *= scale / total;
    z(label) -= scale;
  }
  return loss_sum;
}

/// Adds the cross-entropy losses and correct predictions of the logit columns of `Z` to `out`.
/**
 * The prediction is the arg-max of the logits, ties going to the lowest class index. `Z` is
 * left unchanged; `out.count` is not touched (the caller counts samples).
 */
template <typename S, typename Derived>
void softmax_cross_entropy_evaluate(const Eigen::MatrixBase<Derived>& Z, std::span<const Label> y, EvalResult& out) {
  const Index classes = Z.rows();
  for (Index j = 0; j < Z.cols(); ++j) {
    const auto z = Z.col(j);
    Index best = 0;
    S shift = z(0);
    for (Index k = 1; k < classes; ++k) {
      if (z(k) > shift) {
        shift = z(k);
        best = k;
      }
    }
    const auto label = static_cast<Index>(y[static_cast<std::size_t>(j)]);
    const S total = (z.array() - shift).exp().sum();
    out.loss_sum += std::log(static_cast<double>(total)) - static_cast<double>(z(label) - shift);
    if (best == label) ++out.correct;
  }
}

}  // namespace fedpp::detail
