// Every documented error of include/fedpp/optimizers/: each require()/fail() site is triggered here,
// and each message is compared whole (the class, the parameter, the rule and the bad value) with the
// exception's exact type (InvalidArgument, or DimensionError for sizes). Size mismatches are tried
// with the wrong vector longer than the model, so a missing check shows as a missing exception (no
// out-of-bounds access). The boundary values each range admits are accepted.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <typeinfo>

#include "fedpp/optimizers/adaptive.hpp"
#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/fed_prox.hpp"
#include "fedpp/optimizers/fed_speed.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/optimizers/sam.hpp"
#include "fedpp/optimizers/scaffold.hpp"
#include "fedpp/optimizers/server_momentum.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;

namespace {

const double v_nan = std::numeric_limits<double>::quiet_NaN();
const double v_inf = std::numeric_limits<double>::infinity();

// what() when fn throws exactly E; "(no throw)", or "(wrong type) what()" otherwise.
template <class E>
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    if (typeid(e) == typeid(E)) return e.what();
    return std::string("(wrong type) ") + e.what();
  }
  return "(no throw)";
}

// A bad LocalSgdOptions and the message text after "<class>: ".
struct BadSgd {
  LocalSgdOptions o;
  std::string text;
};

std::vector<BadSgd> bad_sgd_options() {
  return {
      {{.lr = 0.0}, "lr must be finite and > 0, got 0"},
      {{.lr = -0.5}, "lr must be finite and > 0, got -0.5"},
      {{.lr = v_nan}, "lr must be finite and > 0, got nan"},
      {{.lr = v_inf}, "lr must be finite and > 0, got inf"},
      {{.steps = -1}, "steps must be >= 0, got -1"},
      {{.epochs = 0}, "epochs must be >= 1 when steps == 0, got 0"},
      {{.epochs = -3}, "epochs must be >= 1 when steps == 0, got -3"},
      {{.batch_size = 0}, "batch_size must be >= 1, got 0"},
      {{.weight_decay = -0.25}, "weight_decay must be finite and >= 0, got -0.25"},
      {{.weight_decay = v_inf}, "weight_decay must be finite and >= 0, got inf"},
      {{.momentum = 1.0}, "momentum must be in [0, 1), got 1"},
      {{.momentum = -0.1}, "momentum must be in [0, 1), got -0.1"},
      {{.momentum = v_nan}, "momentum must be in [0, 1), got nan"},
      {{.nesterov = true}, "nesterov needs momentum > 0, got 0"},
      {{.clip_norm = -1.0}, "clip_norm must be finite and >= 0 (0 = off), got -1"},
      {{.clip_norm = v_inf}, "clip_norm must be finite and >= 0 (0 = off), got inf"},
      {{.lr_decay = 0.0}, "lr_decay must be in (0, 1], got 0"},
      {{.lr_decay = 1.5}, "lr_decay must be in (0, 1], got 1.5"},
      {{.lr_decay = v_nan}, "lr_decay must be in (0, 1], got nan"},
  };
}

// The settings at the edges of every LocalSgd range, all valid.
std::vector<LocalSgdOptions> edge_sgd_options() {
  return {{.lr = 1e-12},
          {.epochs = 0, .steps = 1},
          {.epochs = 1, .batch_size = 1},
          {.weight_decay = 0.0},
          {.momentum = 0.0},
          {.momentum = 0.999, .nesterov = true},
          {.clip_norm = 0.0},
          {.lr_decay = 1.0},
          {.lr_decay = 1e-9}};
}

}  // namespace

