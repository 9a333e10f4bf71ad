#pragma once
/// @file dense_stack.hpp
/// A stack of dense layers (ReLU between layers, softmax cross-entropy on top) over one flat
/// parameter vector: the shared engine of SoftmaxRegression and Mlp (private).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fedpp/core/config.hpp"
#include "fedpp/core/dataset.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"
#include "fedpp/models/detail/softmax_cross_entropy.hpp"

namespace fedpp::detail {

/// Dense row-major matrix (the storage order of weight segments).
template <typename S>
using RowMajorMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// Largest number of batch columns processed at once; bounds the scratch memory per thread.
inline constexpr Index model_max_chunk_cols = 1024;

/// Per-thread scratch buffer of at least `n` scalars (grows, never shrinks; contents unspecified).
/**
 * One buffer per thread and scalar type, shared by every model object: calls on different
 * threads never share scratch, and a call never re-enters another on the same thread.
 */
template <typename S>
S* model_workspace(Index n) {
  thread_local Vector<S> buffer;
  if (buffer.size() < n) buffer.resize(n);
  return buffer.data();
}

/// a[i] = (a[i] > 0 ? b[i] : 0): the ReLU derivative mask applied in place (a holds ReLU outputs).
/// A plain loop with an unconditional load, so that the compiler vectorises it (Eigen's select does not).
template <typename S>
void relu_backward(S* FEDPP_RESTRICT a, const S* FEDPP_RESTRICT b, Index n) noexcept {
  FEDPP_OMP_SIMD
  for (Index i = 0; i < n; ++i) {
    const S v = b[i];
    a[i] = a[i] > S(0) ? v : S(0);
  }
}

/// Layers l = 1..L with widths n_0 (inputs) .. n_L (classes); layer l holds W_l (n_l x n_{l-1},
/// row-major) followed by b_l (n_l) in the flat vector. Hidden outputs pass through ReLU.
template <typename S>
class DenseStack {
 public:
  /// Weight view (row-major, n_l x n_{l-1}) into a flat parameter span.
  using WeightMap = Eigen::Map<RowMajorMatrix<S>>;
  /// Read-only weight view.
  using ConstWeightMap = Eigen::Map<const RowMajorMatrix<S>>;

  /// Geometry of the stack; `name` (a string literal, e.g. "fedpp::Mlp") prefixes error messages.
  /// The widths must already be validated (positive, at least two, last >= 2).
  DenseStack(std::string_view name, std::vector<Index> widths) : name_(name), widths_(std::move(widths)) {
    const Index L = num_layers();
    weight_offsets_.resize(static_cast<std::size_t>(L) + 1);
    activation_offsets_.resize(static_cast<std::size_t>(L) + 1);
    constexpr Index max_index = std::numeric_limits<Index>::max();
    for (Index l = 1; l <= L; ++l) {
      const Index rows = width(l);
      const Index cols = width(l - 1);
      if (rows > (max_index - num_params_) / (cols + 1))
        fail(name_, "the parameter count overflows Index at layer", l);
      weight_offsets_[static_cast<std::size_t>(l)] = num_params_;
      num_params_ += rows * cols + rows;
      activation_offsets_[static_cast<std::size_t>(l)] = sum_outputs_;
      sum_outputs_ += rows;
      max_output_ = std::max(max_output_, rows);
      if (l < L) max_hidden_ = std::max(max_hidden_, rows);
    }
  }

  /// Number of dense layers L.
  [[nodiscard]] Index num_layers() const noexcept { return static_cast<Index>(widths_.size()) - 1; }
  /// Width n_l (l = 0 is the input).
  [[nodiscard]] Index width(Index l) const noexcept { return widths_[static_cast<std::size_t>(l)]; }
  /// All widths n_0..n_L.
  [[nodiscard]] const std::vector<Index>& widths() const noexcept { return widths_; }
  /// Total number of parameters.
  [[nodiscard]] Index num_params() const noexcept { return num_params_; }
  /// Offset of W_l (l in 1..L) in the flat vector.
  [[nodiscard]] Index weight_offset(Index l) const noexcept { return weight_offsets_[static_cast<std::size_t>(l)]; }
  /// Offset of b_l (l in 1..L) in the flat vector.
  [[nodiscard]] Index bias_offset(Index l) const noexcept { return weight_offset(l) + width(l) * width(l - 1); }

