#pragma once
/// @file aggregators.hpp
/// Convenience header: every aggregation rule, batch transform and pre-aggregator of fedpp.

#include "fedpp/aggregators/any_aggregator.hpp"
#include "fedpp/aggregators/arc.hpp"
#include "fedpp/aggregators/bucketing.hpp"
#include "fedpp/aggregators/bulyan.hpp"
#include "fedpp/aggregators/centered_clipping.hpp"
#include "fedpp/aggregators/coordinate_median.hpp"
#include "fedpp/aggregators/flag.hpp"
#include "fedpp/aggregators/geometric_median.hpp"
#include "fedpp/aggregators/krum.hpp"
#include "fedpp/aggregators/meamed.hpp"
#include "fedpp/aggregators/nnm.hpp"
#include "fedpp/aggregators/norm_clipping.hpp"
#include "fedpp/aggregators/pre_aggregated.hpp"
#include "fedpp/aggregators/trimmed_mean.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