TEST_CASE("Every local optimizer rejects each invalid LocalSgd setting naming itself, the setting and the value",
          "[optimizers][validation]") {
  const std::vector<std::pair<std::string, std::function<void(const LocalSgdOptions&)>>> makers{
      {"fedpp::LocalSgd", [](const LocalSgdOptions& o) { LocalSgd x(o); }},
      {"fedpp::FedProx", [](const LocalSgdOptions& o) { FedProx x({.mu = 0.1, .sgd = o}); }},
      {"fedpp::Sam", [](const LocalSgdOptions& o) { Sam x({.sgd = o}); }},
      {"fedpp::FedDyn", [](const LocalSgdOptions& o) { FedDyn x({.sgd = o}); }},
      {"fedpp::FedSpeed", [](const LocalSgdOptions& o) { FedSpeed x({.sgd = o}); }},
      {"fedpp::Scaffold", [](const LocalSgdOptions& o) { Scaffold x({.sgd = o}); }},
  };
  for (const auto& [who, make] : makers) {
    for (const BadSgd& b : bad_sgd_options()) {
      CAPTURE(who, b.text);
      CHECK(error_of<InvalidArgument>([&] { make(b.o); }) == who + ": " + b.text);
    }
    for (const LocalSgdOptions& o : edge_sgd_options()) {
      CAPTURE(who, o.lr, o.epochs, o.steps, o.momentum, o.lr_decay);
      CHECK(error_of<InvalidArgument>([&] { make(o); }) == "(no throw)");
    }
  }
}

TEST_CASE("FedProx, Sam, FedDyn, FedSpeed and Scaffold reject their own invalid settings",
          "[optimizers][validation]") {
  const auto inv = [](auto fn) { return error_of<InvalidArgument>(fn); };
  // FedProx: mu >= 0, finite.
  CHECK(inv([] { FedProx x({.mu = -0.1}); }) == "fedpp::FedProx: mu must be finite and >= 0, got -0.1");
  CHECK(inv([] { FedProx x({.mu = v_nan}); }) == "fedpp::FedProx: mu must be finite and >= 0, got nan");
  CHECK(inv([] { FedProx x({.mu = v_inf}); }) == "fedpp::FedProx: mu must be finite and >= 0, got inf");
  CHECK(inv([] { FedProx x({.mu = 0.0}); }) == "(no throw)");
  // Sam: rho >= 0, eps >= 0, finite.
  CHECK(inv([] { Sam x({.rho = -0.1}); }) == "fedpp::Sam: rho must be finite and >= 0, got -0.1");
  CHECK(inv([] { Sam x({.rho = v_inf}); }) == "fedpp::Sam: rho must be finite and >= 0, got inf");
  CHECK(inv([] { Sam x({.eps = -1e-3}); }) == "fedpp::Sam: eps must be finite and >= 0, got -0.001");
  CHECK(inv([] { Sam x({.eps = v_nan}); }) == "fedpp::Sam: eps must be finite and >= 0, got nan");
  CHECK(inv([] { Sam x({.rho = 0.0, .eps = 0.0}); }) == "(no throw)");
  // FedDyn: alpha > 0, finite.
  CHECK(inv([] { FedDyn x({.alpha = 0.0}); }) == "fedpp::FedDyn: alpha must be finite and > 0, got 0");
  CHECK(inv([] { FedDyn x({.alpha = -2.0}); }) == "fedpp::FedDyn: alpha must be finite and > 0, got -2");
  CHECK(inv([] { FedDyn x({.alpha = v_inf}); }) == "fedpp::FedDyn: alpha must be finite and > 0, got inf");
  CHECK(inv([] { FedDyn x({.alpha = 1e-12}); }) == "(no throw)");
  // FedSpeed: prox > 0, rho >= 0, alpha in [0, 1], eps >= 0, a known form.
  CHECK(inv([] { FedSpeed x({.prox = 0.0}); }) == "fedpp::FedSpeed: prox must be finite and > 0, got 0");
  CHECK(inv([] { FedSpeed x({.prox = v_nan}); }) == "fedpp::FedSpeed: prox must be finite and > 0, got nan");
  CHECK(inv([] { FedSpeed x({.rho = -1.0}); }) == "fedpp::FedSpeed: rho must be finite and >= 0, got -1");
  CHECK(inv([] { FedSpeed x({.alpha = 1.5}); }) == "fedpp::FedSpeed: alpha must be in [0, 1], got 1.5");
  CHECK(inv([] { FedSpeed x({.alpha = -0.25}); }) == "fedpp::FedSpeed: alpha must be in [0, 1], got -0.25");
  CHECK(inv([] { FedSpeed x({.alpha = v_nan}); }) == "fedpp::FedSpeed: alpha must be in [0, 1], got nan");
  CHECK(inv([] { FedSpeed x({.eps = -1.0}); }) == "fedpp::FedSpeed: eps must be finite and >= 0, got -1");
  CHECK(inv([] { FedSpeed x({.form = static_cast<FedSpeedForm>(7)}); }) ==
        "fedpp::FedSpeed: form must be reference or paper, got 7");
  CHECK(inv([] { FedSpeed x({.rho = 0.0, .alpha = 0.0, .eps = 0.0}); }) == "(no throw)");
  CHECK(inv([] { FedSpeed x({.alpha = 1.0, .form = FedSpeedForm::paper}); }) == "(no throw)");
  // Scaffold: a known variant.
  CHECK(inv([] { Scaffold x({.variant = static_cast<ScaffoldVariant>(5)}); }) ==
        "fedpp::Scaffold: variant must be option1 or option2, got 5");
  CHECK(inv([] { Scaffold x({.variant = ScaffoldVariant::option1}); }) == "(no throw)");
}

