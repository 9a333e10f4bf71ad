#pragma once
/// @file mlp.hpp
/// Multilayer perceptron (dense layers, ReLU hidden units, softmax cross-entropy) with an exact,
/// batched back-propagated gradient.

#include <climits>
#include <span>
#include <string>
#include <utility>
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

/// Multilayer perceptron: `sizes = {d, h_1, ..., h_{L-1}, C}`, ReLU after every hidden layer,
/// softmax cross-entropy on the C outputs.
/**
 * Layer l (1-based, l = 1..L with L = sizes.size() - 1) computes z_l = W_l a_{l-1} + b_l with
 * a_0 = x and a_l = max(z_l, 0) for l < L; z_L are the logits. Two sizes ({d, C}) give softmax
 * regression. Parameters are one flat vector: for each layer, segment "fc<l>.weight", W_l
 * (sizes[l] x sizes[l-1]) stored row-major (PyTorch order, so `weight(params, l - 1)` maps it
 * as an Eigen matrix without copying), then segment "fc<l>.bias", b_l.
 *
 * The passes are batched GEMMs over the whole mini-batch (3L - 1 per gradient, in chunks of at
 * most 1024 columns), with a log-sum-exp shifted softmax. Scratch memory,
 * (sum of widths after the input + widest hidden layer) x min(m, 1024) scalars, is a per-thread
 * buffer reused across calls, so every const member may be called concurrently from several
 * threads; the methods never start threads themselves (Eigen's GEMM may, under OpenMP, as
 * configured by the caller). The ReLU derivative at 0 is taken as 0.
 * Results are bit-identical for identical inputs and Eigen thread count; Eigen's multi-threaded
 * GEMM blocks differently, so bits can change with `Eigen::nbThreads()` (set it to 1 for results
 * independent of the thread count).
 *
 * Example: `fedpp::Mlp model({784, 200, 10});` (S defaults to float).
 * @tparam S scalar type of parameters and inputs (float or double).
 */
template <typename S = float>
class Mlp {
 public:
  /// Scalar type of parameters and inputs.
  using Scalar = S;
  /// Mutable row-major view of one weight matrix.
  using WeightMap = Eigen::Map<detail::RowMajorMatrix<S>>;
  /// Read-only row-major view of one weight matrix.
  using ConstWeightMap = Eigen::Map<const detail::RowMajorMatrix<S>>;

  /// A network with the given layer sizes, inputs first and classes last (e.g. {784, 200, 10}).
  /**
   * @throws InvalidArgument unless there are at least 2 sizes, all > 0, and the last (number of
   *         classes) is in [2, INT_MAX].
   */
  explicit Mlp(std::vector<Index> sizes) : net_("fedpp::Mlp", checked_sizes(std::move(sizes))) {
    for (Index l = 1; l <= net_.num_layers(); ++l) {
      const std::string prefix = "fc" + std::to_string(l);
      layout_.add(prefix + ".weight", {net_.width(l), net_.width(l - 1)});
      layout_.add(prefix + ".bias", {net_.width(l)});
    }
  }

  /// Total number of parameters, sum over layers of sizes[l] * (sizes[l-1] + 1).
  [[nodiscard]] Index num_params() const noexcept { return net_.num_params(); }
  /// Number of input features (sizes.front()).
  [[nodiscard]] Index input_dim() const noexcept { return net_.width(0); }
  /// Number of classes (sizes.back()).
  [[nodiscard]] int num_classes() const noexcept { return static_cast<int>(net_.width(net_.num_layers())); }
  /// Number of dense layers, sizes.size() - 1.
  [[nodiscard]] Index num_layers() const noexcept { return net_.num_layers(); }
  /// The layer sizes given to the constructor.
  [[nodiscard]] const std::vector<Index>& sizes() const noexcept { return net_.widths(); }
  /// Segments "fc1.weight" {h_1, d}, "fc1.bias" {h_1}, "fc2.weight", ... in storage order.
  [[nodiscard]] const ParameterLayout& layout() const noexcept { return layout_; }

  /// Resizes `params` to num_params() and draws initial values from `rng`.
  /**
   * Weights feeding a ReLU are Kaiming/He-uniform, U(-a, a) with a = sqrt(6 / fan_in)
   * (He et al., 2015, arXiv:1502.01852); the output layer is Glorot/Xavier-uniform,
   * a = sqrt(6 / (fan_in + C)) (Glorot & Bengio, 2010), which keeps the initial logits O(1).
   * One `rng.uniform()` per weight, layer by layer in flat order; biases are zero. The values
   * are the double draws rounded to S, so float and double models start from the same point.
   */
  void init_params(Vector<S>& params, Rng& rng) const { net_.init(params, rng); }

  /// Mean cross-entropy over the batch; writes its gradient (back-propagation) into `grad`.
  /**
   * @param params num_params() parameters.
   * @param X input_dim() x m inputs, one column per sample.
   * @param y m labels in [0, num_classes()).
   * @param grad num_params() scalars, fully overwritten with the gradient of the returned mean;
   *        must not overlap `params`.
   * @return (1/m) sum_i [log sum_k exp(z_ik) - z_i,y_i] over the logits z_i; an empty batch
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

  /// Read-only view of the weights of layer `layer` (0-based: layer 0 is segment "fc1.weight").
  /** @throws InvalidArgument on a bad layer index; DimensionError unless params.size() == num_params(). */
  [[nodiscard]] ConstWeightMap weight(std::span<const S> params, Index layer) const {
    check_layer(layer, "weight");
    net_.check_params(params, "weight", "params");
    return net_.weight(params, layer + 1);
  }
  /// Mutable view of the weights of layer `layer` (0-based).
  [[nodiscard]] WeightMap weight(std::span<S> params, Index layer) const {
    check_layer(layer, "weight");
    net_.check_params(std::span<const S>(params), "weight", "params");
    return net_.weight(params, layer + 1);
  }
  /// Read-only view of the biases of layer `layer` (0-based: layer 0 is segment "fc1.bias").
  [[nodiscard]] ConstVectorMap<S> bias(std::span<const S> params, Index layer) const {
    check_layer(layer, "bias");
    net_.check_params(params, "bias", "params");
    return net_.bias(params, layer + 1);
  }
  /// Mutable view of the biases of layer `layer` (0-based).
  [[nodiscard]] VectorMap<S> bias(std::span<S> params, Index layer) const {
    check_layer(layer, "bias");
    net_.check_params(std::span<const S>(params), "bias", "params");
    return net_.bias(params, layer + 1);
  }

 private:
  static std::vector<Index> checked_sizes(std::vector<Index> sizes) {
    constexpr const char* where = "fedpp::Mlp";
    require(sizes.size() >= 2, where, "sizes must have at least 2 entries (inputs, ..., classes)", sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i)
      require(sizes[i] > 0, where, "sizes[" + std::to_string(i) + "] must be > 0", sizes[i]);
    require(sizes.back() >= 2 && sizes.back() <= INT_MAX, where,
            "sizes.back() (num_classes) must be in [2, INT_MAX]", sizes.back());
    return sizes;
  }

  void check_layer(Index layer, std::string_view method) const {
    if (layer < 0 || layer >= net_.num_layers())
      fail(net_.where(method), "layer must be in [0, " + std::to_string(net_.num_layers()) + ")", layer);
  }

  detail::DenseStack<S> net_;
  ParameterLayout layout_;
};

static_assert(Model<Mlp<float>>);
static_assert(Model<Mlp<double>>);

}  // namespace fedpp
