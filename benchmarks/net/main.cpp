// bench_net: fedpp's TCP transport against raw sockets, in one run (docs/performance.md).
//
//   ingest    n clients each send one update of d floats (Identity payload) to the server at the
//             same moment; time from that moment until the server has handed every reply to the
//             round's handler, against a raw Asio transfer of the same bytes over the same number
//             of loopback connections (read into preallocated buffers), interleaved repetitions.
//   tls       the same with TLS on both (fedpp over TLS against raw Asio SSL streams).
//   overhead  one Server round (WeightedMean, n clients, d floats) over TCP against the same round
//             over the in-process transport; the clients replay a fixed update, so the difference
//             is the transport (request to every client, replies back, framing, checksums).
//   memory    the server process's peak RSS while ingesting rounds of updates in arrival order
//             (ServerOptions::arrival_order, WeightedMean's streaming accumulator), against its
//             RSS when idle between rounds; the clients run in a child process.
// Writes JSON with the CPU model (--json FILE).
#include <sys/wait.h>
#include <unistd.h>

#include <barrier>
#include <cstring>
#include <fstream>
#include <iostream>
#include <latch>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "common/bench.hpp"
#include "fedpp/aggregators/weighted_mean.hpp"
#include "fedpp/compressors/identity.hpp"
#include "fedpp/net.hpp"
#include "fedpp/optimizers/server_sgd.hpp"
#include "fedpp/runtime/in_process.hpp"
#include "fedpp/runtime/server.hpp"
#include "support/temp_dir.hpp"
#include "support/test_certs.hpp"

namespace {

using namespace fedpp;
using namespace fedpp::bench;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A client that answers every request with the same prebuilt Identity payload (copied per reply),
// after an optional hook (a barrier in the ingest case).
struct ReplayClient {
  using Scalar = float;
  struct Dim {
    Index d = 0;
    [[nodiscard]] Index num_params() const noexcept { return d; }
  };
  ClientId id_ = 0;
  Dim dim_{};
  std::shared_ptr<const std::vector<std::uint8_t>> payload;
  std::function<void()> before_reply{};
  Identity comp{};

  Reply handle(const RoundRequest<float>& req) {
    Reply r;
    r.client = id_;
    r.round = req.round;
    r.weight = 1.0 + static_cast<double>(id_ % 7);
    r.payload = Payload(*payload);
    if (before_reply) before_reply();
    return r;
  }
  [[nodiscard]] ClientId id() const noexcept { return id_; }
  [[nodiscard]] const Dim& model() const noexcept { return dim_; }
  [[nodiscard]] const Identity& compressor() const noexcept { return comp; }
  template <class A>
  void save(A& /*ar*/) const {}
  template <class A>
  void load(A& /*ar*/) {}
};

std::shared_ptr<const std::vector<std::uint8_t>> identity_payload(Index d, std::uint64_t seed) {
  Vector<float> u(d);
  Rng rng = make_rng(seed, 0, 0, Purpose::user);
  for (Index k = 0; k < d; ++k) u(k) = rng.uniform_float() - 0.5f;
  Identity::State st;
  Payload p = Identity().encode(as_span(std::as_const(u)), st, rng);
  return std::make_shared<const std::vector<std::uint8_t>>(p.data().begin(), p.data().end());
}

struct Pki {
  fedpp_test::TempDir dir{"fedpp_bench_net"};
  fedpp_test::TestPki pki = fedpp_test::make_test_pki(dir.path, 0);
};

net::TransportOptions server_options(std::size_t n, Index d, const Pki* tls, std::uint64_t budget = 0) {
  net::TransportOptions o;
  o.ingest_budget = budget;
  o.num_clients = n;
  o.dim = static_cast<std::uint64_t>(d);
  o.codec = net::probe_codec<float>(Identity());
  if (tls) {
    o.security.mode = net::ServerSecurity::Mode::tls;
    o.security.cert_file = tls->pki.server_cert();
    o.security.key_file = tls->pki.server_key();
    o.security.allow_unauthenticated = true;
  } else {
    o.security = net::ServerSecurity::insecure_plaintext();
  }
  o.timeouts = {std::chrono::milliseconds(60000), std::chrono::milliseconds(60000), std::chrono::milliseconds(60000)};
  return o;
}

net::ClientOptions client_options(std::uint16_t port, const Pki* tls) {
  net::ClientOptions o;
  o.port = port;
  if (tls) {
    o.security.mode = net::ClientSecurity::Mode::tls;
    o.security.ca_file = tls->pki.ca();
  } else {
    o.security = net::ClientSecurity::insecure_plaintext();
  }
  o.timeouts = {std::chrono::milliseconds(60000), std::chrono::milliseconds(60000), std::chrono::milliseconds(60000)};
  return o;
}

// n NetworkClients of ReplayClients on threads; on destruction the server (when given) says
// goodbye first, so the clients end even when a case throws.
class ClientFleet {
 public:
  ClientFleet(std::size_t n, Index d, std::uint16_t port, const Pki* tls, net::TcpTransport<float>* server,
              std::function<void()> before_reply = {})
      : server_(server) {
    const auto payload = identity_payload(d, 1);
    for (std::size_t i = 0; i < n; ++i)
      clients_.push_back(ReplayClient{static_cast<ClientId>(i), {d}, payload, before_reply});
    for (std::size_t i = 0; i < n; ++i)
      nets_.push_back(std::make_unique<net::NetworkClient<ReplayClient>>(clients_[i], client_options(port, tls)));
    for (std::size_t i = 0; i < n; ++i)
      threads_.emplace_back([this, i] {
        try {
          nets_[i]->run();
        } catch (const std::exception& e) {
          std::cerr << "bench_net: client " << i << ": " << e.what() << "\n";
        }
      });
  }
  ~ClientFleet() {
    if (server_) server_->close();
    for (auto& t : threads_) t.join();
  }

