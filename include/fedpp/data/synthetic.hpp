#pragma once
/// @file synthetic.hpp
/// Seeded synthetic classification data: a Gaussian mixture and a random linear teacher.
/// A generator object fixes its parameters (means, teacher weights) from its own seed; each call
/// to generate(n, seed) then draws a fresh sample from the same distribution, so train and test
/// sets come from one object with two seeds. Draws come from make_rng(seed, ..., Purpose::synthetic),
/// one stream per sample, so results do not depend on the thread count.

#include <cmath>
#include <cstdint>
#include <memory>
#include <numbers>
#include <vector>

#include "fedpp/core/config.hpp"
#include "fedpp/core/dataset.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

namespace detail {

/// Balanced labels (i mod C) in a random order drawn from the label stream of `seed`.
inline std::vector<Label> synthetic_balanced_labels(Index n, int num_classes, std::uint64_t seed) {
  std::vector<Label> y(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<Label>(i % static_cast<std::size_t>(num_classes));
  Rng rng = make_rng(seed, 1, server_stream, Purpose::synthetic);
  for (std::size_t i = y.size(); i > 1; --i) std::swap(y[i - 1], y[static_cast<std::size_t>(rng.uniform_index(i))]);
  return y;
}

/// Fills x[0..n) with independent standard normal draws, two per Box-Muller pair (cos and sin).
inline void synthetic_normals(Rng& rng, double* x, Index n) noexcept {
  for (Index i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(1.0 - rng.uniform()));  // 1 - U in (0, 1]
    const double t = 2.0 * std::numbers::pi * rng.uniform();
    x[i] = r * std::cos(t);
    if (i + 1 < n) x[i + 1] = r * std::sin(t);
  }
}

/// The stream of sample j of a generate() call.
inline Rng synthetic_sample_rng(std::uint64_t seed, Index j) noexcept {
  return make_rng(seed, 2, static_cast<std::uint64_t>(j), Purpose::synthetic);
}

inline void synthetic_check_n(Index n, std::string_view where) {
  require(n >= 0 && n <= Index{1} << 32, where, "n must be in [0, 2^32]", n);
}

}  // namespace detail

/// A num_classes-component Gaussian mixture in R^dim with isotropic noise (a synthetic classification task).
/**
 * The class means are fixed by the constructor's seed. When num_classes <= dim they are
 * separation / sqrt(2) times num_classes random orthonormal vectors, so every pair of means is
 * exactly `separation` apart; when num_classes > dim they are independent uniform points on the
 * sphere of radius separation / sqrt(2) (pairwise distances vary around `separation`).
 * A sample of class k is mean_k + noise * z, z ~ N(0, I). With two classes the Bayes (and
 * nearest-mean) accuracy is Phi(separation / (2 * noise)).
 */
class GaussianMixture {
 public:
  /// @throws InvalidArgument if num_classes < 1, dim < 1, separation or noise negative or not finite.
  GaussianMixture(int num_classes, Index dim, double separation, std::uint64_t seed, double noise = 1.0)
      : num_classes_(require(num_classes >= 1, where, "num_classes must be >= 1", num_classes)),
        dim_(require(dim >= 1, where, "dim must be >= 1", dim)),
        separation_(require(std::isfinite(separation) && separation >= 0.0, where,
                            "separation must be finite and >= 0", separation)),
        noise_(require(std::isfinite(noise) && noise >= 0.0, where, "noise must be finite and >= 0", noise)),
        means_(dim, num_classes) {
    Rng rng = make_rng(seed, 0, server_stream, Purpose::synthetic);
    const double radius = separation / std::sqrt(2.0);
    const bool orthogonal = num_classes <= dim;
    for (int k = 0; k < num_classes; ++k) {
      for (;;) {
        for (Index r = 0; r < dim; ++r) means_(r, k) = rng.normal();
        if (orthogonal)  // modified Gram-Schmidt against the earlier means
          for (int j = 0; j < k; ++j) means_.col(k) -= means_.col(j).dot(means_.col(k)) * means_.col(j);
        const double nrm = means_.col(k).norm();
        if (nrm > 1e-6) {
          means_.col(k) /= nrm;
          break;
        }
      }
    }
    means_ *= radius;
  }