TEST_CASE("Scaffold's train needs a server control variate of the model's size", "[optimizers][validation]") {
  const fedpp_test::Quadratic model;
  const auto ds = fedpp_test::quadratic_points(Vector<double>{{1.0, 2.0}}, 1.0);
  const auto view = DatasetView<double>::all(ds);
  const Scaffold opt;
  auto st = opt.make_state(model);
  Vector<double> w = Vector<double>::Zero(2);
  Rng rng(1);
  CHECK(error_of<InvalidArgument>([&] { opt.train(model, w, view, st, {}, rng); }) ==
        "fedpp::Scaffold: train needs the server control variate: pair Scaffold with ScaffoldServer, got no exchange");
  const Vector<double> longer{{1.0, 2.0, 3.0}};
  LocalExchange<double> ex{as_span(longer), {}};
  CHECK(error_of<InvalidArgument>([&] { opt.train(model, w, view, st, {}, rng, ex); }) ==
        "fedpp::Scaffold: the server control variate must have the model's 2 entries (pair Scaffold with "
        "ScaffoldServer), got 3");
  LocalExchange<double> none{{}, {}};
  CHECK(error_of<InvalidArgument>([&] { opt.train(model, w, view, st, {}, rng, none); }) ==
        "fedpp::Scaffold: the server control variate must have the model's 2 entries (pair Scaffold with "
        "ScaffoldServer), got 0");
  CHECK(w == Vector<double>::Zero(2));  // nothing trained
}

TEST_CASE("ServerSgd and ServerMomentum reject invalid settings and sizes", "[optimizers][validation]") {
  const auto inv = [](auto fn) { return error_of<InvalidArgument>(fn); };
  const auto dim = [](auto fn) { return error_of<DimensionError>(fn); };
  CHECK(inv([] { ServerSgd x({.lr = 0.0}); }) == "fedpp::ServerSgd: lr must be finite and > 0, got 0");
  CHECK(inv([] { ServerSgd x({.lr = -2.0}); }) == "fedpp::ServerSgd: lr must be finite and > 0, got -2");
  CHECK(inv([] { ServerSgd x({.lr = v_nan}); }) == "fedpp::ServerSgd: lr must be finite and > 0, got nan");
  CHECK(inv([] { ServerSgd x({.lr = v_inf}); }) == "fedpp::ServerSgd: lr must be finite and > 0, got inf");
  CHECK(inv([] { ServerSgd x({.lr = 1e-12}); }) == "(no throw)");

  CHECK(inv([] { ServerMomentum x({.lr = v_nan}); }) == "fedpp::ServerMomentum: lr must be finite and > 0, got nan");
  CHECK(inv([] { ServerMomentum x({.momentum = v_inf}); }) ==
        "fedpp::ServerMomentum: momentum must be in [0, 1), got inf");
  CHECK(inv([] { ServerMomentum x({.momentum = 0.0}); }) == "(no throw)");
  const ServerMomentum sm;
  CHECK(inv([&] { (void)sm.make_state<double>(-1); }) == "fedpp::ServerMomentum: dim must be >= 0, got -1");
  CHECK(inv([&] { (void)sm.make_state<double>(0); }) == "(no throw)");
  auto st = sm.make_state<double>(2);
  Vector<double> x = Vector<double>::Zero(2);
  const Vector<double> longer = Vector<double>::Ones(3), u = Vector<double>::Ones(2);
  CHECK(dim([&] { sm.step(x, longer, st, 0); }) == "fedpp::ServerMomentum: update size must equal the model size, got 3");
  auto big = sm.make_state<double>(3);
  CHECK(dim([&] { sm.step(x, u, big, 0); }) == "fedpp::ServerMomentum: state size must equal the model size, got 3");
  CHECK(x == Vector<double>::Zero(2));
}

