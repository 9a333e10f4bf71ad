// Tests of fedpp::Mimic: ByzFL golden values (fixed index), the top-direction heuristic against
// a plain Eigen reference of the documented algorithm over several rounds (warm-up, power
// steps, locking onto a client id, absent client), convergence to the top principal direction,
// state handling, errors and thread-count bit identity.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <Eigen/Eigenvalues>

#include "fedpp/attacks/mimic.hpp"
#include "fedpp/core/rng.hpp"
#include "support/attack_batches.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using namespace fedpp_test;

namespace {

// Honest updates g_i = base + a_i u + 0.02 noise for the given client ids, where u is a fixed unit
// direction and a_i = 0.4 * (id - 7) (distinct, well separated): u is the top principal direction.
template <typename S>
UpdateBatch<S> spread_batch(Index d, const std::vector<ClientId>& ids, std::uint64_t seed, Vector<double>* u_out = nullptr) {
  auto urng = make_rng(1234, 0, 0, Purpose::user);
  Vector<double> u(d), base(d);
  for (Index j = 0; j < d; ++j) u[j] = urng.normal();
  u.normalize();
  for (Index j = 0; j < d; ++j) base[j] = 0.2 * urng.normal();
  if (u_out) *u_out = u;
  auto rng = make_rng(seed, 0, 0, Purpose::user);
  Matrix<S> m(d, static_cast<Index>(ids.size()));
  for (Index i = 0; i < m.cols(); ++i) {
    const double a = 0.4 * (static_cast<double>(ids[static_cast<std::size_t>(i)]) - 7.0);
    for (Index j = 0; j < d; ++j) m(j, i) = static_cast<S>(base[j] + a * u[j] + 0.02 * rng.normal());
  }
  return UpdateBatch<S>(m, {}, ids);
}

// The documented top-direction algorithm written plainly with Eigen in double.
struct ReferenceMimic {
  ReferenceMimic(Index w, int k) : warmup(w), iterations(k) {}
  Index warmup;
  int iterations;
  Index t = 0;
  Vector<double> mu, z;
  std::optional<ClientId> chosen;

  Index argmax(const Matrix<double>& X) const {
    const Vector<double> p = X.transpose() * z;
    Index best = 0;
    for (Index i = 1; i < p.size(); ++i)
      if (p[i] > p[best]) best = i;
    return best;
  }
  void step(const Matrix<double>& X, Vector<double>& w) const {
    const Matrix<double> C = X.colwise() - mu;
    const Vector<double> cw = C * (C.transpose() * w);
    if (cw.norm() > 0) w = cw / cw.norm();
  }
  Index choose(const Matrix<double>& X, const std::vector<ClientId>& ids, Rng& rng) {
    if (t >= warmup) {
      const auto it = std::find(ids.begin(), ids.end(), *chosen);
      if (it != ids.end()) return static_cast<Index>(it - ids.begin());
      return argmax(X);
    }
    const Vector<double> avg = X.rowwise().mean();
    if (t == 0) {
      mu = avg;
      z.resize(X.rows());
      for (Index j = 0; j < z.size(); ++j) z[j] = rng.normal();
      z.normalize();
      for (int k = 0; k < iterations; ++k) step(X, z);
    } else {
      const double td = static_cast<double>(t);
      mu = td / (td + 1) * mu + avg / (td + 1);
      Vector<double> w = z;
      for (int k = 0; k < iterations; ++k) step(X, w);
      z = td / (td + 1) * z + w / (td + 1);
      z.normalize();
    }
    ++t;
    const Index pick = argmax(X);
    chosen = ids[static_cast<std::size_t>(pick)];
    return pick;
  }
};

template <typename S>
Matrix<double> as_double(const UpdateBatch<S>& b) {
  return b.matrix().template cast<double>();
}

template <typename S>
bool copies_column(const UpdateBatch<S>& byz, const UpdateBatch<S>& honest, Index col) {
  for (Index c = 0; c < byz.size(); ++c)
    if (std::memcmp(byz.column(c).data(), honest.column(col).data(), static_cast<std::size_t>(byz.dim()) * sizeof(S)) != 0)
      return false;
  return true;
}

}  // namespace

static_assert(Attack<Mimic, float> && Attack<Mimic, double>);

TEMPLATE_TEST_CASE("Mimic(index) reproduces ByzFL's Mimic golden values", "[attacks][Mimic]", float, double) {
  using S = TestType;
  const auto honest = byzfl_input<S>();
  for (Index idx : {0, 1, 2}) {
    auto byz = normal_batch<S>(3, 2, 1);
    Rng rng(0);
    Mimic m(idx);
    CHECK(m.target() == MimicTarget::index);
    CHECK(m.index() == idx);
    m.corrupt(byz, honest, AttackContext{0, 5, 2}, rng);
    for (Index c = 0; c < 2; ++c)
      for (Index j = 0; j < 3; ++j) CHECK(byz.column(c)[static_cast<std::size_t>(j)] == S(1 + 3 * idx + j));
  }
}

