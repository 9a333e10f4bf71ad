#pragma once
/// @file data.hpp
/// Convenience header for fedpp's data layer: IDX reader, Fashion-MNIST loader, partitioners and
/// synthetic generators. Needs zlib: link `fedpp::data`. Code that only
/// partitions or generates data can include fedpp/data/partition.hpp and fedpp/data/synthetic.hpp,
/// which need fedpp core alone.

#include "fedpp/data/fashion_mnist.hpp"
#include "fedpp/data/idx.hpp"
#include "fedpp/data/partition.hpp"
#include "fedpp/data/synthetic.hpp"
