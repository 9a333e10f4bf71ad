#pragma once
// A strongly convex test model with closed forms: f(w) = mean_j 0.5 a_j ||w - x_j||^2 over a client's
// samples, with grad f(w) = mean_j a_j (w - x_j). Feature rows 0..d-1 of a sample hold x_j, row d holds a_j.
// Also: data sets of given points, and a fixed three-client federation of one-sample quadratics.
#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/dataset.hpp"

namespace fedpp_test {

/// The quadratic model over d parameters (Scalar double; the labels are ignored).
struct Quadratic {
  using Scalar = double;
  fedpp::Index d = 2;
  [[nodiscard]] fedpp::Index num_params() const noexcept { return d; }
  [[nodiscard]] fedpp::Index input_dim() const noexcept { return d + 1; }
  [[nodiscard]] int num_classes() const noexcept { return 2; }
  [[nodiscard]] fedpp::ParameterLayout layout() const { return fedpp::ParameterLayout::flat(d); }
  void init_params(fedpp::Vector<double>& v, fedpp::Rng& /*rng*/) const { v = fedpp::Vector<double>::Zero(d); }
  double loss_and_gradient(std::span<const double> p, const Eigen::Ref<const fedpp::Matrix<double>>& X,
                           std::span<const fedpp::Label> /*y*/, std::span<double> g) const {
    const auto w = fedpp::as_map(p);
    auto gm = fedpp::as_map(g);
    gm.setZero();
    double loss = 0;
    for (fedpp::Index j = 0; j < X.cols(); ++j) {
      const double a = X(d, j);
      const fedpp::Vector<double> r = w - X.col(j).head(d);
      loss += 0.5 * a * r.squaredNorm();
      gm += a * r;
    }
    gm /= static_cast<double>(X.cols());
    return loss / static_cast<double>(X.cols());
  }
  fedpp::EvalResult evaluate(std::span<const double> /*p*/, const Eigen::Ref<const fedpp::Matrix<double>>& /*X*/,
                             std::span<const fedpp::Label> /*y*/) const {
    return {};
  }
};
static_assert(fedpp::Model<Quadratic>);

/// Samples x_j (columns of xs) with curvature a: the client objective 0.5 a mean_j ||w - x_j||^2.
inline std::shared_ptr<fedpp::Dataset<double>> quadratic_points(const fedpp::Matrix<double>& xs, double a) {
  auto ds = std::make_shared<fedpp::Dataset<double>>();
  ds->features.resize(xs.rows() + 1, xs.cols());
  ds->features.topRows(xs.rows()) = xs;
  ds->features.row(xs.rows()).setConstant(a);
  ds->labels.assign(static_cast<std::size_t>(xs.cols()), 0);
  ds->num_classes = 2;
  return ds;
}

/// Samples x_j (columns of xs) with their own curvatures a_j: the objective mean_j 0.5 a_j ||w - x_j||^2.
inline std::shared_ptr<fedpp::Dataset<double>> quadratic_samples(const fedpp::Matrix<double>& xs,
                                                                 const std::vector<double>& a) {
  auto ds = quadratic_points(xs, 1.0);
  for (std::size_t j = 0; j < a.size(); ++j) ds->features(xs.rows(), static_cast<fedpp::Index>(j)) = a[j];
  return ds;
}

/// Three one-sample clients in 2 dimensions: client i's objective is 0.5 a_i ||w - c_i||^2.
struct QuadraticFederation {
  std::vector<double> a{1.0, 3.0, 0.5};  ///< the curvatures a_i
  std::vector<fedpp::Vector<double>> c{fedpp::Vector<double>{{0.0, 1.0}}, fedpp::Vector<double>{{2.0, -1.0}},
                                       fedpp::Vector<double>{{-1.0, 2.0}}};  ///< the client optima c_i
  std::vector<fedpp::DatasetView<double>> shards;                            ///< client i's one sample
  /// Builds the shards from a and c.
  QuadraticFederation() {
    for (std::size_t i = 0; i < a.size(); ++i)
      shards.push_back(fedpp::DatasetView<double>::all(quadratic_points(c[i], a[i])));
  }
  /// The optimum of the mean objective (1/N) sum_i f_i: sum_i a_i c_i / sum_i a_i.
  [[nodiscard]] fedpp::Vector<double> optimum() const {
    fedpp::Vector<double> num = fedpp::Vector<double>::Zero(2);
    double den = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      num += a[i] * c[i];
      den += a[i];
    }
    return num / den;
  }
};

}  // namespace fedpp_test
