#pragma once
/// @file client.hpp
/// The client side of fedpp's TCP transport: connects (TLS, certificate or token), answers
/// round requests with a fedpp::Client, keeps sending heartbeats while it trains, and
/// reconnects with the same id (keeping its state) when the connection is lost.

#include <boost/asio/connect.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <mutex>
#include <sstream>

#include "fedpp/core/messages.hpp"
#include "fedpp/net/connection.hpp"
#include "fedpp/net/server.hpp"
#include "fedpp/serialization/checkpoint.hpp"
#include "fedpp/version.hpp"

namespace fedpp::net {

/// Settings of a NetworkClient.
struct ClientOptions {
  std::string host = "127.0.0.1";    ///< server address or name
  std::uint16_t port = 0;            ///< server port
  ClientSecurity security{};         ///< TLS and credentials (must be set: plaintext only when asked for)
  ConnectionTimeouts timeouts{};     ///< per-read deadline, server silence (idle), connect + handshake
  std::chrono::milliseconds retry_initial{100};  ///< first wait before reconnecting (doubles up to retry_max)
  std::chrono::milliseconds retry_max{2000};     ///< longest wait between connection attempts
  std::chrono::milliseconds give_up_after{60000};  ///< stop when no connection succeeded for this long (0: never)
  std::uint32_t max_frame = default_max_frame;   ///< largest frame body accepted and sent
  std::string software = "fedpp";                ///< name sent in the hello (the server logs it)
  std::function<void(const ConnectionEvent&)> on_event{};  ///< connection events (on the network thread)
};

/// What a NetworkClient did.
struct ClientRunStats {
  std::uint64_t rounds = 0;       ///< requests answered
  std::uint64_t connections = 0;  ///< successful hellos (1 + reconnects)
  std::uint64_t failures = 0;     ///< replies that carried a failure (client_error)
  std::uint64_t replays = 0;      ///< rounds asked again after a server restart (state rolled back first)
  std::string goodbye{};          ///< the server's goodbye text
};

/// The server refused this client (wrong credentials, id, codec, ...): retrying cannot help.
class RejectedError : public Error {
 public:
  /// A rejection with its reason.
  RejectedError(RejectReason r, const std::string& what) : Error(what), reason_(r) {}
  /// Why.
  [[nodiscard]] RejectReason reason() const noexcept { return reason_; }

 private:
  RejectReason reason_;
};

/// Runs a fedpp::Client against a server over TCP until the server says goodbye.
/**
 * `run()` connects, sends a hello (id, token, codec, scalar type, dimension), and then answers
 * each round request: training runs on a separate thread while the network thread keeps
 * reading and sends a heartbeat every interval the server asked for (a slow trainer is never
 * mistaken for a dead one). When the connection is lost it reconnects with the same id after
 * a growing wait, keeping the Client (and so its optimizer and compressor state); a reply
 * computed for a request of a lost connection is dropped. Server restarts: before training
 * round r the client keeps a snapshot of its state; asked for the same round r again (a server
 * that resumed from its checkpoint of round r-1), it restores that snapshot first, so the
 * replayed round is bit-identical. `run()` returns when the server says goodbye, and throws
 * RejectedError when the server refuses the hello, or Error after give_up_after without a
 * connection.
 * @tparam C a client type: `Reply handle(const RoundRequest<S>&)`, `id()`, `Scalar`, the
 *           model's `num_params()` through `model()`, the compressor through `compressor()`,
 *           and cereal save/load (fedpp::Client has them all).
 */
template <typename C>
class NetworkClient {
 public:
  /// Scalar type.
  using Scalar = typename C::Scalar;

  /// A network client for `client` (not owned; must outlive this object).
  NetworkClient(C& client, ClientOptions opts) : client_(&client), opts_(checked(std::move(opts))) {
    if (opts_.security.mode == ClientSecurity::Mode::tls) tls_ = make_client_tls(opts_.security);
    dim_ = static_cast<std::uint64_t>(client.model().num_params());
    codec_ = probe_codec<Scalar>(client.compressor());
  }

  NetworkClient(const NetworkClient&) = delete;
  NetworkClient& operator=(const NetworkClient&) = delete;

  /// Connects and serves rounds until the server says goodbye (see the class comment).
  ClientRunStats run() {
    asio::io_context io;
    asio::thread_pool trainer(1);
    {
      std::lock_guard lk(mu_);
      io_ = &io;
    }
    std::exception_ptr error;
    asio::co_spawn(io, main_loop(io, trainer), [&](std::exception_ptr e) { error = e; });
    io.run();
    trainer.join();
    conn_.reset();  // its sockets and timers belong to `io`: release them before it goes
    {
      std::lock_guard lk(mu_);
      io_ = nullptr;
    }
    if (error) std::rethrow_exception(error);
    return stats_;
  }