 private:
  net::TcpTransport<float>* server_;
  std::vector<ReplayClient> clients_;
  std::vector<std::unique_ptr<net::NetworkClient<ReplayClient>>> nets_;
  std::vector<std::thread> threads_;
};

// The moment the last of n clients reached the barrier (the start of the ingest).
struct StartLine {
  std::mutex mu;
  std::condition_variable cv;
  std::size_t arrived = 0, n = 0;
  std::uint64_t generation = 0;
  std::chrono::steady_clock::time_point start{};
  void arrive() {
    std::unique_lock lk(mu);
    const std::uint64_t g = generation;
    if (++arrived == n) {
      arrived = 0;
      ++generation;
      start = std::chrono::steady_clock::now();
      cv.notify_all();
      return;
    }
    cv.wait(lk, [&] { return generation != g; });
  }
};

// ---- raw Asio baseline ----------------------------------------------------------------------

// n connections; each rep, every sender writes `bytes` at once after a common start; the
// receiver (one io thread) reads them into preallocated buffers. Plain or TLS.
class RawTransfer {
 public:
  RawTransfer(std::size_t n, std::size_t bytes, const Pki* tls)
      : n_(n), bytes_(bytes), acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        data_(bytes, 0x5a), sync_(static_cast<std::ptrdiff_t>(n + 1)) {
    if (tls) {
      server_ctx_ = net::make_server_tls([&] {
        net::ServerSecurity s;
        s.mode = net::ServerSecurity::Mode::tls;
        s.cert_file = tls->pki.server_cert();
        s.key_file = tls->pki.server_key();
        return s;
      }());
      client_ctx_ = net::make_client_tls([&] {
        net::ClientSecurity s;
        s.mode = net::ClientSecurity::Mode::tls;
        s.ca_file = tls->pki.ca();
        return s;
      }());
    }
    const auto port = acceptor_.local_endpoint().port();
    for (std::size_t i = 0; i < n; ++i) {
      in_.push_back(std::vector<std::uint8_t>(bytes));
      out_io_.push_back(std::make_unique<asio::io_context>());
    }
    // Connect and handshake every pair.
    std::vector<std::thread> connectors;
    for (std::size_t i = 0; i < n; ++i) {
      tcp::socket c(*out_io_[i]);
      c.connect({asio::ip::make_address("127.0.0.1"), port});
      c.set_option(tcp::no_delay(true));
      tcp::socket s = acceptor_.accept();
      s.set_option(tcp::no_delay(true));
      if (tls) {
        auto cs = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(c), *client_ctx_);
        auto ss = std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(s), *server_ctx_);
        std::thread t([&] { cs->handshake(asio::ssl::stream_base::client); });
        ss->handshake(asio::ssl::stream_base::server);
        t.join();
        tls_out_.push_back(std::move(cs));
        tls_in_.push_back(std::move(ss));
      } else {
        plain_out_.push_back(std::make_unique<tcp::socket>(std::move(c)));
        plain_in_.push_back(std::make_unique<tcp::socket>(std::move(s)));
      }
    }
    for (std::size_t i = 0; i < n; ++i)
      senders_.emplace_back([this, i] {
        for (;;) {
          sync_.arrive_and_wait();  // start of a rep (or stop)
          if (stop_) return;
          if (!tls_out_.empty())
            asio::write(*tls_out_[i], asio::buffer(data_));
          else
            asio::write(*plain_out_[i], asio::buffer(data_));
        }
      });
  }

  ~RawTransfer() {
    stop_ = true;
    sync_.arrive_and_wait();
    for (auto& t : senders_) t.join();
  }

  // One rep: returns seconds from the common start to the last byte read.
  double run() {
    std::size_t done = 0;
    for (std::size_t i = 0; i < n_; ++i) {
      auto on_read = [&done](const boost::system::error_code& ec, std::size_t) {
        if (ec) throw boost::system::system_error(ec);
        ++done;
      };
      if (!tls_in_.empty())
        asio::async_read(*tls_in_[i], asio::buffer(in_[i]), on_read);
      else
        asio::async_read(*plain_in_[i], asio::buffer(in_[i]), on_read);
    }
    sync_.arrive_and_wait();
    const auto t0 = std::chrono::steady_clock::now();
    io_.restart();
    io_.run();
    if (done != n_) throw std::runtime_error("raw transfer incomplete");
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }

 private:
  std::size_t n_, bytes_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::uint8_t> data_;
  std::vector<std::vector<std::uint8_t>> in_;
  std::vector<std::unique_ptr<asio::io_context>> out_io_;
  std::shared_ptr<asio::ssl::context> server_ctx_, client_ctx_;
  std::vector<std::unique_ptr<tcp::socket>> plain_out_, plain_in_;
  std::vector<std::unique_ptr<asio::ssl::stream<tcp::socket>>> tls_out_, tls_in_;
  std::barrier<> sync_;
  std::vector<std::thread> senders_;
  std::atomic<bool> stop_{false};
};

