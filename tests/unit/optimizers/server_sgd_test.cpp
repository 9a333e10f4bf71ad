// ServerSgd: the plain server step x <- x + lr * update, checked against hand-computed values
// (all exact in binary), for lr = 1 (FedAvg) and other learning rates, in float and double.
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

TEST_CASE("ServerSgd with lr = 1 adds the update, other rates scale it, in float and double",
          "[optimizers][ServerSgd]") {
  CHECK(ServerSgd().options().lr == 1.0);
  // x = (1, -2, 0.5), u = (0.25, 3, -1.5): x + u = (1.25, 1, -1), x + 2 u = (1.5, 4, -2.5),
  // x + 0.25 u = (1.0625, -1.25, 0.125) (every value exact in binary).
  const auto run = [](auto x, double lr) {
    using V = decltype(x);
    V u(3);
    u << 0.25, 3, -1.5;
    const ServerSgd s({.lr = lr});
    auto st = s.make_state<typename V::Scalar>(3);
    s.step(x, u, st, 7);
    return x;
  };
  Vector<double> xd(3);
  xd << 1, -2, 0.5;
  Vector<float> xf = xd.cast<float>();
  CHECK(run(xd, 1.0) == Vector<double>{{1.25, 1.0, -1.0}});
  CHECK(run(xd, 2.0) == Vector<double>{{1.5, 4.0, -2.5}});
  CHECK(run(xd, 0.25) == Vector<double>{{1.0625, -1.25, 0.125}});
  CHECK(run(xf, 1.0) == Vector<float>{{1.25f, 1.0f, -1.0f}});
  CHECK(run(xf, 2.0) == Vector<float>{{1.5f, 4.0f, -2.5f}});
  CHECK(run(xf, 0.25) == Vector<float>{{1.0625f, -1.25f, 0.125f}});
}

TEST_CASE("ServerSgd refuses an update of another size and leaves the model unchanged", "[optimizers][ServerSgd]") {
  const ServerSgd s({.lr = 0.5});
  ServerSgd::State st = s.make_state<double>(3);
  Vector<double> x{{1.0, 2.0, 3.0}};
  const Vector<double> longer{{1.0, 1.0, 1.0, 1.0}};
  const Vector<double> shorter{{1.0, 1.0}};
  CHECK_THROWS_AS(s.step(x, longer, st, 0), DimensionError);
  CHECK_THROWS_WITH(s.step(x, longer, st, 0), "fedpp::ServerSgd::step: update size must equal the model size 3, got 4");
  CHECK_THROWS_WITH(s.step(x, shorter, st, 0), "fedpp::ServerSgd::step: update size must equal the model size 3, got 2");
  CHECK(x == Vector<double>{{1.0, 2.0, 3.0}});
}