TEST_CASE("FedAdam, FedYogi and FedAdagrad reject invalid settings and sizes", "[optimizers][validation]") {
  const auto inv = [](auto fn) { return error_of<InvalidArgument>(fn); };
  const auto dim = [](auto fn) { return error_of<DimensionError>(fn); };
  CHECK(inv([] { FedAdagrad x({.beta1 = v_nan}); }) == "fedpp::FedAdagrad: beta1 must be in [0, 1), got nan");
  CHECK(inv([] { FedYogi x({.beta2 = -0.5}); }) == "fedpp::FedYogi: beta2 must be in [0, 1), got -0.5");
  CHECK(inv([] { FedAdam x({.beta2 = 1.0}); }) == "fedpp::FedAdam: beta2 must be in [0, 1), got 1");
  CHECK(inv([] { FedAdam x({.tau = v_nan}); }) == "fedpp::FedAdam: tau must be finite and > 0, got nan");
  CHECK(inv([] { FedYogi x({.lr = v_nan}); }) == "fedpp::FedYogi: lr must be finite and > 0, got nan");
  CHECK(inv([] { FedAdagrad x({.beta1 = 0.0, .beta2 = 0.0, .tau = 1e-12}); }) == "(no throw)");
  const FedAdam adam;
  CHECK(inv([&] { (void)adam.make_state<double>(-3); }) == "fedpp::FedAdam: dim must be >= 0, got -3");
  auto st = adam.make_state<double>(2);
  Vector<double> x = Vector<double>::Zero(2);
  const Vector<double> longer = Vector<double>::Ones(3), u = Vector<double>::Ones(2);
  CHECK(dim([&] { adam.step(x, longer, st, 0); }) == "fedpp::FedAdam: update size must equal the model size, got 3");
  auto big = adam.make_state<double>(3);
  CHECK(dim([&] { adam.step(x, u, big, 0); }) == "fedpp::FedAdam: state size must equal the model size, got 3");
  // m and v are checked apart: a state whose v alone is longer is rejected too.
  auto odd = adam.make_state<double>(2);
  odd.v = Vector<double>::Ones(3);
  CHECK(dim([&] { adam.step(x, u, odd, 0); }) == "fedpp::FedAdam: state size must equal the model size, got 2");
  CHECK(x == Vector<double>::Zero(2));
}