TEST_CASE("Mimic(index) needs an honest update at that position", "[attacks][Mimic]") {
  CHECK(message_of([] { Mimic(-1); }) == "fedpp::Mimic: index must be >= 0, got -1");
  auto byz = normal_batch<float>(3, 1, 1);
  Rng rng(0);
  Mimic m(3);
  CHECK(message_of([&] { m.corrupt(byz, byzfl_input<float>(), AttackContext{}, rng); }) ==
        "fedpp::Mimic::corrupt: index must be < the number of honest updates (3), got 3");
  CHECK(message_of([&] { Mimic().corrupt(byz, UpdateBatch<float>(3), AttackContext{}, rng); }) ==
        "fedpp::Mimic::corrupt: needs at least 1 honest update (a client to copy), got 0");
  CHECK_THROWS_AS(Mimic().corrupt(byz, normal_batch<float>(4, 2, 1), AttackContext{}, rng), DimensionError);
  CHECK(message_of([&] { Mimic().corrupt(byz, normal_batch<float>(4, 2, 1), AttackContext{}, rng); }) ==
        "fedpp::Mimic::corrupt: honest updates must have the dimension of the Byzantine updates (3), got 4");
  // index = size - 1 is the last valid position.
  Mimic last(2);
  CHECK_NOTHROW(last.corrupt(byz, byzfl_input<float>(), AttackContext{}, rng));
  CHECK(byz.column(0)[0] == 7.0f);
}