// ---- ingest ------------------------------------------------------------------------------------

struct IngestResult {
  Case fedpp, raw;
  double bytes = 0;
};

IngestResult ingest(std::size_t n, Index d, int reps, int warmup, const Pki* tls, std::uint64_t budget) {
  StartLine line;
  line.n = n;
  net::TcpTransport<float> transport(server_options(n, d, tls, budget));
  ClientFleet fleet(n, d, transport.port(), tls, &transport, [&] { line.arrive(); });
  if (!transport.wait_for_clients(n, RoundClock::now() + std::chrono::seconds(60)))
    throw std::runtime_error("clients did not connect");
  RawTransfer raw(n, static_cast<std::size_t>(d) * sizeof(float) + 32, tls);
  const Vector<float> model = Vector<float>::Zero(d);
  std::vector<ClientId> who(n);
  std::iota(who.begin(), who.end(), ClientId{0});
  IngestResult res{{"fedpp TcpTransport", {}, {}}, {"raw Asio transfer (baseline)", {}, {}}, 0};
  std::uint64_t round = 0;
  auto fedpp_rep = [&] {
    std::uint64_t got = 0;
    transport.start_round(RoundRequest<float>::shared(round++, 1, model), who,
                          [&](Reply&& r) { got += r.payload.bytes(); });
    if (!transport.run_until(RoundClock::now() + std::chrono::seconds(120))) throw std::runtime_error("round incomplete");
    const auto end = std::chrono::steady_clock::now();
    res.bytes = static_cast<double>(got);
    std::lock_guard lk(line.mu);
    return std::chrono::duration<double>(end - line.start).count();
  };
  for (int w = 0; w < warmup; ++w) {
    fedpp_rep();
    raw.run();
  }
  for (int r = 0; r < reps; ++r) {
    res.fedpp.times.push_back(fedpp_rep());
    res.raw.times.push_back(raw.run());
  }
  transport.close();
  return res;
}

// ---- round overhead ----------------------------------------------------------------------------

using BenchServer = Server<float, WeightedMean, ServerSgd, Identity>;

