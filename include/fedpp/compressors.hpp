#pragma once
/// @file compressors.hpp
/// Convenience header: every update compressor of fedpp (Identity, TopK, RandomK, Qsgd,
/// ScaledSign, SparseQsgd, ErrorFeedback/Ef21, Dgc) and the sparse wire format.
/// See docs/compressors.md.

#include "fedpp/compressors/dgc.hpp"
#include "fedpp/compressors/error_feedback.hpp"
#include "fedpp/compressors/identity.hpp"
#include "fedpp/compressors/qsgd.hpp"
#include "fedpp/compressors/random_k.hpp"
#include "fedpp/compressors/sign.hpp"
#include "fedpp/compressors/sparse.hpp"
#include "fedpp/compressors/sparse_quantized.hpp"
#include "fedpp/compressors/top_k.hpp"
