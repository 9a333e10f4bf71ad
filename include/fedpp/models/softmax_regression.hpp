#pragma once
/// @file softmax_regression.hpp
/// Multinomial logistic (softmax) regression with an exact, batched cross-entropy gradient.

#include <span>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/dataset.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/layout.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/models/detail/dense_stack.hpp"

namespace fedpp {

/// Multinomial logistic regression: p(y | x) = softmax(W x + b), trained on mean cross-entropy.
/**
 * Parameters (flat, `num_params() = C * d + C`): segment "weight", W (C x d) stored row-major,
 * so element (k, j) is at offset `k * d + j` and `weight(params)` maps the span as an Eigen
 * matrix without copying; then segment "bias", b (C).
 *
 * Inputs are d x m matrices with one column per sample. The forward and backward passes are one
 * GEMM each over the whole batch (in chunks of at most 1024 columns), with a log-sum-exp shifted
 * softmax. Scratch memory (at most 2 C x min(m, 1024) scalars) is a per-thread buffer reused across calls,
 * so every const member may be called concurrently from several threads; the methods never start
 * threads themselves (Eigen's GEMM may, under OpenMP, as configured by the caller).
 * Results are bit-identical for identical inputs and Eigen thread count; Eigen's multi-threaded
 * GEMM blocks differently, so bits can change with `Eigen::nbThreads()` (set it to 1 for results
 * independent of the thread count).
 *
 * Equivalent to `Mlp<S>({d, C})`: same layout sizes, initialisation and arithmetic.
 * @tparam S scalar type of parameters and inputs (float or double).
 */
template <typename S = float>
class SoftmaxRegression {
 public:
  /// Scalar type of parameters and inputs.
  using Scalar = S;
  /// Mutable row-major view of W (C x d).
  using WeightMap = Eigen::Map<detail::RowMajorMatrix<S>>;
  /// Read-only row-major view of W (C x d).
  using ConstWeightMap = Eigen::Map<const detail::RowMajorMatrix<S>>;

  /// A model for `input_dim` features and `num_classes` classes.
  /** @throws InvalidArgument unless input_dim > 0 and num_classes >= 2. */
  SoftmaxRegression(Index input_dim, int num_classes)
      : net_("fedpp::SoftmaxRegression", checked_widths(input_dim, num_classes)) {
    layout_.add("weight", {net_.width(1), net_.width(0)});
    layout_.add("bias", {net_.width(1)});
  }

  /// Number of parameters, C * d + C.
  [[nodiscard]] Index num_params() const noexcept { return net_.num_params(); }
  /// Number of input features d.
  [[nodiscard]] Index input_dim() const noexcept { return net_.width(0); }
  /// Number of classes C.
  [[nodiscard]] int num_classes() const noexcept { return static_cast<int>(net_.width(1)); }
  /// Segments "weight" {C, d} (row-major) and "bias" {C}.
  [[nodiscard]] const ParameterLayout& layout() const noexcept { return layout_; }

  /// Resizes `params` to num_params() and draws initial values from `rng`.
  /**
   * W is Glorot/Xavier-uniform, U(-a, a) with a = sqrt(6 / (d + C)) (Glorot & Bengio, 2010),
   * one `rng.uniform()` per weight in flat order; b is zero. Zero would also do for this convex
   * model, but random weights keep the initialisation identical to `Mlp<S>({d, C})` and make
   * clients' seeds matter. The values are the double draws rounded to S.
   */
  void init_params(Vector<S>& params, Rng& rng) const { net_.init(params, rng); }

  /// Mean cross-entropy over the batch; writes its gradient into `grad`.
  /**
   * @param params num_params() parameters.
   * @param X d x m inputs, one column per sample.
   * @param y m labels in [0, C).
   * @param grad num_params() scalars, fully overwritten with the gradient of the returned mean;
   *        must not overlap `params`.
   * @return (1/m) sum_i [log sum_k exp(z_ik) - z_i,y_i] with z_i = W x_i + b; an empty batch
   *         (m = 0) gives 0 and a zero gradient.
   * @throws DimensionError on mismatched sizes; InvalidArgument on labels out of range or overlap.
   */
  double loss_and_gradient(std::span<const S> params, const Eigen::Ref<const Matrix<S>>& X,
                           std::span<const Label> y, std::span<S> grad) const {
    return net_.loss_and_gradient(params, X, y, grad);
  }

  /// Sum of per-sample cross-entropies, number of correct arg-max predictions and sample count.
  /**
   * The prediction is the class with the largest logit, ties going to the lowest index. An empty
   * batch gives {0, 0, 0}.
   * @throws DimensionError on mismatched sizes; InvalidArgument on labels out of range.
   */
  [[nodiscard]] EvalResult evaluate(std::span<const S> params, const Eigen::Ref<const Matrix<S>>& X,
                                    std::span<const Label> y) const {
    return net_.evaluate(params, X, y);
  }

  /// Read-only view of W (C x d) inside `params`.
  /** @throws DimensionError unless params.size() == num_params(). */
  [[nodiscard]] ConstWeightMap weight(std::span<const S> params) const {
    net_.check_params(params, "weight", "params");
    return net_.weight(params, 1);
  }
  /// Mutable view of W (C x d) inside `params`.
  [[nodiscard]] WeightMap weight(std::span<S> params) const {
    net_.check_params(std::span<const S>(params), "weight", "params");
    return net_.weight(params, 1);
  }
  /// Read-only view of b (C) inside `params`.
  [[nodiscard]] ConstVectorMap<S> bias(std::span<const S> params) const {
    net_.check_params(params, "bias", "params");
    return net_.bias(params, 1);
  }
  /// Mutable view of b (C) inside `params`.
  [[nodiscard]] VectorMap<S> bias(std::span<S> params) const {
    net_.check_params(std::span<const S>(params), "bias", "params");
    return net_.bias(params, 1);
  }

 private:
  static std::vector<Index> checked_widths(Index input_dim, int num_classes) {
    require(input_dim > 0, "fedpp::SoftmaxRegression", "input_dim must be > 0", input_dim);
    require(num_classes >= 2, "fedpp::SoftmaxRegression", "num_classes must be >= 2", num_classes);
    return {input_dim, static_cast<Index>(num_classes)};
  }

  detail::DenseStack<S> net_;
  ParameterLayout layout_;
};

static_assert(Model<SoftmaxRegression<float>>);
static_assert(Model<SoftmaxRegression<double>>);

}  // namespace fedpp
