#pragma once
/// @file optimizers.hpp
/// Convenience header: every local optimizer (LocalSgd, FedProx, Sam/FedSam, FedDyn, FedSpeed,
/// Scaffold) and server optimizer (ServerSgd, ServerMomentum, FedAdagrad/FedYogi/FedAdam,
/// FedDynServer, ScaffoldServer) of fedpp. See docs/optimizers.md.

#include "fedpp/optimizers/adaptive.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/fed_prox.hpp"
#include "fedpp/optimizers/fed_speed.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/optimizers/sam.hpp"
#include "fedpp/optimizers/scaffold.hpp"
#include "fedpp/optimizers/server_momentum.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
