#pragma once
/// @file server.hpp
/// The server side of fedpp's TCP transport: accepts clients (TLS, tokens or client
/// certificates), sends round requests and delivers replies in arrival order. A Transport
/// (runtime/transport.hpp), so fedpp::Server runs over it unchanged.

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fedpp/core/messages.hpp"
#include "fedpp/net/connection.hpp"
#include "fedpp/runtime/transport.hpp"

namespace fedpp::net {

/// Settings of a TcpTransport (the server side).
struct TransportOptions {
  std::string address = "127.0.0.1";  ///< address to listen on
  std::uint16_t port = 0;              ///< port (0: any free port; see TcpTransport::port())
  std::size_t num_clients = 0;         ///< the federation's size N (client ids 0..N-1)
  std::uint64_t dim = 0;               ///< the model's dimension (clients must match)
  std::uint16_t codec = 0;             ///< Codec id the server decodes (probe_codec); clients must match
  ServerSecurity security{};           ///< TLS, authentication (must be set: plaintext only when asked for)
  std::uint32_t max_frame = default_max_frame;          ///< largest frame body accepted and sent
  std::chrono::milliseconds heartbeat_interval{1000};   ///< clients send a heartbeat this often
  ConnectionTimeouts timeouts{};       ///< per-read deadline, idle (heartbeat) timeout, handshake timeout
  std::uint64_t ingest_budget = 0;     ///< reply bytes read ahead of the aggregator (one reply always fits;
                                       ///< 0: two dense replies, 2 (sizeof(S) dim + 64 KiB))
  std::function<void(const ConnectionEvent&)> on_event{};  ///< called (on the network thread) for each event
};

/// Counters of a TcpTransport.
struct TransportCounters {
  std::uint64_t connected = 0;   ///< hellos accepted
  std::uint64_t rejected = 0;    ///< hellos refused
  std::uint64_t closed = 0;      ///< connections closed (any reason)
  std::uint64_t errors = 0;      ///< connections closed for a protocol or I/O error
  std::uint64_t bytes_in = 0;    ///< bytes read (closed connections)
  std::uint64_t bytes_out = 0;   ///< bytes written (closed connections)
  std::uint64_t replies = 0;     ///< replies received
  std::uint64_t discarded = 0;   ///< replies to a cancelled round (e.g. after its deadline), dropped unseen
  std::uint64_t budget_waits = 0;  ///< times a reply waited for the ingest budget
};

/// The Codec id a compressor produces (encoding a small probe vector with a fresh state).
template <typename S, typename Comp>
[[nodiscard]] std::uint16_t probe_codec(const Comp& comp) {
  constexpr Index d = 16;
  Vector<S> x = Vector<S>::LinSpaced(d, S(-1), S(1));
  auto state = comp.template make_state<S>(d);
  Rng rng(0);
  Payload p;
  if constexpr (CompressorWithContext<Comp, S>)
    p = comp.encode(std::span<const S>(x.data(), d), state, rng, RoundContext{});
  else
    p = comp.encode(std::span<const S>(x.data(), d), state, rng);
  return static_cast<std::uint16_t>(p.header().codec);
}

namespace detail {

/// The subject common name of the peer's certificate (empty when none).
inline std::string peer_common_name(SSL* ssl) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  X509* cert = SSL_get1_peer_certificate(ssl);
#else
  X509* cert = SSL_get_peer_certificate(ssl);
#endif
  if (!cert) return {};
  std::string cn;
  X509_NAME* name = X509_get_subject_name(cert);
  const int idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
  if (idx >= 0) {
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    cn.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(data)), static_cast<std::size_t>(ASN1_STRING_length(data)));
  }
  X509_free(cert);
  return cn;
}

