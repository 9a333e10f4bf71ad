// The local loop of every local optimizer (LocalSgd, FedProx, Scaffold I/II, FedDyn, Sam/ASAM,
// FedSpeed in both forms) against the hand-expanded reference of support/optimizer_reference.hpp
// (plain loops over doubles, written from the documented formulas, never through fedpp's loop):
// mini-batches of a quadratic with per-sample curvatures (7 samples, batches of 3, 3 and 1, so the
// order and the reshuffle of every pass matter), over several rounds with lr decay, for every
// combination of momentum (heavy ball, Nesterov), clipping that is active on some steps and not
// others, weight decay and epochs or steps mode; momentum on and off runs the loop's unfused and
// fused paths. Positions, momentum buffers, client states, step and sample counts and the mean loss
// are all compared.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "fedpp/optimizers/fed_dyn.hpp"
#include "fedpp/optimizers/fed_prox.hpp"
#include "fedpp/optimizers/fed_speed.hpp"
#include "fedpp/optimizers/local_sgd.hpp"
#include "fedpp/optimizers/sam.hpp"
#include "fedpp/optimizers/scaffold.hpp"
#include "support/optimizer_reference.hpp"
#include "support/quadratic.hpp"

using namespace fedpp;
using fedpp_test::Quadratic;
using fedpp_test::RefRound;
using fedpp_test::RefStepSettings;
using fedpp_test::RefVec;
using fedpp_test::rel_error;

namespace {

constexpr double loop_tol = 1e-12;  // different summation orders only (norms, batch means)

// 7 samples in 3 dimensions, curvatures 0.5 .. 3.5, points spread over about [-4, 4]^3.
struct LoopProblem {
  Matrix<double> xs{3, 7};
  std::vector<double> a{0.5, 3.0, 1.0, 2.0, 1.5, 3.5, 0.75};
  std::shared_ptr<Dataset<double>> ds;
  DatasetView<double> view;
  Quadratic model{3};
  Vector<double> w0{{1.0, -1.0, 0.5}};
  LoopProblem() {
    Rng g(31);
    for (Index j = 0; j < xs.cols(); ++j)
      for (Index k = 0; k < 3; ++k) xs(k, j) = 2.0 * g.normal();
    ds = fedpp_test::quadratic_samples(xs, a);
    view = DatasetView<double>::all(ds);
  }
  [[nodiscard]] std::size_t n() const { return static_cast<std::size_t>(xs.cols()); }
  // The reference base gradient (plain loops).
  [[nodiscard]] auto plain() const {
    return [this](const std::vector<std::uint32_t>& b, const RefVec& w, RefVec& g) {
      return fedpp_test::ref_quadratic_batch(ds->features, b, w, g);
    };
  }
};

// One combination of the loop's options.
struct LoopCombo {
  double momentum = 0;
  bool nesterov = false;
  double clip = 0;
  double wd = 0;
  bool steps_mode = false;
  bool reset = true;
};

// momentum off / heavy ball / Nesterov x clip off / on x wd off / on x epochs / steps; the momentum
// reset convention alternates between the combinations with momentum.
std::vector<LoopCombo> loop_combos(double clip) {
  std::vector<LoopCombo> out;
  int i = 0;
  for (int m = 0; m < 3; ++m)
    for (double c : {0.0, clip})
      for (double wd : {0.0, 0.05})
        for (bool steps : {false, true})
          out.push_back({m == 0 ? 0.0 : 0.6, m == 2, c, wd, steps, m == 0 || ++i % 2 == 0});
  return out;
}

LocalSgdOptions loop_sgd_options(const LoopCombo& c) {
  return {.lr = 0.1,
          .epochs = 2,
          .steps = c.steps_mode ? 8 : 0,  // 8 steps: passes of 3 batches, reshuffled at steps 0, 3, 6
          .batch_size = 3,
          .weight_decay = c.wd,
          .momentum = c.momentum,
          .nesterov = c.nesterov,
          .reset_momentum_each_round = c.reset,
          .clip_norm = c.clip,
          .lr_decay = 0.85};
}

// The reference step settings of round r (lr decayed by 0.85^r).
RefStepSettings loop_step(const LoopCombo& c, std::uint64_t r, double extra_wd = 0.0, double mu = 0.0) {
  return {.lr = 0.1 * std::pow(0.85, static_cast<double>(r)),
          .wd = c.wd + extra_wd,
          .momentum = c.momentum,
          .nesterov = c.nesterov,
          .clip = c.clip,
          .mu = mu};
}

std::size_t loop_total(const LoopCombo& c) { return c.steps_mode ? 8 : 2 * 3; }

// The library's result against the reference's round.
void check_loop_result(const LocalResult& got, const RefRound& ref) {
  CHECK(got.steps == static_cast<Index>(ref.steps));
  CHECK(got.samples == static_cast<Index>(ref.samples));
  CHECK(std::abs(got.train_loss - ref.mean_loss) <= loop_tol * std::max(1.0, std::abs(ref.mean_loss)));
}

// The momentum buffer against the reference's (empty without momentum).
void check_loop_momentum(const Vector<double>& got, const RefVec& ref, const LoopCombo& c) {
  if (c.momentum == 0.0) {
    CHECK(got.size() == 0);
  } else {
    CHECK(rel_error(got, ref) <= loop_tol);
  }
}

// Start of a round for the reference's momentum buffer.
void loop_begin_round(RefVec& v, const LoopCombo& c, std::size_t d) {
  if (c.momentum != 0.0 && (c.reset || v.empty())) v.assign(d, 0.0);
}

}  // namespace

