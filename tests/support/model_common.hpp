#pragma once
// Helpers for the model tests: seeded initial parameters, central finite-difference gradients,
// per-sample sums of loss and gradient, and brute-force references (cross-entropy loss and predicted
// class of a vector of logits; what evaluate() should give from per-sample logits).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "fedpp/core/dataset.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp_test {

/// What model.init_params writes into an empty vector with make_rng(seed, 0, 0, Purpose::model_init).
template <typename M>
fedpp::Vector<typename M::Scalar> seeded_init_params(const M& model, std::uint64_t seed) {
  fedpp::Vector<typename M::Scalar> p;
  auto rng = fedpp::make_rng(seed, 0, 0, fedpp::Purpose::model_init);
  model.init_params(p, rng);
  return p;
}

/// Central finite differences (step h) of the mean loss of a double model at p, every coordinate.
template <typename M>
fedpp::Vector<double> finite_difference_gradient(const M& model, fedpp::Vector<double> p,
                                                 const fedpp::Matrix<double>& X, const std::vector<fedpp::Label>& y,
                                                 double h = 1e-6) {
  fedpp::Vector<double> fd(p.size()), scratch(p.size());
  for (fedpp::Index i = 0; i < p.size(); ++i) {
    const double keep = p(i);
    p(i) = keep + h;
    const double up = model.loss_and_gradient(fedpp::as_span(std::as_const(p)), X, y, fedpp::as_span(scratch));
    p(i) = keep - h;
    const double down = model.loss_and_gradient(fedpp::as_span(std::as_const(p)), X, y, fedpp::as_span(scratch));
    p(i) = keep;
    fd(i) = (up - down) / (2 * h);
  }
  return fd;
}

/// Sums over the samples of a batch of the loss and gradient of each sample alone.
template <typename S>
struct PerSampleSums {
  double loss = 0.0;          ///< sum of the per-sample losses
  fedpp::Vector<S> gradient;  ///< sum of the per-sample gradients
};

/// model.loss_and_gradient at p on each column j of X with label y[j] alone, summed in sample order.
template <typename M>
PerSampleSums<typename M::Scalar> per_sample_sums(const M& model, const fedpp::Vector<typename M::Scalar>& p,
                                                  const fedpp::Matrix<typename M::Scalar>& X,
                                                  const std::vector<fedpp::Label>& y) {
  using S = typename M::Scalar;
  PerSampleSums<S> sums{0.0, fedpp::Vector<S>::Zero(model.num_params())};
  fedpp::Vector<S> gi(model.num_params());
  for (fedpp::Index j = 0; j < X.cols(); ++j) {
    sums.loss += model.loss_and_gradient(fedpp::as_span(p), X.col(j),
                                         std::span(y).subspan(static_cast<std::size_t>(j), 1), fedpp::as_span(gi));
    sums.gradient += gi;
  }
  return sums;
}

/// Cross-entropy of logits z at label y: log sum_k exp(z_k) - z_y (shifted by max z for stability).
inline double reference_loss(const std::vector<double>& z, fedpp::Label y) {
  const double mx = *std::max_element(z.begin(), z.end());
  double s = 0.0;
  for (double v : z) s += std::exp(v - mx);
  return std::log(s) + mx - z[static_cast<std::size_t>(y)];
}

/// The class of the largest logit (the first one among ties).
inline fedpp::Label reference_argmax(const std::vector<double>& z) {
  return static_cast<fedpp::Label>(std::max_element(z.begin(), z.end()) - z.begin());
}

/// What evaluate() should give for the samples j < y.size() with logits logits_of(j): the sums of
/// reference_loss and of reference_argmax hits, in sample order.
template <typename LogitsOf>
fedpp::EvalResult reference_evaluation(const LogitsOf& logits_of, const std::vector<fedpp::Label>& y) {
  fedpp::EvalResult r;
  for (std::size_t j = 0; j < y.size(); ++j) {
    const std::vector<double> z = logits_of(static_cast<fedpp::Index>(j));
    r.loss_sum += reference_loss(z, y[j]);
    r.correct += reference_argmax(z) == y[j];
    ++r.count;
  }
  return r;
}

}  // namespace fedpp_test
