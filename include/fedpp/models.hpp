#pragma once
/// @file models.hpp
/// Convenience header: the reference models (SoftmaxRegression, Mlp).

#include "fedpp/models/mlp.hpp"
#include "fedpp/models/softmax_regression.hpp"