TEST_CASE("LocalSgd matches the hand-expanded mini-batch loop for every option combination",
          "[optimizers][sgd_loop][LocalSgd]") {
  const LoopProblem pb;
  std::size_t clipped = 0, steps = 0;
  for (const LoopCombo& c : loop_combos(2.0)) {
    CAPTURE(c.momentum, c.nesterov, c.clip, c.wd, c.steps_mode, c.reset);
    const LocalSgd opt(loop_sgd_options(c));
    auto st = opt.make_state(pb.model);
    Vector<double> w = pb.w0;
    RefVec rw = fedpp_test::to_ref(pb.w0), rv;
    for (std::uint64_t r = 0; r < 3; ++r) {
      CAPTURE(r);
      Rng rng(100 + r), rrng(100 + r);
      const LocalResult got = opt.train(pb.model, w, pb.view, st, {.round = r}, rng);
      loop_begin_round(rv, c, 3);
      const RefRound ref = fedpp_test::ref_round(rw, rv, pb.n(), 3, loop_total(c), rrng, {}, {}, loop_step(c, r),
                                                 pb.plain());
      CHECK(rel_error(w, rw) <= loop_tol);
      check_loop_momentum(st.momentum, rv, c);
      check_loop_result(got, ref);
      if (c.clip > 0) {
        clipped += ref.clipped;
        steps += ref.steps;
      }
    }
  }
  // Clipping was active on some steps and inactive on others.
  CHECK(clipped > 0);
  CHECK(clipped < steps);
}

TEST_CASE("FedProx matches the hand-expanded loop with mu (w - x_t) after clipping and weight decay",
          "[optimizers][sgd_loop][FedProx]") {
  const LoopProblem pb;
  for (double mu : {0.0, 0.4}) {
    for (const LoopCombo& c : loop_combos(2.0)) {
      CAPTURE(mu, c.momentum, c.nesterov, c.clip, c.wd, c.steps_mode, c.reset);
      const FedProx opt({.mu = mu, .sgd = loop_sgd_options(c)});
      auto st = opt.make_state(pb.model);
      Vector<double> w = pb.w0;
      RefVec rw = fedpp_test::to_ref(pb.w0), rv;
      for (std::uint64_t r = 0; r < 3; ++r) {
        CAPTURE(r);
        Rng rng(7 + r), rrng(7 + r);
        const RefVec anchor = rw;  // the round's global model
        const LocalResult got = opt.train(pb.model, w, pb.view, st, {.round = r}, rng);
        loop_begin_round(rv, c, 3);
        const RefRound ref = fedpp_test::ref_round(rw, rv, pb.n(), 3, loop_total(c), rrng, {}, anchor,
                                                   loop_step(c, r, 0.0, mu), pb.plain());
        CHECK(rel_error(w, rw) <= loop_tol);
        check_loop_momentum(st.momentum, rv, c);
        check_loop_result(got, ref);
      }
    }
  }
}

