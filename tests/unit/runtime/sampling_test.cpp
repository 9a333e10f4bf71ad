// Client sampling: how many clients a round asks (rounding, clamping, the explicit count), and which
// ones (distinct, sorted, uniform over the subsets, seeded), with the documented errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "fedpp/runtime/sampling.hpp"
#include "support/checks.hpp"

using namespace fedpp;
using fedpp_test::message_of;

TEST_CASE("clients_per_round rounds fraction * total to nearest and clamps it to [1, total]", "[runtime][sampling]") {
  CHECK(clients_per_round(100, 0.1, 0) == 10);
  CHECK(clients_per_round(10, 0.25, 0) == 3);   // 2.5 rounds half away from zero
  CHECK(clients_per_round(10, 0.24, 0) == 2);   // 2.4
  CHECK(clients_per_round(10, 0.27, 0) == 3);   // 2.7: to nearest, not down
  CHECK(clients_per_round(100, 0.001, 0) == 1);  // 0.1 rounds to 0, clamped to 1
  CHECK(clients_per_round(1, 0.3, 0) == 1);
  CHECK(clients_per_round(7, 1.0, 0) == 7);
  // An explicit count wins over the fraction, up to the number of clients.
  CHECK(clients_per_round(100, 0.1, 25) == 25);
  CHECK(clients_per_round(10, 0.1, 10) == 10);
  CHECK(clients_per_round(10, 0.0, 1) == 1);
}

TEST_CASE("clients_per_round reports bad settings with the parameter and the value", "[runtime][sampling]") {
  CHECK_THROWS_AS(clients_per_round(100, 1.5, 0), InvalidArgument);
  CHECK(message_of([] { (void)clients_per_round(100, 1.5, 0); }) ==
        "fedpp::clients_per_round: fraction must be in (0, 1], got 1.5");
  CHECK(message_of([] { (void)clients_per_round(100, 0.0, 0); }) ==
        "fedpp::clients_per_round: fraction must be in (0, 1], got 0");
  CHECK(message_of([] { (void)clients_per_round(100, std::numeric_limits<double>::quiet_NaN(), 0); }) ==
        "fedpp::clients_per_round: fraction must be in (0, 1], got nan");
  CHECK(message_of([] { (void)clients_per_round(10, 0.1, 11); }) ==
        "fedpp::clients_per_round: clients per round must be <= the number of clients 10, got 11");
  CHECK(message_of([] { (void)clients_per_round(0, 0.1, 0); }) ==
        "fedpp::clients_per_round: the federation must have at least one client, got 0");
  CHECK(message_of([] { (void)clients_per_round(0, 0.1, 1); }) ==
        "fedpp::clients_per_round: the federation must have at least one client, got 0");
}

TEST_CASE("sample_clients draws distinct sorted ids, reproducibly", "[runtime][sampling]") {
  for (std::uint64_t round = 0; round < 50; ++round) {
    Rng rng = make_rng(5, round, server_stream, Purpose::sampling);
    const auto ids = sample_clients(20, 5, rng);
    REQUIRE(ids.size() == 5);
    REQUIRE(std::is_sorted(ids.begin(), ids.end()));
    REQUIRE(std::set<ClientId>(ids.begin(), ids.end()).size() == 5);
    REQUIRE(ids.back() < 20);
  }
  Rng a = make_rng(5, 3, server_stream, Purpose::sampling), b = make_rng(5, 3, server_stream, Purpose::sampling);
  CHECK(sample_clients(20, 5, a) == sample_clients(20, 5, b));
  Rng c = make_rng(5, 4, server_stream, Purpose::sampling);
  Rng e = make_rng(5, 3, server_stream, Purpose::sampling);
  CHECK(sample_clients(20, 5, c) != sample_clients(20, 5, e));
  // Everyone, or no one.
  Rng all = make_rng(1, 0, server_stream, Purpose::sampling);
  CHECK(sample_clients(6, 6, all) == std::vector<ClientId>{0, 1, 2, 3, 4, 5});
  CHECK(sample_clients(6, 0, all).empty());
  CHECK(message_of([&] { (void)sample_clients(5, 6, all); }) == "fedpp::sample_clients: m must be <= total 5, got 6");
}

TEST_CASE("sample_clients is uniform over the subsets", "[runtime][sampling]") {
  // 2 of 4: each of the 6 pairs has probability 1/6. 6000 draws: 1000 expected per pair, standard
  // deviation sqrt(6000 * 1/6 * 5/6) = 28.9, so +-12% is more than 4 deviations. A biased shuffle
  // (say the swap partner drawn from all of [0, total)) includes client 1 with probability 5/8
  // instead of 1/2 and puts its pairs near 1250.
  std::map<std::pair<ClientId, ClientId>, int> pairs;
  std::vector<int> hits(4, 0);
  for (std::uint64_t round = 0; round < 6000; ++round) {
    Rng rng = make_rng(11, round, server_stream, Purpose::sampling);
    const auto ids = sample_clients(4, 2, rng);
    REQUIRE(ids.size() == 2);
    ++pairs[{ids[0], ids[1]}];
    for (auto id : ids) ++hits[id];
  }
  CHECK(pairs.size() == 6);
  for (const auto& [pair, count] : pairs) {
    CAPTURE(pair.first, pair.second);
    CHECK(count == Approx(1000).epsilon(0.12));
  }
  for (int h : hits) CHECK(h == Approx(3000).epsilon(0.06));  // sd 38.7 per client
  // 3 of 20 over 4000 draws: each client is drawn with probability 3/20 (600 expected, sd 22.6).
  std::vector<int> wide(20, 0);
  for (std::uint64_t round = 0; round < 4000; ++round) {
    Rng rng = make_rng(5, round, server_stream, Purpose::sampling);
    for (auto id : sample_clients(20, 3, rng)) ++wide[id];
  }
  for (int h : wide) CHECK(h == Approx(600).epsilon(0.16));
}
