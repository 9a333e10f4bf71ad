#pragma once
/// @file fedpp.hpp
/// Umbrella header: everything in fedpp that needs only Eigen (and zlib for the data readers).
/// For faster builds include the fine-grained headers you use instead.

#include "fedpp/version.hpp"

#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/rng.hpp"

#include "fedpp/aggregators.hpp"
#include "fedpp/attacks.hpp"
#include "fedpp/compressors.hpp"
#include "fedpp/data.hpp"
#include "fedpp/models.hpp"
#include "fedpp/optimizers.hpp"
#include "fedpp/runtime/callbacks.hpp"
#include "fedpp/runtime/client.hpp"
#include "fedpp/runtime/byzantine.hpp"
#include "fedpp/runtime/fault_injection.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/pipeline.hpp"
#include "fedpp/runtime/server.hpp"
#include "fedpp/runtime/simulation.hpp"
#include "fedpp/runtime/transport.hpp"