TEST_CASE("Scaffold matches the hand-expanded loop with g + c - c_i, and both control-variate refreshes",
          "[optimizers][sgd_loop][Scaffold]") {
  const LoopProblem pb;
  // The server control variate of each round (what ScaffoldServer would broadcast).
  const std::vector<RefVec> server_c{{0.4, -0.3, 0.2}, {-0.5, 0.1, 0.6}, {0.3, 0.8, -0.2}};
  int idx = 0;
  for (const LoopCombo& c : loop_combos(2.5)) {
    const auto variant = idx++ % 2 == 0 ? ScaffoldVariant::option2 : ScaffoldVariant::option1;
    CAPTURE(c.momentum, c.nesterov, c.clip, c.wd, c.steps_mode, c.reset, variant == ScaffoldVariant::option1);
    const Scaffold opt({.variant = variant, .sgd = loop_sgd_options(c)});
    auto st = opt.make_state(pb.model);
    Vector<double> w = pb.w0;
    RefVec rw = fedpp_test::to_ref(pb.w0), rv, ci(3, 0.0);
    for (std::uint64_t r = 0; r < 3; ++r) {
      CAPTURE(r);
      const RefVec& cs = server_c[r];
      const Vector<double> c_vec{{cs[0], cs[1], cs[2]}};
      LocalExchange<double> ex{as_span(c_vec), {}};
      Rng rng(50 + r), rrng(50 + r);
      const LocalResult got = opt.train(pb.model, w, pb.view, st, {.round = r}, rng, ex);

      const RefVec x = rw;
      RefVec lin(3);
      for (std::size_t k = 0; k < 3; ++k) lin[k] = cs[k] - ci[k];
      loop_begin_round(rv, c, 3);
      const RefStepSettings s = loop_step(c, r);
      const RefRound ref = fedpp_test::ref_round(rw, rv, pb.n(), 3, loop_total(c), rrng, lin, {}, s, pb.plain());
      // option I: c_i+ = grad f_i(x_t) over the whole shard; option II: c_i - c + (x_t - y_i) / (K lr_r).
      RefVec ci_new(3);
      if (variant == ScaffoldVariant::option1) {
        std::vector<std::uint32_t> all(pb.n());
        for (std::size_t j = 0; j < all.size(); ++j) all[j] = static_cast<std::uint32_t>(j);
        fedpp_test::ref_quadratic_batch(pb.ds->features, all, x, ci_new);
      } else {
        for (std::size_t k = 0; k < 3; ++k)
          ci_new[k] = ci[k] - cs[k] + (x[k] - rw[k]) / (static_cast<double>(ref.steps) * s.lr);
      }
      RefVec delta(3);
      for (std::size_t k = 0; k < 3; ++k) delta[k] = ci_new[k] - ci[k];
      ci = ci_new;

      CHECK(rel_error(w, rw) <= loop_tol);
      check_loop_momentum(st.momentum, rv, c);
      check_loop_result(got, ref);
      // c_i+ divides a small model change by K lr: its rounding error is larger by about 1 / (K lr).
      CHECK(rel_error(st.c, ci) <= 1e-10);
      CHECK(rel_error(ex.reply, delta) <= 1e-10);
    }
  }
}

TEST_CASE("FedDyn matches the hand-expanded loop with alpha (h_i - x_t) clipped and (wd + alpha) w added",
          "[optimizers][sgd_loop][FedDyn]") {
  const LoopProblem pb;
  const double alpha = 0.3;
  for (const LoopCombo& c : loop_combos(2.5)) {
    CAPTURE(c.momentum, c.nesterov, c.clip, c.wd, c.steps_mode, c.reset);
    const FedDyn opt({.alpha = alpha, .sgd = loop_sgd_options(c)});
    auto st = opt.make_state(pb.model);
    Vector<double> w = pb.w0;
    RefVec rw = fedpp_test::to_ref(pb.w0), rv, h(3, 0.0);
    for (std::uint64_t r = 0; r < 3; ++r) {
      CAPTURE(r);
      Rng rng(20 + r), rrng(20 + r);
      const LocalResult got = opt.train(pb.model, w, pb.view, st, {.round = r}, rng);
      const RefVec x = rw;
      RefVec lin(3);
      for (std::size_t k = 0; k < 3; ++k) lin[k] = alpha * (h[k] - x[k]);
      loop_begin_round(rv, c, 3);
      const RefRound ref = fedpp_test::ref_round(rw, rv, pb.n(), 3, loop_total(c), rrng, lin, {},
                                                 loop_step(c, r, alpha), pb.plain());
      for (std::size_t k = 0; k < 3; ++k) h[k] += rw[k] - x[k];
      CHECK(rel_error(w, rw) <= loop_tol);
      CHECK(rel_error(st.h, h) <= loop_tol);
      check_loop_momentum(st.momentum, rv, c);
      check_loop_result(got, ref);
      // The next round starts from another global model (as after a server step).
      w *= 0.5;
      for (double& e : rw) e *= 0.5;
    }
  }
}