  /// Read-only view of W_l (l in 1..L); `p` must hold num_params() scalars.
  [[nodiscard]] ConstWeightMap weight(std::span<const S> p, Index l) const noexcept {
    return ConstWeightMap(p.data() + weight_offset(l), width(l), width(l - 1));
  }
  /// Mutable view of W_l.
  [[nodiscard]] WeightMap weight(std::span<S> p, Index l) const noexcept {
    return WeightMap(p.data() + weight_offset(l), width(l), width(l - 1));
  }
  /// Read-only view of b_l.
  [[nodiscard]] ConstVectorMap<S> bias(std::span<const S> p, Index l) const noexcept {
    return ConstVectorMap<S>(p.data() + bias_offset(l), width(l));
  }
  /// Mutable view of b_l.
  [[nodiscard]] VectorMap<S> bias(std::span<S> p, Index l) const noexcept {
    return VectorMap<S>(p.data() + bias_offset(l), width(l));
  }

  /// Resizes `p` and fills it: Kaiming-uniform weights before ReLU, Glorot-uniform for the last
  /// layer, zero biases; weights drawn in flat order, one `rng.uniform()` each.
  void init(Vector<S>& p, Rng& rng) const {
    p.resize(num_params_);
    const Index L = num_layers();
    for (Index l = 1; l <= L; ++l) {
      const auto fan_in = static_cast<double>(width(l - 1));
      const auto fan_out = static_cast<double>(width(l));
      const double limit = l < L ? std::sqrt(6.0 / fan_in) : std::sqrt(6.0 / (fan_in + fan_out));
      const Index first = weight_offset(l);
      const Index last = bias_offset(l);
      for (Index i = first; i < last; ++i) p(i) = static_cast<S>((2.0 * rng.uniform() - 1.0) * limit);
      p.segment(last, width(l)).setZero();
    }
  }

  /// Throws DimensionError unless `p` holds num_params() scalars (`what` names the argument).
  void check_params(std::span<const S> p, std::string_view method, std::string_view what) const {
    if (static_cast<Index>(p.size()) != num_params_)
      fail<DimensionError>(where(method),
                           std::string(what) + " must have num_params() = " + std::to_string(num_params_) + " entries",
                           p.size());
  }

  /// Throws DimensionError/InvalidArgument unless X has n_0 rows, y one label per column, labels in range.
  void check_batch(const Eigen::Ref<const Matrix<S>>& X, std::span<const Label> y, std::string_view method) const {
    if (X.rows() != width(0))
      fail<DimensionError>(where(method), "X must have input_dim() = " + std::to_string(width(0)) + " rows", X.rows());
    if (static_cast<Index>(y.size()) != X.cols())
      fail<DimensionError>(where(method),
                           "y must have one label per column of X (" + std::to_string(X.cols()) + " columns)", y.size());
    const Index classes = width(num_layers());
    for (std::size_t j = 0; j < y.size(); ++j)
      if (y[j] < 0 || y[j] >= classes)
        fail(where(method), "y[" + std::to_string(j) + "] must be in [0, " + std::to_string(classes) + ")", y[j]);
  }

