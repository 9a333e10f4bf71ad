#pragma once
// A small seeded classification problem for optimizer tests: 60 Gaussian-blob samples in 5
// dimensions, 3 classes, softmax regression and its seeded initial parameters.
#include <memory>

#include "fedpp/core/dataset.hpp"
#include "fedpp/models/softmax_regression.hpp"
#include "support/blobs.hpp"

namespace fedpp_test {

/// Data, view, model and initial parameters of the problem.
struct SoftmaxProblem {
  std::shared_ptr<fedpp::Dataset<double>> data = blobs<double>(60, 5, 3, 4);
  fedpp::DatasetView<double> view = fedpp::DatasetView<double>::all(data);
  fedpp::SoftmaxRegression<double> model{5, 3};
  fedpp::Vector<double> w0 = [this] {
    fedpp::Vector<double> w;
    fedpp::Rng init(2);
    model.init_params(w, init);
    return w;
  }();
};

}  // namespace fedpp_test