TEST_CASE("Sam and ASAM match the hand-expanded loop with the gradient at the ascent point",
          "[optimizers][sgd_loop][Sam]") {
  const LoopProblem pb;
  const double rho = 0.3;
  for (bool adaptive : {false, true}) {
    for (const LoopCombo& c : loop_combos(2.0)) {
      CAPTURE(adaptive, c.momentum, c.nesterov, c.clip, c.wd, c.steps_mode, c.reset);
      const Sam opt({.rho = rho, .adaptive = adaptive, .sgd = loop_sgd_options(c)});
      auto st = opt.make_state(pb.model);
      Vector<double> w = pb.w0;
      RefVec rw = fedpp_test::to_ref(pb.w0), rv;
      for (std::uint64_t r = 0; r < 3; ++r) {
        CAPTURE(r);
        Rng rng(3 + r), rrng(3 + r);
        const LocalResult got = opt.train(pb.model, w, pb.view, st, {.round = r}, rng);
        loop_begin_round(rv, c, 3);
        const auto base = [&](const std::vector<std::uint32_t>& b, const RefVec& x, RefVec& g) {
          return fedpp_test::ref_sam_batch(pb.ds->features, b, x, rho, adaptive, 1.0, 1e-7, g);
        };
        const RefRound ref =
            fedpp_test::ref_round(rw, rv, pb.n(), 3, loop_total(c), rrng, {}, {}, loop_step(c, r), base);
        CHECK(rel_error(w, rw) <= loop_tol);
        check_loop_momentum(st.momentum, rv, c);
        check_loop_result(got, ref);
      }
    }
  }
}

TEST_CASE("FedSpeed matches the hand-expanded loop: quasi-gradient, prox correction, both forms",
          "[optimizers][sgd_loop][FedSpeed]") {
  const LoopProblem pb;
  const double prox = 0.25, rho = 0.2;
  int idx = 0;
  for (double alpha : {1.0, 0.25}) {
    for (const LoopCombo& c : loop_combos(2.5)) {
      const bool adaptive = idx % 2 == 1;
      const auto form = idx++ % 3 == 0 ? FedSpeedForm::paper : FedSpeedForm::reference;
      CAPTURE(alpha, adaptive, form == FedSpeedForm::paper, c.momentum, c.nesterov, c.clip, c.wd, c.steps_mode);
      const FedSpeed opt({.prox = prox, .rho = rho, .alpha = alpha, .adaptive = adaptive, .form = form,
                          .sgd = loop_sgd_options(c)});
      auto st = opt.make_state(pb.model);
      Vector<double> w = pb.w0;
      RefVec rw = fedpp_test::to_ref(pb.w0), rv, h(3, 0.0);
      for (std::uint64_t r = 0; r < 3; ++r) {
        CAPTURE(r);
        Rng rng(40 + r), rrng(40 + r);
        const LocalResult got = opt.train(pb.model, w, pb.view, st, {.round = r}, rng);
        const RefVec x = rw;
        RefVec lin(3);
        for (std::size_t k = 0; k < 3; ++k) lin[k] = prox * (h[k] - x[k]);
        loop_begin_round(rv, c, 3);
        const auto base = [&](const std::vector<std::uint32_t>& b, const RefVec& p, RefVec& g) {
          return fedpp_test::ref_sam_batch(pb.ds->features, b, p, rho, adaptive, alpha, 1e-7, g);
        };
        const RefRound ref =
            fedpp_test::ref_round(rw, rv, pb.n(), 3, loop_total(c), rrng, lin, {}, loop_step(c, r, prox), base);
        for (std::size_t k = 0; k < 3; ++k) h[k] += rw[k] - x[k];
        // The paper form sends x_hat_i = x_K + h_i.
        if (form == FedSpeedForm::paper)
          for (std::size_t k = 0; k < 3; ++k) rw[k] += h[k];
        CHECK(rel_error(w, rw) <= loop_tol);
        CHECK(rel_error(st.h, h) <= loop_tol);
        check_loop_momentum(st.momentum, rv, c);
        check_loop_result(got, ref);
        w *= 0.5;
        for (double& e : rw) e *= 0.5;
      }
    }
  }
}