  /// Ends run() from another thread: says goodbye to the server and returns.
  void stop() {
    post([this] {
      stop_ = true;
      wake();
      if (!conn_) return;
      conn_->send(Head{Goodbye{GoodbyeReason::finished, "client stopping"}});
      asio::co_spawn(
          conn_->socket().get_executor(),
          [c = conn_]() -> asio::awaitable<void> {
            co_await c->flush();
            c->close({}, "client stopping");
          },
          asio::detached);
    });
  }

  /// Drops the current connection without a goodbye (as a network failure would); run() reconnects.
  void drop_connection() {
    post([this] {
      if (conn_) conn_->close(make_error_code(ProtocolErrc::truncated_frame), "dropped on request");
    });
  }

  /// Ends run() at once without a goodbye (as a killed process would).
  void kill() {
    post([this] {
      killed_ = true;
      stop_ = true;
      if (conn_) conn_->close({}, "killed");
      wake();
    });
  }

  /// What the client did so far (call after run() returned).
  [[nodiscard]] const ClientRunStats& stats() const noexcept { return stats_; }

 private:
  static ClientOptions checked(ClientOptions o) {
    constexpr std::string_view who = "fedpp::net::NetworkClient";
    require(o.port != 0, who, "port must be set", o.port);
    require(o.security.mode != ClientSecurity::Mode::unset, who,
            "security must be set: TLS, or ClientSecurity::insecure_plaintext() explicitly", "unset");
    require(o.max_frame >= 4096, who, "max_frame must be >= 4096 bytes", o.max_frame);
    require(o.retry_initial.count() > 0 && o.retry_max >= o.retry_initial, who,
            "retry_initial must be > 0 and <= retry_max", o.retry_initial.count());
    return o;
  }

  template <typename F>
  void post(F f) {
    std::lock_guard lk(mu_);
    if (io_) asio::post(*io_, std::move(f));
  }

  void wake() {
    if (retry_timer_) retry_timer_->cancel();
  }

  void event(ConnectionEvent e) {
    if (opts_.on_event) opts_.on_event(e);
  }

  asio::awaitable<void> main_loop(asio::io_context& io, asio::thread_pool& trainer) {
    auto last_ok = std::chrono::steady_clock::now();
    auto wait = opts_.retry_initial;
    asio::steady_timer retry(io);
    retry_timer_ = &retry;
    while (!stop_) {
      ConnectionEvent end{ConnectionEvent::Kind::closed, client_->id(), opts_.host + ":" + std::to_string(opts_.port), {}, {}};
      bool finished = false, connected = false;
      try {
        co_await session(io, trainer, connected, finished);
      } catch (const RejectedError&) {
        retry_timer_ = nullptr;
        throw;
      } catch (const ProtocolError& e) {
        end.code = e.code();
        end.text = e.what();
      } catch (const boost::system::system_error& e) {
        end.code = conn_ && conn_->closed() ? conn_->close_code() : std::error_code(e.code());
        end.text = conn_ && conn_->closed() ? conn_->close_text() : std::string(e.what());
      }
      if (conn_) conn_->close(end.code, end.text);
      conn_.reset();
      ++epoch_;
      if (connected || finished) event(std::move(end));
      if (finished || stop_) break;
      if (connected) {
        last_ok = std::chrono::steady_clock::now();
        wait = opts_.retry_initial;
      }
      if (opts_.give_up_after.count() > 0 && std::chrono::steady_clock::now() - last_ok > opts_.give_up_after) {
        retry_timer_ = nullptr;
        fail<Error>("fedpp::net::NetworkClient",
                    "no connection to " + opts_.host + ":" + std::to_string(opts_.port) + " for " +
                        std::to_string(opts_.give_up_after.count()) + " ms (last error: " +
                        (end.text.empty() ? std::string("none") : end.text) + ")");
      }
      retry.expires_after(wait);
      boost::system::error_code ec;
      co_await retry.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      wait = std::min(opts_.retry_max, wait * 2);
    }
    retry_timer_ = nullptr;
  }