  /// Draws n samples with balanced labels (counts differ by at most 1) in random order.
  /** @tparam S feature scalar; the result has dim() rows and n columns. */
  template <typename S = float>
  std::shared_ptr<Dataset<S>> generate(Index n, std::uint64_t seed) const {
    detail::synthetic_check_n(n, "fedpp::GaussianMixture::generate");
    auto ds = std::make_shared<Dataset<S>>();
    ds->num_classes = num_classes_;
    ds->labels = detail::synthetic_balanced_labels(n, num_classes_, seed);
    ds->features.resize(dim_, n);
    const Label* y = ds->labels.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index j = 0; j < n; ++j) {
      Rng rng = detail::synthetic_sample_rng(seed, j);
      Vector<double> z(dim_);
      detail::synthetic_normals(rng, z.data(), dim_);
      ds->features.col(j) = (means_.col(y[j]) + noise_ * z).template cast<S>();
    }
    return ds;
  }

  /// Class means, dim x num_classes (column k is the mean of class k).
  [[nodiscard]] const Matrix<double>& means() const noexcept { return means_; }
  /// Number of classes.
  [[nodiscard]] int num_classes() const noexcept { return num_classes_; }
  /// Input dimension.
  [[nodiscard]] Index dim() const noexcept { return dim_; }
  /// Distance between class means (exact when num_classes <= dim).
  [[nodiscard]] double separation() const noexcept { return separation_; }
  /// Standard deviation of the isotropic noise.
  [[nodiscard]] double noise() const noexcept { return noise_; }

 private:
  static constexpr std::string_view where = "fedpp::GaussianMixture";
  int num_classes_;
  Index dim_;
  double separation_;
  double noise_;
  Matrix<double> means_;
};

/// Labels from a random linear teacher: x ~ N(0, I), y = argmax_k (W x)_k, W fixed by the seed.
/**
 * W is num_classes x dim with i.i.d. N(0, 1) entries, so classes are balanced in expectation (not
 * exactly). With probability `label_noise` a label is replaced by a uniform random class (which
 * may equal the teacher's). A linear model can reach 100% accuracy when label_noise = 0.
 */
class LinearTeacher {
 public:
  /// @throws InvalidArgument if num_classes < 2, dim < 1 or label_noise outside [0, 1].
  LinearTeacher(int num_classes, Index dim, std::uint64_t seed, double label_noise = 0.0)
      : num_classes_(require(num_classes >= 2, where, "num_classes must be >= 2", num_classes)),
        dim_(require(dim >= 1, where, "dim must be >= 1", dim)),
        label_noise_(require(label_noise >= 0.0 && label_noise <= 1.0, where, "label_noise must be in [0, 1]",
                             label_noise)),
        weights_(num_classes, dim) {
    Rng rng = make_rng(seed, 0, server_stream, Purpose::synthetic);
    for (Index r = 0; r < weights_.rows(); ++r)
      for (Index c = 0; c < weights_.cols(); ++c) weights_(r, c) = rng.normal();
  }

  /// The teacher's class for input x (argmax of W x, lowest index on ties).
  /** @throws DimensionError if x.size() != dim(). */
  [[nodiscard]] Label classify(const Vector<double>& x) const {
    if (x.size() != dim_) fail<DimensionError>(where, "x must have dim() entries (" + std::to_string(dim_) + ")", x.size());
    Index k = 0;
    (weights_ * x).maxCoeff(&k);
    return static_cast<Label>(k);
  }

  /// Draws n samples x ~ N(0, I) labelled by the teacher (labels computed in double before the cast to S).
  template <typename S = float>
  std::shared_ptr<Dataset<S>> generate(Index n, std::uint64_t seed) const {
    detail::synthetic_check_n(n, "fedpp::LinearTeacher::generate");
    auto ds = std::make_shared<Dataset<S>>();
    ds->num_classes = num_classes_;
    ds->labels.resize(static_cast<std::size_t>(n));
    ds->features.resize(dim_, n);
    Label* y = ds->labels.data();
    FEDPP_OMP_PARALLEL_FOR
    for (Index j = 0; j < n; ++j) {
      Rng rng = detail::synthetic_sample_rng(seed, j);
      Vector<double> x(dim_);
      detail::synthetic_normals(rng, x.data(), dim_);
      Index k = 0;
      (weights_ * x).maxCoeff(&k);
      if (label_noise_ > 0.0 && rng.uniform() < label_noise_)
        k = static_cast<Index>(rng.uniform_index(static_cast<std::uint64_t>(num_classes_)));
      y[j] = static_cast<Label>(k);
      ds->features.col(j) = x.template cast<S>();
    }
    return ds;
  }

  /// Teacher weights, num_classes x dim.
  [[nodiscard]] const Matrix<double>& weights() const noexcept { return weights_; }
  /// Number of classes.
  [[nodiscard]] int num_classes() const noexcept { return num_classes_; }
  /// Input dimension.
  [[nodiscard]] Index dim() const noexcept { return dim_; }
  /// Probability that a label is replaced by a uniform random class.
  [[nodiscard]] double label_noise() const noexcept { return label_noise_; }

 private:
  static constexpr std::string_view where = "fedpp::LinearTeacher";
  int num_classes_;
  Index dim_;
  double label_noise_;
  Matrix<double> weights_;
};

}  // namespace fedpp