std::pair<Case, Case> overhead(std::size_t n, Index d, int reps) {
  ServerOptions so;
  so.rounds = static_cast<std::uint64_t>(reps) + 2;
  so.clients_per_round = n;
  const Vector<float> w0 = Vector<float>::Zero(d);
  Case tcp_case{"round over TcpTransport", {}, {}}, local{"round in process (baseline)", {}, {}};
  const auto payload = identity_payload(d, 1);  // the same update as the ClientFleet sends
  std::vector<ReplayClient> local_clients;
  for (std::size_t i = 0; i < n; ++i) local_clients.push_back(ReplayClient{static_cast<ClientId>(i), {d}, payload});
  InProcessTransport<ReplayClient> in_process(std::move(local_clients), 0);
  net::TcpTransport<float> transport(server_options(n, d, nullptr));
  ClientFleet fleet(n, d, transport.port(), nullptr, &transport);
  if (!transport.wait_for_clients(n, RoundClock::now() + std::chrono::seconds(60)))
    throw std::runtime_error("clients did not connect");
  BenchServer a(w0, so), b(w0, so);
  a.step(in_process);  // warm-up
  b.step(transport);
  for (int r = 0; r < reps; ++r) {
    local.times.push_back(time_once([&] { a.step(in_process); }));
    tcp_case.times.push_back(time_once([&] { b.step(transport); }));
  }
  if (std::memcmp(a.params().data(), b.params().data(), sizeof(float) * static_cast<std::size_t>(d)) != 0)
    throw std::runtime_error("the TCP and in-process rounds gave different models: " + std::to_string(a.params().norm()) +
                             " vs " + std::to_string(b.params().norm()) + ", rounds " + std::to_string(a.round()) + " " +
                             std::to_string(b.round()));
  transport.close();
  return {tcp_case, local};
}

// ---- memory ------------------------------------------------------------------------------------

std::uint64_t status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1));
  return 0;
}

struct MemoryResult {
  std::uint64_t before_first_round = 0, idle = 0, peak = 0;  // bytes
  std::size_t updates = 0;
  bool reset_peak = false;
};