  asio::awaitable<void> session(asio::io_context& io, asio::thread_pool& trainer, bool& connected, bool& finished) {
    // Connect (resolve + connect within the handshake timeout).
    tcp::resolver resolver(io);
    const auto endpoints = co_await resolver.async_resolve(opts_.host, std::to_string(opts_.port), asio::use_awaitable);
    tcp::socket sock(io);
    {
      asio::steady_timer guard(io, opts_.timeouts.handshake);
      bool timed_out = false;
      guard.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) {
          timed_out = true;
          boost::system::error_code ignored;
          sock.close(ignored);
        }
      });
      boost::system::error_code ec;
      co_await asio::async_connect(sock, endpoints, asio::redirect_error(asio::use_awaitable, ec));
      guard.cancel();
      if (timed_out) throw ProtocolError(ProtocolErrc::handshake_timeout, "connecting timed out");
      if (ec) throw boost::system::system_error(ec);
    }
    boost::system::error_code ignored;
    sock.set_option(tcp::no_delay(true), ignored);
    const DecoderLimits limits{opts_.max_frame, 16 * dim_ + (1u << 16)};
    ConnectionTimeouts hello_phase{opts_.timeouts.read, opts_.timeouts.handshake, opts_.timeouts.handshake};
    if (tls_) {
      conn_ = std::make_shared<Connection>(std::move(sock), tls_, hello_phase, limits);
      const std::string name = opts_.security.server_name.empty() ? opts_.host : opts_.security.server_name;
      conn_->tls()->set_verify_callback(asio::ssl::host_name_verification(name));
      boost::system::error_code parse_ec;
      asio::ip::make_address(name, parse_ec);
      if (parse_ec) SSL_set_tlsext_host_name(conn_->tls()->native_handle(), name.c_str());  // SNI for names only
    } else {
      conn_ = std::make_shared<Connection>(std::move(sock), hello_phase, limits);
    }
    auto conn = conn_;
    const std::uint64_t epoch = epoch_;
    training_this_connection_ = false;
    conn->start();
    co_await conn->handshake(asio::ssl::stream_base::client);
    Hello hello;
    hello.client = static_cast<std::uint32_t>(client_->id());
    hello.token = opts_.security.token;
    hello.codec = codec_;
    hello.scalar_bytes = sizeof(Scalar);
    hello.dim = dim_;
    hello.software = detail::cut(opts_.software, max_name_bytes);
    conn->send(Head{hello});
    Message first = co_await conn->read_message();
    if (const auto* rj = std::get_if<Reject>(&first.head)) {
      event({ConnectionEvent::Kind::rejected, client_->id(), conn->peer(), make_error_code(to_errc(rj->reason)), rj->text});
      conn->close(make_error_code(to_errc(rj->reason)), rj->text);
      // A duplicate id is usually our own previous connection, not yet noticed dead: retry.
      if (rj->reason == RejectReason::duplicate_client) throw ProtocolError(ProtocolErrc::duplicate_client, rj->text);
      if (rj->reason == RejectReason::shutting_down) {
        finished = true;
        co_return;
      }
      throw RejectedError(rj->reason, "fedpp::net::NetworkClient: the server rejected client " +
                                          std::to_string(client_->id()) + ": " + rj->text);
    }
    if (first.type() != MessageType::welcome)
      throw ProtocolError(ProtocolErrc::unexpected_message,
                          "the server's first message must be welcome or reject, got " + std::string(to_string(first.type())));
    const Welcome w = std::get<Welcome>(first.head);
    connected = true;
    ++stats_.connections;
    conn->set_timeouts(opts_.timeouts);
    conn->resume_idle();
    event({ConnectionEvent::Kind::connected, client_->id(), conn->peer(), {}, {}});
    asio::co_spawn(io, heartbeats(conn, std::chrono::milliseconds(std::max<std::uint32_t>(w.heartbeat_ms, 1))),
                   asio::detached);
    const std::uint32_t send_frame = std::min(opts_.max_frame, w.max_frame);
    for (;;) {
      Message m = co_await conn->read_message();
      switch (m.type()) {
        case MessageType::heartbeat: break;
        case MessageType::goodbye: {
          stats_.goodbye = std::get<Goodbye>(m.head).text;
          finished = true;
          conn->close({}, "server said goodbye: " + stats_.goodbye);
          co_return;
        }
        case MessageType::round_request: {
          // One request at a time per connection; a training left over from a lost connection
          // may still run (the new one queues behind it on the trainer thread).
          if (training_this_connection_)
            throw ProtocolError(ProtocolErrc::unexpected_message, "a round request while the previous one is in training");
          RoundRequest<Scalar> req = to_request(std::get<RoundHead>(m.head), m);
          training_this_connection_ = true;
          ++trainings_;
          training_round_ = req.round;
          asio::post(trainer, [this, &io, req = std::move(req), epoch, send_frame] {
            auto reply = std::make_shared<Reply>(train(req));
            asio::post(io, [this, reply, epoch, send_frame] { finish_round(reply, epoch, send_frame); });
          });
          break;
        }
        default:
          throw ProtocolError(ProtocolErrc::unexpected_message,
                              "a server may not send " + std::string(to_string(m.type())) + " after the welcome");
      }
    }
  }

  RoundRequest<Scalar> to_request(const RoundHead& h, const Message& m) const {
    if (h.scalar_bytes != sizeof(Scalar))
      protocol_fail(ProtocolErrc::scalar_mismatch, "fedpp::net::NetworkClient", "round request scalar bytes must be " +
                                                                                   std::to_string(sizeof(Scalar)),
                    unsigned{h.scalar_bytes});
    if (h.model_count != dim_)
      protocol_fail(ProtocolErrc::dimension_mismatch, "fedpp::net::NetworkClient",
                    "round request model must have " + std::to_string(dim_) + " entries", h.model_count);
    Vector<Scalar> model(static_cast<Index>(h.model_count)), aux(static_cast<Index>(h.aux_count));
    if (h.model_count) std::memcpy(model.data(), m.bulk1.data(), m.bulk1.size());
    if (h.aux_count) std::memcpy(aux.data(), m.bulk2.data(), m.bulk2.size());
    auto req = RoundRequest<Scalar>::shared(h.round, h.seed, std::move(model), std::move(aux));
    if (h.deadline_ms > 0) req.deadline = RoundClock::now() + std::chrono::milliseconds(h.deadline_ms);
    return req;
  }

  // Trainer thread: roll back for a replayed round, snapshot before a new one, train.
  Reply train(const RoundRequest<Scalar>& req) {
    try {
      if (snapshot_round_ && req.round == *snapshot_round_) {
        std::istringstream is(snapshot_);
        load_state(*client_, is);
        ++stats_.replays;
      } else if (snapshot_round_ && req.round < *snapshot_round_) {
        return Reply::failure(client_->id(), req.round, FailureReason::client_error,
                              "asked for round " + std::to_string(req.round) + " after training round " +
                                  std::to_string(*snapshot_round_) +
                                  "; this client can only replay its latest round (resume from the latest checkpoint)");
      } else {
        std::ostringstream os;
        save_state(*client_, os);
        snapshot_ = std::move(os).str();
        snapshot_round_ = req.round;
      }
    } catch (const std::exception& e) {
      return Reply::failure(client_->id(), req.round, FailureReason::client_error,
                            std::string("client state snapshot failed: ") + e.what());
    }
    return client_->handle(req);  // never throws: errors become status failed
  }

  // Network thread: send the reply if the connection that asked is still the current one.
  void finish_round(const std::shared_ptr<Reply>& r, std::uint64_t epoch, std::uint32_t max_frame) {
    --trainings_;
    ++stats_.rounds;
    if (r->status != ReplyStatus::ok) ++stats_.failures;
    if (epoch != epoch_ || !conn_ || conn_->closed()) return;  // asked on a lost connection: the server has moved on
    training_this_connection_ = false;
    ReplyHead h;
    h.round = r->round;
    h.status = static_cast<std::uint8_t>(r->status);
    h.reason = static_cast<std::uint8_t>(r->reason);
    h.weight = r->weight;
    h.train_loss = r->local.train_loss;
    h.steps = r->local.steps;
    h.samples = r->local.samples;
    h.error = detail::cut(r->error, max_text_bytes);
    h.payload_bytes = r->payload.bytes();
    h.aux_bytes = r->aux.bytes();
    auto msg = OutboundMessage::encode(Head{h}, r->payload.data(), r->aux.data(), max_frame);
    msg->keep_alive = r;
    conn_->send(msg);
  }

  asio::awaitable<void> heartbeats(std::shared_ptr<Connection> conn, std::chrono::milliseconds every) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    std::uint64_t seq = 0;
    while (!conn->closed()) {
      t.expires_after(every);
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (conn->closed()) break;
      if (conn->queued() == 0) conn->send(Head{Heartbeat{++seq, static_cast<std::uint8_t>(trainings_ > 0 ? 1 : 0), training_round_}});
    }
  }

  C* client_;
  ClientOptions opts_;
  std::shared_ptr<asio::ssl::context> tls_;
  std::uint64_t dim_ = 0;
  std::uint16_t codec_ = 0;
  std::mutex mu_;
  asio::io_context* io_ = nullptr;
  // network thread
  std::shared_ptr<Connection> conn_;
  asio::steady_timer* retry_timer_ = nullptr;
  std::uint64_t epoch_ = 0;
  std::uint64_t trainings_ = 0;              // queued or running on the trainer thread
  bool training_this_connection_ = false;   // a request of the current connection is being trained
  bool stop_ = false, killed_ = false;
  std::uint64_t training_round_ = 0;
  ClientRunStats stats_;
  // trainer thread
  std::string snapshot_;
  std::optional<std::uint64_t> snapshot_round_;
};

}  // namespace fedpp::net
