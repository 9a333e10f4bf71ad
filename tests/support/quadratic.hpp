#pragma once
// A strongly convex test model with closed forms: f(w) = mean_j 0.5 a_j ||w - x_j||^2 over a client's
// samples, with grad f(w) = mean_j a_j (w - x_j). Feature rows 0..d-1 of a sample hold x_j, row d holds a_j.
#include <memory>
#include <span>

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

}  // namespace fedpp_test