TEST_CASE("FedDynServer rejects invalid settings and sizes with DimensionError as documented",
          "[optimizers][validation][FedDynServer]") {
  const auto inv = [](auto fn) { return error_of<InvalidArgument>(fn); };
  const auto dim = [](auto fn) { return error_of<DimensionError>(fn); };
  CHECK(inv([] { FedDynServer x({.lr = -1.0}); }) == "fedpp::FedDynServer: lr must be finite and > 0, got -1");
  CHECK(inv([] { FedDynServer x({.lr = v_nan}); }) == "fedpp::FedDynServer: lr must be finite and > 0, got nan");
  const FedDynServer s;
  CHECK(inv([&] { (void)s.make_state<double>(-1); }) == "fedpp::FedDynServer: dim must be >= 0, got -1");
  CHECK(inv([&] { (void)s.make_state<double>(0); }) == "(no throw)");
  auto st = s.make_state<double>(2);
  const Vector<double> longer = Vector<double>::Ones(3), u = Vector<double>::Ones(2);
  CHECK(dim([&] { s.observe(st, ClientUpdateView<double>{0, 1.0, as_span(longer), {}}); }) ==
        "fedpp::FedDynServer: update size must equal the state size, got 3");
  CHECK(st.h_sum == Vector<double>::Zero(2));
  Vector<double> x = Vector<double>::Zero(2);
  CHECK(dim([&] { s.step(x, longer, st, ServerContext{0, 4, 1}); }) ==
        "fedpp::FedDynServer: update and state sizes must equal the model size, got 3");
  auto big = s.make_state<double>(3);
  CHECK(dim([&] { s.step(x, u, big, ServerContext{0, 4, 1}); }) ==
        "fedpp::FedDynServer: update and state sizes must equal the model size, got 2");
  CHECK(inv([&] { s.step(x, u, st, ServerContext{0, 0, 1}); }) ==
        "fedpp::FedDynServer: the number of clients must be > 0, got 0");
  CHECK(x == Vector<double>::Zero(2));
  CHECK(st.steps == 0);
  // Without the dual term observe() keeps no sum, so it has nothing to check.
  const FedDynServer plain({.add_dual = false});
  auto pst = plain.make_state<double>(2);
  CHECK(inv([&] { plain.observe(pst, ClientUpdateView<double>{0, 1.0, as_span(longer), {}}); }) == "(no throw)");
}

TEST_CASE("ScaffoldServer rejects invalid settings and sizes with DimensionError as documented",
          "[optimizers][validation][ScaffoldServer]") {
  const auto inv = [](auto fn) { return error_of<InvalidArgument>(fn); };
  const auto dim = [](auto fn) { return error_of<DimensionError>(fn); };
  CHECK(inv([] { ScaffoldServer x({.lr = 0.0}); }) == "fedpp::ScaffoldServer: lr must be finite and > 0, got 0");
  CHECK(inv([] { ScaffoldServer x({.lr = v_inf}); }) == "fedpp::ScaffoldServer: lr must be finite and > 0, got inf");
  const ScaffoldServer s;
  CHECK(inv([&] { (void)s.make_state<float>(-2); }) == "fedpp::ScaffoldServer: dim must be >= 0, got -2");
  CHECK(inv([&] { (void)s.make_state<float>(0); }) == "(no throw)");
  auto st = s.make_state<double>(2);
  const Vector<double> longer = Vector<double>::Ones(3), u = Vector<double>::Ones(2);
  CHECK(dim([&] { s.observe(st, ClientUpdateView<double>{0, 1.0, as_span(u), as_span(longer)}); }) ==
        "fedpp::ScaffoldServer: delta c size must equal the state size, got 3");
  CHECK(dim([&] { s.observe(st, ClientUpdateView<double>{0, 1.0, as_span(u), {}}); }) ==
        "fedpp::ScaffoldServer: delta c size must equal the state size, got 0");
  CHECK(st.pending == Vector<double>::Zero(2));
  Vector<double> x = Vector<double>::Zero(2);
  CHECK(dim([&] { s.step(x, longer, st, ServerContext{0, 4, 1}); }) ==
        "fedpp::ScaffoldServer: update and state sizes must equal the model size, got 3");
  auto big = s.make_state<double>(3);
  CHECK(dim([&] { s.step(x, u, big, ServerContext{0, 4, 1}); }) ==
        "fedpp::ScaffoldServer: update and state sizes must equal the model size, got 2");
  CHECK(inv([&] { s.step(x, u, st, ServerContext{0, 0, 1}); }) ==
        "fedpp::ScaffoldServer: the number of clients must be > 0, got 0");
  CHECK(x == Vector<double>::Zero(2));
  CHECK(st.steps == 0);
}
