// ServerSgd: the plain server step with a learning rate.
#include <catch2/catch.hpp>

#include "fedpp/optimizers/server_sgd.hpp"

using namespace fedpp;

TEST_CASE("ServerSgd applies the update with its learning rate", "[optimizers][ServerSgd]") {
  ServerSgd s({.lr = 0.5});
  auto st = s.make_state<double>(3);
  Vector<double> x(3), u(3);
  x << 1, 2, 3;
  u << 2, -2, 4;
  s.step(x, u, st, 0);
  CHECK(x == Vector<double>((Vector<double>(3) << 2, 1, 5).finished()));
  CHECK_THROWS_WITH(ServerSgd({.lr = -1}), "fedpp::ServerSgd: lr must be finite and > 0, got -1");
}