/// Constant-time comparison of two strings (the length is not secret).
inline bool same_secret(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace detail

/// The server side of the TCP transport: a Transport over connected clients.
/**
 * One io_context on one network thread serves every connection (coroutines, no thread per
 * client). `start_round` encodes the request once (model and broadcast streamed in data frames
 * of at most max_frame bytes) and queues it on each participant's connection; `run_until`
 * delivers replies on the caller's thread as they arrive, so decoding and aggregation run
 * there while the network thread keeps reading. Reply bytes read ahead of the caller are
 * bounded by `ingest_budget` (connections wait, not counted as idle, until the caller has
 * consumed earlier replies), so memory stays O(d) with a streaming aggregator in arrival order.
 *
 * Faults: a participant that is not connected, disconnects, says goodbye or breaks the protocol
 * gets a failure reply (disconnected / malformed) at once, so a round never waits for it; one
 * that stays silent is timed out by the round's deadline; one that sends nothing at all (not
 * even heartbeats) for timeouts.idle is closed. Each refusal and closure is a ConnectionEvent
 * with a std::error_code (ProtocolErrc) and text, given to on_event and kept in events().
 * A client reconnects with its id (a second connection for an id already connected is
 * rejected as duplicate_client).
 * @tparam S scalar type of the model
 */
template <typename S = float>
class TcpTransport {
 public:
  /// Scalar type.
  using Scalar = S;

  /// Binds, listens and starts the network thread.
  /// @throws InvalidArgument for bad options; boost::system::system_error when binding fails.
  explicit TcpTransport(TransportOptions opts) : opts_(checked(std::move(opts))), acceptor_(io_) {
    if (opts_.ingest_budget == 0) opts_.ingest_budget = 2 * (sizeof(S) * opts_.dim + (64u << 10));
    if (opts_.security.mode == ServerSecurity::Mode::tls) tls_ = make_server_tls(opts_.security);
    const tcp::endpoint ep(asio::ip::make_address(opts_.address), opts_.port);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(io_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { io_.run(); });
  }

  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  /// Says goodbye (finished) to every client and stops the network thread.
  ~TcpTransport() { close(GoodbyeReason::finished, "the server is done"); }

  /// The port the server listens on.
  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  /// The settings.
  [[nodiscard]] const TransportOptions& options() const noexcept { return opts_; }

  /// The federation's size N.
  [[nodiscard]] std::size_t num_clients() const noexcept { return opts_.num_clients; }

  /// Connected clients that are not still busy with an earlier request (sorted ids).
  [[nodiscard]] std::vector<ClientId> available_clients() const {
    std::lock_guard lk(mu_);
    return {available_.begin(), available_.end()};
  }

  /// Connected client ids (busy or not).
  [[nodiscard]] std::vector<ClientId> connected_clients() const {
    std::lock_guard lk(mu_);
    return {connected_.begin(), connected_.end()};
  }

  /// Waits until at least `n` clients are available; false when `deadline` passed first.
  bool wait_for_clients(std::size_t n, Deadline deadline = no_deadline) {
    std::unique_lock lk(mu_);
    const auto enough = [&] { return available_.size() >= n; };
    if (deadline == no_deadline) {
      cv_.wait(lk, enough);
      return true;
    }
    return cv_.wait_until(lk, deadline, enough);
  }

  /// Sends the request to each participant and returns (replies come through run_until).
  /// @throws InvalidArgument for an unknown or repeated id, or a model of the wrong size.
  void start_round(const RoundRequest<S>& req, std::span<const ClientId> who, ReplyHandler handler) {
    constexpr std::string_view where = "fedpp::net::TcpTransport::start_round";
    if (req.model.size() != opts_.dim)
      fail<DimensionError>(where, "model size must equal dim " + std::to_string(opts_.dim), req.model.size());
    std::vector<std::pair<ClientId, std::size_t>> by_id;
    for (std::size_t i = 0; i < who.size(); ++i) {
      if (who[i] >= opts_.num_clients) fail(where, "unknown client id", who[i]);
      by_id.emplace_back(who[i], i);
    }
    std::sort(by_id.begin(), by_id.end());
    for (std::size_t i = 1; i < by_id.size(); ++i)
      if (by_id[i].first == by_id[i - 1].first) fail(where, "participants must be distinct; repeated id", by_id[i].first);

    // Own the bytes for as long as any connection still writes them.
    std::shared_ptr<const void> owner = req.owner;
    std::span<const S> model = req.model, aux = req.aux;
    if (!owner) {
      auto copy = std::make_shared<std::pair<std::vector<S>, std::vector<S>>>(
          std::vector<S>(req.model.begin(), req.model.end()), std::vector<S>(req.aux.begin(), req.aux.end()));
      model = copy->first;
      aux = copy->second;
      owner = copy;
    }
    RoundHead head;
    head.round = req.round;
    head.seed = req.seed;
    head.scalar_bytes = sizeof(S);
    head.model_count = model.size();
    head.aux_count = aux.size();
    if (req.deadline != no_deadline) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(req.deadline - RoundClock::now()).count();
      head.deadline_ms = static_cast<std::uint32_t>(std::clamp<long long>(left, 1, UINT32_MAX));
    }
    auto msg = OutboundMessage::encode(
        head, std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(model.data()), model.size_bytes()),
        std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(aux.data()), aux.size_bytes()), opts_.max_frame);
    msg->keep_alive = owner;

    std::vector<ClientId> ids(who.begin(), who.end());
    {
      std::lock_guard lk(mu_);
      round_ = req.round;
      by_id_ = std::move(by_id);
      delivered_.assign(who.size(), false);
      delivered_count_ = 0;
      cancelled_ = false;
      handler_ = std::move(handler);
      active_ = !ids.empty();
      // Replies of earlier rounds still queued stay (the server counts them late); none of this round exist yet.
    }
    asio::post(io_, [this, ids = std::move(ids), msg, round = req.round] { io_start_round(round, ids, msg); });
  }

  /// Delivers replies to the round's handler until every participant answered (true), or the
  /// deadline passed or the round was cancelled (false).
  bool run_until(Deadline deadline) {
    for (;;) {
      Reply r;
      {
        std::unique_lock lk(mu_);
        const auto ready = [&] { return !inbox_.empty() || cancelled_ || !active_ || delivered_count_ == by_id_.size(); };
        if (deadline == no_deadline)
          cv_.wait(lk, ready);
        else if (!cv_.wait_until(lk, deadline, ready))
          return false;
        if (cancelled_) return false;
        if (inbox_.empty()) return true;  // every participant delivered (or an empty round)
        r = std::move(inbox_.front());
        inbox_.pop_front();
        if (r.round == round_) {
          const auto it = std::lower_bound(by_id_.begin(), by_id_.end(), std::pair<ClientId, std::size_t>(r.client, 0));
          if (it != by_id_.end() && it->first == r.client && !delivered_[it->second]) {
            delivered_[it->second] = true;
            ++delivered_count_;
          }
        }
      }
      const std::uint64_t bytes = r.payload.bytes() + r.aux.bytes();
      try {
        handler_(std::move(r));
      } catch (...) {
        release(bytes, r);
        cancel_round();
        throw;
      }
      release(bytes, r);
      std::lock_guard lk(mu_);
      if (delivered_count_ == by_id_.size() && !cancelled_ && inbox_.empty()) return true;
    }
  }

  /// Stops the round: replies to it not yet delivered are dropped.
  void cancel_round() {
    std::deque<Reply> dropped;
    {
      std::lock_guard lk(mu_);
      cancelled_ = true;
      for (auto it = inbox_.begin(); it != inbox_.end();) {
        if (it->round == round_) {
          dropped.push_back(std::move(*it));
          it = inbox_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (Reply& r : dropped) release(r.payload.bytes() + r.aux.bytes(), r);
    const std::uint64_t round = round_;
    asio::post(io_, [this, round] { io_cancelled_round_ = round; });
    cv_.notify_all();
  }

  /// Says goodbye to every client, closes every connection and stops the network thread (idempotent).
  void close(GoodbyeReason reason = GoodbyeReason::finished, std::string text = "the server is done") {
    if (stopped_.exchange(true)) return;
    asio::co_spawn(io_, io_close(reason, std::move(text)), asio::detached);
    if (thread_.joinable()) thread_.join();
  }

  /// Stops at once without goodbyes, as a crashed server would: every connection is cut, the
  /// network thread stops (idempotent; clients reconnect to a server started again on this port).
  void abort() {
    if (stopped_.exchange(true)) return;
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      for (const auto& s : all_) s->conn->close(make_error_code(ProtocolErrc::shutting_down), "server aborted");
      io_.stop();
    });
    if (thread_.joinable()) thread_.join();
  }

  /// Counters so far.
  [[nodiscard]] TransportCounters counters() const {
    std::lock_guard lk(mu_);
    return counters_;
  }

  /// Connection events so far (at most the last 10000).
  [[nodiscard]] std::vector<ConnectionEvent> events() const {
    std::lock_guard lk(mu_);
    return {events_.begin(), events_.end()};
  }

 private:
  struct Session {
    std::shared_ptr<Connection> conn;
    std::optional<std::uint32_t> id;
    std::optional<std::uint64_t> outstanding;  // the round asked and not answered yet
    std::uint64_t held = 0;                    // ingest budget taken for a reply still being read
  };

  static TransportOptions checked(TransportOptions o) {
    constexpr std::string_view who = "fedpp::net::TcpTransport";
    require(o.num_clients >= 1, who, "num_clients must be >= 1", o.num_clients);
    require(o.num_clients <= UINT32_MAX, who, "num_clients must fit 32 bits", o.num_clients);
    require(o.dim >= 1, who, "dim must be >= 1", o.dim);
    require(o.codec != 0, who, "codec must be set (probe_codec<S>(compressor))", o.codec);
    require(o.max_frame >= 4096, who, "max_frame must be >= 4096 bytes", o.max_frame);
    require(o.heartbeat_interval.count() > 0, who, "heartbeat_interval must be > 0 ms", o.heartbeat_interval.count());
    require(o.timeouts.idle > o.heartbeat_interval, who,
            "timeouts.idle must exceed heartbeat_interval " + std::to_string(o.heartbeat_interval.count()) + " ms",
            o.timeouts.idle.count());
    require(o.timeouts.read.count() > 0 && o.timeouts.handshake.count() > 0, who, "timeouts must be > 0 ms",
            std::min(o.timeouts.read.count(), o.timeouts.handshake.count()));
    const auto& s = o.security;
    require(s.mode != ServerSecurity::Mode::unset, who,
            "security must be set: TLS, or ServerSecurity::insecure_plaintext() explicitly", "unset");
    if (!s.tokens.empty())
      require(s.tokens.size() == o.num_clients, who, "tokens must have one entry per client " + std::to_string(o.num_clients),
              s.tokens.size());
    require(s.require_client_certificate || !s.tokens.empty() || s.allow_unauthenticated, who,
            "clients must be authenticated: require_client_certificate, tokens, or allow_unauthenticated explicitly",
            "none");
    require(!s.require_client_certificate || s.mode == ServerSecurity::Mode::tls, who,
            "require_client_certificate needs TLS", "plaintext");
    return o;
  }

  // ---- shared with the caller thread (under mu_) ----
  void push(Reply r) {
    {
      std::lock_guard lk(mu_);
      inbox_.push_back(std::move(r));
    }
    cv_.notify_all();
  }

  void release(std::uint64_t bytes, Reply& r) {
    {
      std::lock_guard lk(mu_);
      budget_used_ -= std::min(budget_used_, bytes);
      // Keep the buffers for the next replies (no allocation, no zeroing), at most ingest_budget bytes of them.
      for (Payload* p : {&r.payload, &r.aux}) {
        const std::size_t cap = p->buffer().capacity();
        if (cap >= 4096 && pooled_ + cap <= opts_.ingest_budget) {
          pooled_ += cap;
          pool_.push_back(std::move(p->buffer()));
        }
      }
    }
    if (bytes > 0) asio::post(io_, [this] { wake_budget_waiters(); });
  }

  std::vector<std::uint8_t> take_buffer(std::size_t n) {
    std::lock_guard lk(mu_);
    for (auto it = pool_.begin(); it != pool_.end(); ++it)
      if (it->capacity() >= n) {
        std::vector<std::uint8_t> v = std::move(*it);
        pooled_ -= v.capacity();
        pool_.erase(it);
        return v;
      }
    return {};
  }

  void record(ConnectionEvent e) {
    if (opts_.on_event) opts_.on_event(e);
    std::lock_guard lk(mu_);
    switch (e.kind) {
      case ConnectionEvent::Kind::connected: ++counters_.connected; break;
      case ConnectionEvent::Kind::rejected: ++counters_.rejected; break;
      case ConnectionEvent::Kind::closed:
        ++counters_.closed;
        if (e.code) ++counters_.errors;
        break;
    }
    if (events_.size() >= 10000) events_.pop_front();
    events_.push_back(std::move(e));
  }

  // ---- network thread ----
  asio::awaitable<void> accept_loop() {
    for (;;) {
      boost::system::error_code ec;
      tcp::socket s = co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (!acceptor_.is_open() || stopped_) co_return;
        continue;  // e.g. too many open files: keep serving
      }
      s.set_option(tcp::no_delay(true), ec);
      const DecoderLimits limits{opts_.max_frame, 16 * opts_.dim + (1u << 16)};
      auto alloc = [this](std::size_t n) { return take_buffer(n); };
      ConnectionTimeouts hello_phase{opts_.timeouts.read, opts_.timeouts.handshake, opts_.timeouts.handshake};
      auto conn = tls_ ? std::make_shared<Connection>(std::move(s), tls_, hello_phase, limits, alloc)
                       : std::make_shared<Connection>(std::move(s), hello_phase, limits, alloc);
      auto session = std::make_shared<Session>(Session{conn, {}, {}});
      all_.insert(session);
      asio::co_spawn(io_, serve(session), asio::detached);
    }
  }

  asio::awaitable<void> serve(std::shared_ptr<Session> ses) {
    auto& conn = *ses->conn;
    conn.start();
    ConnectionEvent end{ConnectionEvent::Kind::closed, {}, conn.peer(), {}, {}};
    try {
      co_await conn.handshake(asio::ssl::stream_base::server);
      conn.expect_within(opts_.timeouts.handshake, ProtocolErrc::handshake_timeout);
      Message first = co_await conn.read_message();
      if (first.type() != MessageType::hello)
        throw ProtocolError(ProtocolErrc::unexpected_message,
                            "the first message must be a hello, got " + std::string(to_string(first.type())));
      const Hello& h = std::get<Hello>(first.head);
      if (auto why = check_hello(h, conn)) {
        record({ConnectionEvent::Kind::rejected, h.client, conn.peer(), make_error_code(to_errc(why->reason)), why->text});
        conn.send(Head{*why});
        co_await conn.flush();
        conn.close(make_error_code(to_errc(why->reason)), why->text);
        co_await conn.drain();
        all_.erase(ses);
        co_return;
      }
      ses->id = h.client;
      sessions_[h.client] = ses;
      end.client = h.client;
      conn.set_timeouts(opts_.timeouts);
      conn.resume_idle();
      conn.send(Head{Welcome{h.client, static_cast<std::uint32_t>(opts_.num_clients),
                             static_cast<std::uint32_t>(opts_.heartbeat_interval.count()), opts_.max_frame}});
      set_available(h.client, true, true);
      record({ConnectionEvent::Kind::connected, h.client, conn.peer(), {}, h.software});
      asio::co_spawn(io_, heartbeats(ses), asio::detached);
      conn.on_bulk([this, ses](const Head& head, std::uint64_t n) -> asio::awaitable<void> {
        if (const auto* rh = std::get_if<ReplyHead>(&head)) check_round(*ses, rh->round);
        co_await acquire_budget(*ses->conn, n);
        ses->held = n;
      });
      for (;;) {
        Message m = co_await conn.read_message();
        switch (m.type()) {
          case MessageType::heartbeat: break;
          case MessageType::goodbye: {
            const auto& g = std::get<Goodbye>(m.head);
            end.text = "client said goodbye: " + g.text;
            conn.close({}, end.text);
            break;
          }
          case MessageType::reply: on_reply(*ses, std::move(m)); break;
          default:
            throw ProtocolError(ProtocolErrc::unexpected_message,
                                "a client may not send " + std::string(to_string(m.type())));
        }
        if (conn.closed()) break;
      }
    } catch (const ProtocolError& e) {
      end.code = e.code();
      end.text = e.what();
    } catch (const boost::system::system_error& e) {
      // Closed by us (shutdown, watchdog): that reason; otherwise the I/O error.
      end.code = conn.closed() ? conn.close_code() : std::error_code(e.code());
      end.text = conn.closed() ? conn.close_text() : std::string(e.what());
      if (!conn.closed() && (e.code() == asio::error::eof || e.code() == asio::ssl::error::stream_truncated)) {
        end.code = {};
        end.text = "the client closed the connection";
      }
    } catch (const std::exception& e) {
      end.code = make_error_code(ProtocolErrc::malformed_head);
      end.text = e.what();
    }
    if (!end.code && conn.close_code()) {
      end.code = conn.close_code();
      end.text = conn.close_text();
    }
    if (end.code == make_error_code(ProtocolErrc::version_mismatch) && !ses->id && !conn.closed()) {
      // The header layout never changes, so the peer can read a reject in our version.
      conn.send(Head{Reject{RejectReason::version_mismatch, end.text}});
      co_await conn.flush();
    }
    conn.close(end.code, end.text);
    co_await conn.drain();
    if (ses->held > 0) {  // closed in the middle of a reply's bulk: give its budget back
      Reply none;
      release(ses->held, none);
      ses->held = 0;
    }
    {
      std::lock_guard lk(mu_);
      counters_.bytes_in += conn.bytes_in();
      counters_.bytes_out += conn.bytes_out();
    }
    // Unregister, log, then fail the participant's round (in that order, so whoever sees the
    // failure reply also sees the client gone and the event recorded).
    std::optional<Reply> failure;
    if (ses->id) {
      const std::uint32_t id = *ses->id;
      if (auto it = sessions_.find(id); it != sessions_.end() && it->second == ses) sessions_.erase(it);
      set_available(id, false, false);
      if (ses->outstanding && *ses->outstanding == io_round_ && io_cancelled_round_ != io_round_) {
        const FailureReason why = is_malformed(end.code) ? FailureReason::malformed : FailureReason::disconnected;
        failure = Reply::failure(id, *ses->outstanding, why, "connection closed: " + describe(end));
      }
      ses->outstanding.reset();
    }
    record(std::move(end));
    if (failure) push(std::move(*failure));
    all_.erase(ses);
  }

  // Whether a connection closed for sending bytes that break the protocol (as opposed to going away).
  static bool is_malformed(const std::error_code& c) {
    if (c.category() != protocol_category()) return false;
    switch (static_cast<ProtocolErrc>(c.value())) {
      case ProtocolErrc::bad_magic:
      case ProtocolErrc::version_mismatch:
      case ProtocolErrc::unknown_type:
      case ProtocolErrc::bad_flags:
      case ProtocolErrc::oversized_frame:
      case ProtocolErrc::bad_checksum:
      case ProtocolErrc::unexpected_message:
      case ProtocolErrc::wrong_length:
      case ProtocolErrc::malformed_head:
      case ProtocolErrc::unexpected_round: return true;
      default: return false;
    }
  }

  std::optional<Reject> check_hello(const Hello& h, Connection& conn) {
    const auto& sec = opts_.security;
    if (stopped_) return Reject{RejectReason::shutting_down, "the server is shutting down"};
    if (h.client >= opts_.num_clients)
      return Reject{RejectReason::unknown_client,
                    "client id must be < " + std::to_string(opts_.num_clients) + ", got " + std::to_string(h.client)};
    if (sec.require_client_certificate) {
      const std::string cn = conn.tls() ? detail::peer_common_name(conn.tls()->native_handle()) : std::string();
      const std::string want = "client-" + std::to_string(h.client);
      if (cn != want)
        return Reject{RejectReason::bad_credentials,
                      "the client certificate's common name must be '" + want + "', got '" + cn + "'"};
    }
    if (!sec.tokens.empty() && !detail::same_secret(h.token, sec.tokens[h.client]))
      return Reject{RejectReason::bad_credentials, "wrong or missing token for client " + std::to_string(h.client)};
    if (h.scalar_bytes != sizeof(S))
      return Reject{RejectReason::scalar_mismatch, "the server's scalar has " + std::to_string(sizeof(S)) +
                                                       " bytes, the client's " + std::to_string(h.scalar_bytes)};
    if (h.dim != opts_.dim)
      return Reject{RejectReason::dimension_mismatch,
                    "the server's model has " + std::to_string(opts_.dim) + " parameters, the client's " + std::to_string(h.dim)};
    if (h.codec != opts_.codec)
      return Reject{RejectReason::codec_mismatch,
                    "the server decodes codec " + std::to_string(opts_.codec) + ", the client encodes " + std::to_string(h.codec)};
    if (sessions_.count(h.client))
      return Reject{RejectReason::duplicate_client, "client " + std::to_string(h.client) + " is already connected"};
    return std::nullopt;
  }

  void check_round(const Session& ses, std::uint64_t round) const {
    if (!ses.outstanding || *ses.outstanding != round)
      protocol_fail(ProtocolErrc::unexpected_round, "fedpp::net::TcpTransport",
                    ses.outstanding ? "reply must answer round " + std::to_string(*ses.outstanding)
                                    : std::string("reply without a request"),
                    round);
  }

  void on_reply(Session& ses, Message m) {
    const auto& h = std::get<ReplyHead>(m.head);
    check_round(ses, h.round);
    Reply r;
    r.client = *ses.id;
    r.round = h.round;
    r.status = static_cast<ReplyStatus>(h.status);
    r.reason = static_cast<FailureReason>(h.reason);
    r.weight = h.weight;
    r.local = LocalResult{h.train_loss, static_cast<Index>(h.steps), static_cast<Index>(h.samples)};
    r.error = h.error;
    r.payload = Payload(std::move(m.bulk1));
    r.aux = Payload(std::move(m.bulk2));
    ses.outstanding.reset();
    ses.held = 0;  // the budget now travels with the reply
    {
      std::lock_guard lk(mu_);
      ++counters_.replies;
    }
    // Available again before the reply is visible: the round it completes may be followed at
    // once by the next round's sampling, which must see this client.
    set_available(*ses.id, true, true);
    if (h.round == io_cancelled_round_) {
      {
        std::lock_guard lk(mu_);
        ++counters_.discarded;
      }
      release(r.payload.bytes() + r.aux.bytes(), r);
    } else
      push(std::move(r));
  }

  asio::awaitable<void> acquire_budget(Connection& conn, std::uint64_t n) {
    bool waited = false;
    for (;;) {
      {
        std::lock_guard lk(mu_);
        if (budget_used_ == 0 || budget_used_ + n <= opts_.ingest_budget) {
          budget_used_ += n;
          if (waited) ++counters_.budget_waits;
          break;
        }
      }
      if (!waited) conn.pause_idle();
      waited = true;
      auto sig = std::make_shared<Signal>(io_.get_executor());
      budget_waiters_.push_back(sig);
      co_await sig->wait();
      if (conn.closed()) throw ProtocolError(ProtocolErrc::shutting_down, "closed while waiting for the ingest budget");
    }
    if (waited) conn.resume_idle();
  }

  void wake_budget_waiters() {
    auto w = std::move(budget_waiters_);
    budget_waiters_.clear();
    for (auto& s : w) s->notify();
  }

  asio::awaitable<void> heartbeats(std::shared_ptr<Session> ses) {
    asio::steady_timer t(io_);
    std::uint64_t seq = 0;
    while (!ses->conn->closed()) {
      t.expires_after(opts_.heartbeat_interval);
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (ses->conn->closed()) break;
      if (ses->conn->queued() == 0) ses->conn->send(Head{Heartbeat{++seq, 0, io_round_}});
    }
  }

  void set_available(std::uint32_t id, bool connected, bool available) {
    {
      std::lock_guard lk(mu_);
      if (connected) connected_.insert(id); else connected_.erase(id);
      if (available) available_.insert(id); else available_.erase(id);
    }
    cv_.notify_all();
  }

  void io_start_round(std::uint64_t round, const std::vector<ClientId>& ids,
                      const std::shared_ptr<OutboundMessage>& msg) {
    io_round_ = round;
    for (ClientId id : ids) {
      auto it = sessions_.find(static_cast<std::uint32_t>(id));
      if (it == sessions_.end() || it->second->conn->closed()) {
        push(Reply::failure(id, round, FailureReason::disconnected, "client " + std::to_string(id) + " is not connected"));
        continue;
      }
      Session& s = *it->second;
      if (s.outstanding) {
        push(Reply::failure(id, round, FailureReason::disconnected,
                            "client " + std::to_string(id) + " is still busy with round " + std::to_string(*s.outstanding)));
        continue;
      }
      s.outstanding = round;
      set_available(id, true, false);
      s.conn->send(msg);
    }
  }

  asio::awaitable<void> io_close(GoodbyeReason reason, std::string text) {
    boost::system::error_code ec;
    acceptor_.close(ec);
    const auto bye = OutboundMessage::encode(Head{Goodbye{reason, text}});
    std::vector<std::shared_ptr<Session>> all(all_.begin(), all_.end());
    for (auto& s : all)
      if (s->id) s->conn->send(bye);
    for (auto& s : all) {
      // Give each connection a moment to write its goodbye, then close it.
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (!s->conn->closed() && s->conn->queued() > 0 && std::chrono::steady_clock::now() < until) {
        asio::steady_timer t(io_, std::chrono::milliseconds(1));
        co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      s->conn->close({}, "server closing");
    }
    wake_budget_waiters();
    // Let the session coroutines finish, then stop.
    for (int i = 0; i < 200 && !all_.empty(); ++i) {
      asio::steady_timer t(io_, std::chrono::milliseconds(5));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    io_.stop();
  }

  TransportOptions opts_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopped_{false};

  // network thread only
  std::map<std::uint32_t, std::shared_ptr<Session>> sessions_;  // hello accepted
  std::set<std::shared_ptr<Session>> all_;                      // every open connection
  std::vector<std::shared_ptr<Signal>> budget_waiters_;
  std::uint64_t io_round_ = UINT64_MAX, io_cancelled_round_ = UINT64_MAX;

  // shared (mu_)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::set<ClientId> available_, connected_;
  std::deque<Reply> inbox_;
  std::vector<std::vector<std::uint8_t>> pool_;
  std::uint64_t pooled_ = 0;
  std::uint64_t budget_used_ = 0;
  TransportCounters counters_;
  std::deque<ConnectionEvent> events_;

  // caller thread (and mu_ for what run_until's predicate reads)
  std::uint64_t round_ = UINT64_MAX;
  std::vector<std::pair<ClientId, std::size_t>> by_id_;
  std::vector<bool> delivered_;
  std::size_t delivered_count_ = 0;
  bool cancelled_ = false, active_ = false;
  ReplyHandler handler_;
};

}  // namespace fedpp::net