TEMPLATE_TEST_CASE("Mimic::top_direction follows the documented algorithm round by round", "[attacks][Mimic]", float,
                   double) {
  using S = TestType;
  const Index d = 2100;  // two coordinate blocks
  Mimic attack = Mimic::top_direction(3, 2);
  CHECK(attack.target() == MimicTarget::top_direction);
  CHECK(attack.warmup_rounds() == 3);
  CHECK(attack.power_iterations() == 2);
  ReferenceMimic ref(3, 2);
  Rng rng(99), ref_rng(99);
  // Rounds 0-2 warm up; round 3 keeps the chosen client (its position may change: client 7
  // is absent) although a new client projects further on z; round 4 drops the chosen client.
  const std::vector<ClientId> all{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
  const std::vector<std::vector<ClientId>> warm = {
      all, {0, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14}, {0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}};
  std::optional<ClientId> locked;
  for (std::size_t r = 0; r < 5; ++r) {
    std::vector<ClientId> ids = r < 3 ? warm[r] : all;
    if (r == 3) ids.erase(std::find(ids.begin(), ids.end(), ClientId{7}));
    if (r == 4) ids.erase(std::find(ids.begin(), ids.end(), *locked));
    auto honest = spread_batch<S>(d, ids, 100 + r);
    if (r == 3) {
      // A new client (id 99) further along z than the locked one: the lock, not the argmax, decides.
      const auto pos = static_cast<Index>(std::find(ids.begin(), ids.end(), *locked) - ids.begin());
      Vector<S> extra(d);
      for (Index j = 0; j < d; ++j)
        extra[j] = static_cast<S>(static_cast<double>(honest.column(pos)[static_cast<std::size_t>(j)]) +
                                  5.0 * attack.direction()[j]);
      honest.push_back(ClientId{99}, 1.0, as_span(extra));
      ids.push_back(ClientId{99});
    }
    auto byz = normal_batch<S>(d, 3, 200 + r);
    const Index want = ref.choose(as_double(honest), ids, ref_rng);
    attack.corrupt(byz, honest, AttackContext{r, static_cast<Index>(ids.size()) + 3, 3}, rng);
    CAPTURE(r, want);
    CHECK(copies_column(byz, honest, want));
    CHECK(attack.rounds_seen() == std::min<Index>(static_cast<Index>(r) + 1, 3));
    CHECK((attack.direction() - ref.z).norm() < 1e-9);
    CHECK(std::abs(attack.direction().norm() - 1.0) < 1e-12);
    REQUIRE(attack.chosen_client());
    CHECK(*attack.chosen_client() == *ref.chosen);
    if (r == 2) locked = attack.chosen_client();
    if (r == 3) {
      CHECK(ids[static_cast<std::size_t>(want)] == *locked);  // the locked client, at another position
      CHECK(ref.argmax(as_double(honest)) == static_cast<Index>(ids.size()) - 1);  // not the argmax (client 99)
    }
    if (r == 4) CHECK(ids[static_cast<std::size_t>(want)] != *locked);  // absent: argmax under the last z
  }
}

TEST_CASE("Mimic::top_direction finds the top principal direction and an extreme client", "[attacks][Mimic]") {
  const Index d = 3000;
  std::vector<ClientId> ids(15);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<ClientId>(i);
  Vector<double> u;
  const auto honest = spread_batch<double>(d, ids, 5, &u);
  auto byz = normal_batch<double>(d, 2, 6);
  Rng rng(7);
  Mimic attack = Mimic::top_direction(1, 30);
  attack.corrupt(byz, honest, AttackContext{0, 17, 2}, rng);
  // The exact top eigenvector of C = Xc Xc^T, through the eigenvectors of the small Gram matrix Xc^T Xc.
  const Matrix<double> X = honest.matrix();
  const Matrix<double> Xc = X.colwise() - X.rowwise().mean();
  Eigen::SelfAdjointEigenSolver<Matrix<double>> eig(Xc.transpose() * Xc);
  const Index n = Xc.cols();
  REQUIRE(eig.eigenvalues()[n - 1] > 2.0 * eig.eigenvalues()[n - 2]);  // a clear gap
  const Vector<double> top = (Xc * eig.eigenvectors().col(n - 1)).normalized();
  CHECK(std::abs(attack.direction().dot(top)) > 1.0 - 1e-10);
  CHECK(std::abs(attack.direction().dot(u)) > 0.98);  // close to the planted direction
  // a_i = 0.4 (id - 7) is largest for id 14 and smallest for id 0; z = +u or -u picks one of them.
  REQUIRE(attack.chosen_client());
  const ClientId c = *attack.chosen_client();
  CHECK((c == 0 || c == 14));
  CHECK(copies_column(byz, honest, static_cast<Index>(c)));
  CHECK(((c == 14) == (attack.direction().dot(u) > 0)));
}

TEST_CASE("Mimic::top_direction state: empty rounds, reset, one honest update, dimension changes", "[attacks][Mimic]") {
  Mimic attack = Mimic::top_direction(2);
  std::vector<ClientId> ids{3, 4, 5, 6};
  const auto honest = spread_batch<float>(100, ids, 1);
  UpdateBatch<float> empty(100);
  Rng rng(5), ref(5);
  attack.corrupt(empty, honest, AttackContext{0, 4, 0}, rng);
  CHECK(attack.rounds_seen() == 0);
  CHECK(attack.direction().size() == 0);
  CHECK_FALSE(attack.chosen_client());
  CHECK(rng() == ref());

  auto byz = normal_batch<float>(100, 1, 2);
  attack.corrupt(byz, honest, AttackContext{1, 5, 1}, rng);
  CHECK(attack.rounds_seen() == 1);
  CHECK(attack.direction().size() == 100);
  auto wrong = normal_batch<float>(50, 1, 2);
  CHECK(message_of([&] { attack.corrupt(wrong, spread_batch<float>(50, ids, 2), AttackContext{}, rng); }) ==
        "fedpp::Mimic::corrupt: the update dimension must not change between rounds (100), got 50");
  attack.reset();
  CHECK(attack.rounds_seen() == 0);
  CHECK_FALSE(attack.chosen_client());
  CHECK_NOTHROW(attack.corrupt(wrong, spread_batch<float>(50, ids, 2), AttackContext{}, rng));

  // A single honest update: C z = 0 keeps the (unit) start direction; the update is copied.
  Mimic single = Mimic::top_direction();
  const std::vector<ClientId> one{9};
  const auto h1 = spread_batch<double>(64, one, 3);
  auto b1 = normal_batch<double>(64, 2, 4);
  single.corrupt(b1, h1, AttackContext{0, 3, 2}, rng);
  CHECK(copies_column(b1, h1, 0));
  CHECK(std::abs(single.direction().norm() - 1.0) < 1e-12);
  CHECK(*single.chosen_client() == 9);
}

TEST_CASE("Mimic validates the heuristic's settings", "[attacks][Mimic]") {
  CHECK(message_of([] { (void)Mimic::top_direction(0); }) == "fedpp::Mimic: warmup_rounds must be >= 1, got 0");
  CHECK(message_of([] { (void)Mimic::top_direction(1, 0); }) == "fedpp::Mimic: power_iterations must be >= 1, got 0");
  const Mimic m;
  CHECK(m.target() == MimicTarget::index);
  CHECK(m.index() == 0);
}

TEMPLATE_TEST_CASE("Mimic::top_direction gives the same bits with 1 and 2 threads", "[attacks][Mimic]", float, double) {
  using S = TestType;
  ThreadGuard guard;
  std::vector<ClientId> ids(12);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<ClientId>(i + 2);
  const auto h0 = spread_batch<S>(100003, ids, 1);
  const auto h1 = spread_batch<S>(100003, ids, 2);
  const auto byz0 = normal_batch<S>(100003, 3, 3);
  Mimic a = Mimic::top_direction(2, 2), b = a;
  auto ba = byz0, bb = byz0;
  Rng ra(4), rb(4);
  set_max_threads(1);
  a.corrupt(ba, h0, AttackContext{0, 15, 3}, ra);
  a.corrupt(ba, h1, AttackContext{1, 15, 3}, ra);
  set_max_threads(2);
  b.corrupt(bb, h0, AttackContext{0, 15, 3}, rb);
  b.corrupt(bb, h1, AttackContext{1, 15, 3}, rb);
  CHECK(same_bits(ba, bb));
  CHECK(std::memcmp(a.direction().data(), b.direction().data(), 100003 * sizeof(double)) == 0);
  CHECK(*a.chosen_client() == *b.chosen_client());
}