  /// Mean cross-entropy over the batch; writes its gradient into `g` (see Mlp::loss_and_gradient).
  double loss_and_gradient(std::span<const S> p, const Eigen::Ref<const Matrix<S>>& X, std::span<const Label> y,
                           std::span<S> g) const {
    constexpr std::string_view method = "loss_and_gradient";
    check_params(p, method, "params");
    check_params(std::span<const S>(g.data(), g.size()), method, "grad");
    check_batch(X, y, method);
    const auto p_begin = reinterpret_cast<std::uintptr_t>(p.data());
    const auto g_begin = reinterpret_cast<std::uintptr_t>(g.data());
    const auto bytes = static_cast<std::uintptr_t>(num_params_) * sizeof(S);
    if (num_params_ > 0 && p_begin < g_begin + bytes && g_begin < p_begin + bytes)
      fail(where(method), "grad must not overlap params");

    const Index m = X.cols();
    if (m == 0) {
      as_map(g).setZero();
      return 0.0;
    }
    const Index L = num_layers();
    const Index chunks = (m + model_max_chunk_cols - 1) / model_max_chunk_cols;
    const Index cols = (m + chunks - 1) / chunks;
    S* const ws = model_workspace<S>((sum_outputs_ + max_hidden_) * cols);
    const S scale = S(1) / static_cast<S>(m);
    double loss_sum = 0.0;

    for (Index c = 0; c < chunks; ++c) {
      const Index first = c * cols;
      const Index mc = std::min(cols, m - first);
      const auto Xc = X.middleCols(first, mc);
      const auto act = [&](Index l) {  // output of layer l (pre-softmax logits for l = L)
        return ScratchMap<S>(ws + activation_offsets_[static_cast<std::size_t>(l)] * mc, width(l), mc);
      };

      // Forward: Z_l = W_l A_{l-1} + b_l, A_l = max(Z_l, 0) for hidden layers.
      for (Index l = 1; l <= L; ++l) {
        auto Z = act(l);
        Z.colwise() = bias(p, l);
        if (l == 1)
          Z.noalias() += weight(p, l) * Xc;
        else
          Z.noalias() += weight(p, l) * act(l - 1);
        if (l < L) Z = Z.cwiseMax(S(0));
      }
      // dZ_L = (softmax - onehot) / m, in place of the logits.
      loss_sum += softmax_cross_entropy_backward<S>(act(L), y.subspan(static_cast<std::size_t>(first),
                                                                      static_cast<std::size_t>(mc)), scale);

      // Backward: dW_l = dZ_l A_{l-1}^T, db_l = dZ_l 1, dZ_{l-1} = (W_l^T dZ_l) .* [A_{l-1} > 0].
      for (Index l = L; l >= 1; --l) {
        const auto dZ = act(l);
        auto dW = weight(g, l);
        auto db = bias(g, l);
        const auto accumulate = [&](const auto& input) {
          if (c == 0) {
            dW.noalias() = dZ * input.transpose();
            db = dZ.rowwise().sum();
          } else {
            dW.noalias() += dZ * input.transpose();
            db += dZ.rowwise().sum();
          }
        };
        if (l == 1) {
          accumulate(Xc);
        } else {
          auto A = act(l - 1);
          accumulate(A);
          ScratchMap<S> back(ws + sum_outputs_ * mc, width(l - 1), mc);
          back.noalias() = weight(p, l).transpose() * dZ;
          relu_backward(A.data(), back.data(), A.size());
        }
      }
    }
    return loss_sum / static_cast<double>(m);
  }

  /// Loss sum, correct count and count over the batch (see Mlp::evaluate).
  EvalResult evaluate(std::span<const S> p, const Eigen::Ref<const Matrix<S>>& X, std::span<const Label> y) const {
    constexpr std::string_view method = "evaluate";
    check_params(p, method, "params");
    check_batch(X, y, method);
    EvalResult result;
    const Index m = X.cols();
    result.count = m;
    if (m == 0) return result;
    const Index L = num_layers();
    const Index chunks = (m + model_max_chunk_cols - 1) / model_max_chunk_cols;
    const Index cols = (m + chunks - 1) / chunks;
    S* const ws = model_workspace<S>(2 * max_output_ * cols);

    for (Index c = 0; c < chunks; ++c) {
      const Index first = c * cols;
      const Index mc = std::min(cols, m - first);
      const auto Xc = X.middleCols(first, mc);
      const auto act = [&](Index l) {  // layers alternate between two halves of the scratch
        return ScratchMap<S>(ws + (l % 2) * max_output_ * mc, width(l), mc);
      };
      for (Index l = 1; l <= L; ++l) {
        auto Z = act(l);
        Z.colwise() = bias(p, l);
        if (l == 1)
          Z.noalias() += weight(p, l) * Xc;
        else
          Z.noalias() += weight(p, l) * act(l - 1);
        if (l < L) Z = Z.cwiseMax(S(0));
      }
      softmax_cross_entropy_evaluate<S>(act(L), y.subspan(static_cast<std::size_t>(first), static_cast<std::size_t>(mc)),
                                        result);
    }
    return result;
  }

  /// "name::method", built only when an error is raised.
  [[nodiscard]] std::string where(std::string_view method) const {
    std::string w(name_);
    w += "::";
    w += method;
    return w;
  }

 private:
  std::string_view name_;
  std::vector<Index> widths_;
  std::vector<Index> weight_offsets_;      // [l] = offset of W_l, l = 1..L
  std::vector<Index> activation_offsets_;  // [l] = first scratch row of layer l's output
  Index num_params_ = 0;
  Index sum_outputs_ = 0;  // sum of n_l, l = 1..L
  Index max_output_ = 0;   // max of n_l, l = 1..L
  Index max_hidden_ = 0;   // max of n_l, l = 1..L-1 (0 without hidden layers)
};

}  // namespace fedpp::detail