MemoryResult memory(std::size_t n, Index d, int rounds) {
  int ports[2];
  if (::pipe(ports) != 0) throw std::runtime_error("pipe failed");
  const pid_t child = ::fork();
  if (child < 0) throw std::runtime_error("fork failed");
  if (child == 0) {  // the clients
    ::close(ports[1]);
    std::uint16_t port = 0;
    if (::read(ports[0], &port, sizeof(port)) != static_cast<ssize_t>(sizeof(port))) ::_exit(2);
    {
      ClientFleet fleet(n, d, port, nullptr, nullptr);
    }
    ::_exit(0);
  }
  ::close(ports[0]);
  MemoryResult res;
  {
    net::TcpTransport<float> transport(server_options(n, d, nullptr));
    const std::uint16_t port = transport.port();
    if (::write(ports[1], &port, sizeof(port)) != static_cast<ssize_t>(sizeof(port))) throw std::runtime_error("pipe write");
    ::close(ports[1]);
    if (!transport.wait_for_clients(n, RoundClock::now() + std::chrono::seconds(120)))
      throw std::runtime_error("clients did not connect");
    ServerOptions so;
    so.rounds = static_cast<std::uint64_t>(rounds) + 1;
    so.clients_per_round = n;
    so.arrival_order = true;
    BenchServer server(Vector<float>::Zero(d), so);
    res.before_first_round = status_kib("VmRSS") * 1024;
    server.step(transport);  // warm-up: the accumulator, scratch and pooled buffers exist from here on
    res.idle = status_kib("VmRSS") * 1024;
    {
      std::ofstream clear("/proc/self/clear_refs");
      clear << "5";  // reset the peak (VmHWM) to the current RSS
      res.reset_peak = static_cast<bool>(clear);
    }
    for (int r = 0; r < rounds; ++r) {
      const RoundStats st = server.step(transport);
      res.updates += st.accepted;
    }
    res.peak = status_kib("VmHWM") * 1024;
    transport.close();
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return res;
}

int run(int argc, char** argv) {
  Flags flags(argc, argv, "bench_net");
  const std::string part = flags.get("part", "all", "ingest | tls | overhead | memory | all");
  const Index d = flags.get_int("d", 10000000, "update dimension of the ingest cases (floats)");
  const auto n = static_cast<std::size_t>(flags.get_int("n", 20, "clients of the ingest cases"));
  const int reps = static_cast<int>(flags.get_int("reps", 5, "timed repetitions"));
  const int warmup = static_cast<int>(flags.get_int("warmup", 1, "untimed repetitions first"));
  const Index od = flags.get_int("overhead-d", 100000, "model dimension of the overhead case");
  const auto on = static_cast<std::size_t>(flags.get_int("overhead-n", 100, "clients of the overhead case"));
  const int oreps = static_cast<int>(flags.get_int("overhead-reps", 20, "rounds timed in the overhead case"));
  const Index md = flags.get_int("memory-d", 10000000, "update dimension of the memory case");
  const auto mn = static_cast<std::size_t>(flags.get_int("memory-n", 10, "clients per round of the memory case"));
  const int mrounds = static_cast<int>(flags.get_int("memory-rounds", 10, "rounds of the memory case (updates = n x rounds)"));
  const double min_rate = flags.get_double("target", "0.8", "pass when fedpp's ingest rate / the raw rate (paired median) >= this");
  const double max_mem = flags.get_double("memory-target", "4", "pass when (peak - idle RSS) / (d sizeof(float)) <= this");
  const auto budget = static_cast<std::uint64_t>(
      flags.get_int("budget", 0, "the server's ingest_budget in the ingest cases, bytes (0: its default, two dense replies)"));
  const std::string json_path = json_flag(flags);
  if (flags.finish()) return 0;
  const bool all = part == "all";
  std::cout << "bench_net: " << cpu_model() << "\n";

  Json j = open_report("bench_net");
  j.value("part", part);
  j.value("ingest_clients", static_cast<long long>(n));
  j.value("ingest_d", static_cast<long long>(d));
  j.value("repetitions", reps);
  j.value("warmup", warmup);
  j.end_object();
  bool ok = true;
  const RowStyle style{.name_width = 34, .ms_width = 8, .gbps_column = true};
  Pki pki;
  for (const bool tls : {false, true}) {
    if (!all && part != (tls ? "tls" : "ingest")) continue;
    IngestResult r = ingest(n, d, reps, warmup, tls ? &pki : nullptr, budget);
    const double rate = 1.0 / ratio_paired_median(r.fedpp.times, r.raw.times);  // time ratio inverted
    std::cout << (tls ? "ingest over TLS" : "ingest, plaintext") << ": " << n << " clients x "
              << static_cast<double>(d) * 4 / 1e6 << " MB\n";
    const std::string key = tls ? "ingest_tls" : "ingest_plain";
    j.begin_object(key);
    j.value("bytes", r.bytes);
    j.value("ingest_budget_bytes", budget == 0 ? 2.0 * (4.0 * static_cast<double>(d) + 65536.0) : static_cast<double>(budget));
    report_array(j, "results", {r.raw, r.fedpp}, r.bytes, style);
    j.value("rate_over_raw_paired_median", rate);
    j.value("min", min_rate);
    j.value("pass", rate >= min_rate);
    j.end_object();
    std::cout << "  target: fedpp rate / raw rate (paired median) = " << rate << " >= " << min_rate << ": "
              << (rate >= min_rate ? "PASS" : "FAIL") << "\n";
    ok = ok && rate >= min_rate;
  }
  if (all || part == "overhead") {
    auto [t, l] = overhead(on, od, oreps);
    const double ratio = ratio_paired_median(t.times, l.times);
    std::cout << "round overhead: " << on << " clients, d = " << od << "\n";
    j.begin_object("overhead");
    j.value("clients", static_cast<long long>(on));
    j.value("d", static_cast<long long>(od));
    report_array(j, "results", {l, t}, static_cast<double>(on) * static_cast<double>(od) * 4, style);
    j.value("tcp_over_in_process_paired_median", ratio);
    j.value("tcp_minus_in_process_median_ms", 1e3 * (stats(t.times).median - stats(l.times).median));
    j.end_object();
    std::cout << "  TCP round / in-process round (paired median) = " << ratio << "\n";
  }
  if (all || part == "memory") {
    const MemoryResult m = memory(mn, md, mrounds);
    const double unit = static_cast<double>(md) * sizeof(float);
    const double over = (static_cast<double>(m.peak) - static_cast<double>(m.idle)) / unit;
    std::cout << "server memory: " << m.updates << " updates of d = " << md << " in arrival order, " << mn
              << " clients per round\n  RSS before round 0 " << static_cast<double>(m.before_first_round) / 1e6
              << " MB, idle between rounds " << static_cast<double>(m.idle) / 1e6 << " MB, peak "
              << static_cast<double>(m.peak) / 1e6 << " MB: peak - idle = " << over << " x d sizeof(float) <= "
              << max_mem << ": " << (over <= max_mem ? "PASS" : "FAIL") << "\n";
    j.begin_object("memory");
    j.value("d", static_cast<long long>(md));
    j.value("clients_per_round", static_cast<long long>(mn));
    j.value("updates", static_cast<long long>(m.updates));
    j.value("rss_before_first_round_bytes", static_cast<double>(m.before_first_round));
    j.value("rss_idle_between_rounds_bytes", static_cast<double>(m.idle));
    j.value("rss_peak_bytes", static_cast<double>(m.peak));
    j.value("peak_reset_after_warmup", m.reset_peak);
    j.value("peak_minus_idle_over_d_floats", over);
    j.value("max", max_mem);
    j.value("pass", over <= max_mem);
    j.end_object();
    ok = ok && over <= max_mem;
  }
  j.end_object();
  save_report(json_path, j);
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) { return fedpp::bench::guarded_main("bench_net", run, argc, argv); }
