#pragma once
/// @file connection.hpp
/// One framed connection over TCP or TLS (Boost.Asio with C++20 coroutines): security settings,
/// TLS contexts, frame reading with a per-read deadline, an ordered writer queue, heartbeats'
/// watchdog, and the events a connection reports.

#include <utility>  // before Asio: boost/asio/awaitable.hpp (1.74) uses std::exchange without including it

#include <boost/asio/detail/config.hpp>
#if !defined(BOOST_ASIO_HAS_CO_AWAIT)
#error "fedpp::net needs Boost.Asio's C++20 coroutines (BOOST_ASIO_HAS_CO_AWAIT): GCC >= 10 with -std=c++20, or clang with libc++"
#endif

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include "fedpp/core/error.hpp"
#include "fedpp/net/protocol.hpp"

namespace fedpp::net {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

/// How a server protects and authenticates connections (plaintext only when asked for).
/**
 * TLS: the server presents `cert_file`/`key_file`; with `require_client_certificate` every
 * client must present a certificate signed by `ca_file` whose subject common name is
 * "client-<id>" for the id it claims (mutual TLS). Tokens: when `tokens` is not empty, client i
 * must send tokens[i] in its hello (compared in constant time; use them over TLS). A server
 * that neither requires client certificates nor holds tokens accepts any client only with
 * `allow_unauthenticated`.
 */
struct ServerSecurity {
  /// Transport security mode.
  enum class Mode : std::uint8_t {
    unset,      ///< not configured: the transport refuses to start
    plaintext,  ///< no TLS (tests, trusted networks)
    tls,        ///< TLS 1.2 or later
  };
  Mode mode = Mode::unset;                   ///< transport security
  std::string cert_file{};                   ///< server certificate chain (PEM), TLS
  std::string key_file{};                    ///< server private key (PEM), TLS
  std::string ca_file{};                     ///< CA that signs client certificates (PEM), mutual TLS
  bool require_client_certificate = false;   ///< mutual TLS: clients must present a certificate from ca_file
  std::vector<std::string> tokens{};         ///< per-client tokens (index = client id); empty: no tokens
  bool allow_unauthenticated = false;        ///< accept clients that neither have a certificate nor a token

  /// Plaintext, no client authentication (tests and trusted networks only).
  [[nodiscard]] static ServerSecurity insecure_plaintext() {
    ServerSecurity s;
    s.mode = Mode::plaintext;
    s.allow_unauthenticated = true;
    return s;
  }
};

/// How a client protects the connection and proves who it is.
struct ClientSecurity {
  /// Transport security mode (as ServerSecurity::Mode).
  using Mode = ServerSecurity::Mode;
  Mode mode = Mode::unset;      ///< transport security
  std::string ca_file{};        ///< CA that signed the server's certificate (PEM); verified with the host name
  std::string server_name{};    ///< name or address the server's certificate must carry (default: the host)
  std::string cert_file{};      ///< client certificate (PEM), for mutual TLS
  std::string key_file{};       ///< client private key (PEM), for mutual TLS
  std::string token{};          ///< per-client token (sent in the hello)

  /// Plaintext (tests and trusted networks only).
  [[nodiscard]] static ClientSecurity insecure_plaintext() {
    ClientSecurity s;
    s.mode = Mode::plaintext;
    return s;
  }
};

namespace detail {

inline void require_file(std::string_view who, std::string_view what, const std::string& path) {
  if (path.empty()) fail(who, std::string(what) + " must be set", "empty");
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(who, std::string(what) + " must be a readable file", path);
}

/// Loads PEM files into a context, turning OpenSSL errors into fedpp errors naming the file.
template <typename F>
void tls_load(std::string_view who, std::string_view what, const std::string& path, F&& f) {
  boost::system::error_code ec;
  f(ec);
  if (ec) fail(who, std::string(what) + " could not be loaded from " + path, ec.message());
}

}  // namespace detail

/// The server's TLS context (TLS 1.2+; mutual TLS when configured).
[[nodiscard]] inline std::shared_ptr<asio::ssl::context> make_server_tls(const ServerSecurity& s) {
  constexpr std::string_view who = "fedpp::net::make_server_tls";
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_server);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1 |
                   asio::ssl::context::single_dh_use);
  detail::require_file(who, "cert_file", s.cert_file);
  detail::require_file(who, "key_file", s.key_file);
  detail::tls_load(who, "cert_file", s.cert_file, [&](auto& ec) { ctx->use_certificate_chain_file(s.cert_file, ec); });
  detail::tls_load(who, "key_file", s.key_file,
                   [&](auto& ec) { ctx->use_private_key_file(s.key_file, asio::ssl::context::pem, ec); });
  if (s.require_client_certificate) {
    detail::require_file(who, "ca_file", s.ca_file);
    detail::tls_load(who, "ca_file", s.ca_file, [&](auto& ec) { ctx->load_verify_file(s.ca_file, ec); });
    ctx->set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
  } else {
    ctx->set_verify_mode(asio::ssl::verify_none);
  }
  return ctx;
}

/// A client's TLS context: verifies the server against ca_file; presents a certificate when given.
[[nodiscard]] inline std::shared_ptr<asio::ssl::context> make_client_tls(const ClientSecurity& s) {
  constexpr std::string_view who = "fedpp::net::make_client_tls";
  auto ctx = std::make_shared<asio::ssl::context>(asio::ssl::context::tls_client);
  ctx->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                   asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1);
  detail::require_file(who, "ca_file", s.ca_file);
  detail::tls_load(who, "ca_file", s.ca_file, [&](auto& ec) { ctx->load_verify_file(s.ca_file, ec); });
  ctx->set_verify_mode(asio::ssl::verify_peer);
  if (!s.cert_file.empty() || !s.key_file.empty()) {
    detail::require_file(who, "cert_file", s.cert_file);
    detail::require_file(who, "key_file", s.key_file);
    detail::tls_load(who, "cert_file", s.cert_file, [&](auto& ec) { ctx->use_certificate_chain_file(s.cert_file, ec); });
    detail::tls_load(who, "key_file", s.key_file,
                     [&](auto& ec) { ctx->use_private_key_file(s.key_file, asio::ssl::context::pem, ec); });
  }
  return ctx;
}

/// Something that happened to a connection (accepted, rejected, closed with a reason).
struct ConnectionEvent {
  /// What happened.
  enum class Kind : std::uint8_t {
    connected,  ///< handshake done, hello accepted
    rejected,   ///< hello refused (code says why)
    closed,     ///< connection closed (code says why; empty code: clean goodbye)
  };
  Kind kind = Kind::closed;                 ///< what happened
  std::optional<std::uint32_t> client{};    ///< the client id, once known
  std::string peer{};                       ///< remote address:port
  std::error_code code{};                   ///< why (ProtocolErrc or a system error)
  std::string text{};                       ///< detail
};

/// "connected", "rejected" or "closed".
[[nodiscard]] constexpr std::string_view to_string(ConnectionEvent::Kind k) noexcept {
  switch (k) {
    case ConnectionEvent::Kind::connected: return "connected";
    case ConnectionEvent::Kind::rejected: return "rejected";
    case ConnectionEvent::Kind::closed: return "closed";
  }
  return "unknown";
}

/// One line describing an event, e.g. `client 3 (127.0.0.1:5123) closed: bad frame checksum: ...`.
[[nodiscard]] inline std::string describe(const ConnectionEvent& e) {
  std::string s = e.client ? "client " + std::to_string(*e.client) : std::string("connection");
  s += " (" + e.peer + ") " + std::string(to_string(e.kind));
  if (e.code) s += ": " + e.code.message();
  if (!e.text.empty()) s += ": " + e.text;
  return s;
}

/// An async event on an io_context: wait() suspends until notify() (or close()).
class Signal {
 public:
  /// A signal on `ex`.
  explicit Signal(const asio::any_io_executor& ex) : timer_(ex, asio::steady_timer::time_point::max()) {}
  /// Waits for the next notify (returns at once if one happened since the last wait).
  asio::awaitable<void> wait() {
    if (pending_) {
      pending_ = false;
      co_return;
    }
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    pending_ = false;
  }
  /// Wakes the waiter (from the signal's executor).
  void notify() {
    pending_ = true;
    timer_.cancel();
  }

 private:
  asio::steady_timer timer_;
  bool pending_ = false;
};

/// Connection timing settings.
struct ConnectionTimeouts {
  std::chrono::milliseconds read{10000};       ///< the rest of a frame must arrive within this after its first byte
  std::chrono::milliseconds idle{30000};       ///< nothing received for this long: the peer is dead
  std::chrono::milliseconds handshake{10000};  ///< TLS handshake and hello/welcome
};

/// A framed connection: TCP or TLS stream, inbound decoder, outbound queue, watchdog.
/**
 * All members run on the connection's executor (one strand-free io_context thread). Closing
 * records the first reason; pending reads and writes then fail and the coroutines end.
 */
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  /// A plaintext connection over `s`.
  Connection(tcp::socket s, ConnectionTimeouts t, DecoderLimits limits, FrameDecoder::Allocator alloc = {})
      : plain_(std::move(s)), timeouts_(t), decoder_(limits, std::move(alloc)), watchdog_(plain_->get_executor()),
        wake_writer_(plain_->get_executor()) {
    remember_peer();
  }
  /// A TLS connection over `s` with context `ctx`.
  Connection(tcp::socket s, std::shared_ptr<asio::ssl::context> ctx, ConnectionTimeouts t, DecoderLimits limits,
             FrameDecoder::Allocator alloc = {})
      : tls_ctx_(std::move(ctx)), tls_(std::make_unique<asio::ssl::stream<tcp::socket>>(std::move(s), *tls_ctx_)),
        timeouts_(t), decoder_(limits, std::move(alloc)), watchdog_(tls_->get_executor()),
        wake_writer_(tls_->get_executor()) {
    remember_peer();
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// The TCP socket under the stream.
  [[nodiscard]] tcp::socket& socket() noexcept { return tls_ ? tls_->next_layer() : *plain_; }
  /// The TLS stream (null for plaintext).
  [[nodiscard]] asio::ssl::stream<tcp::socket>* tls() noexcept { return tls_.get(); }
  /// Remote address:port (as it was when the connection was made).
  [[nodiscard]] const std::string& peer() const noexcept { return peer_; }
  /// Whether close() was called.
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  /// The first reason given to close() (empty when the peer closed cleanly).
  [[nodiscard]] const std::error_code& close_code() const noexcept { return close_code_; }
  /// The text given with the close reason.
  [[nodiscard]] const std::string& close_text() const noexcept { return close_text_; }
  /// The inbound decoder.
  [[nodiscard]] FrameDecoder& decoder() noexcept { return decoder_; }
  /// Bytes read from and written to the stream.
  [[nodiscard]] std::uint64_t bytes_in() const noexcept { return bytes_in_; }
  /// Bytes written.
  [[nodiscard]] std::uint64_t bytes_out() const noexcept { return bytes_out_; }
  /// Changes the timeouts (e.g. after the hello).
  void set_timeouts(ConnectionTimeouts t) noexcept { timeouts_ = t; }
  /// The timeouts.
  [[nodiscard]] const ConnectionTimeouts& timeouts() const noexcept { return timeouts_; }

  /// Closes the connection once; the first reason sticks.
  void close(std::error_code why = {}, std::string text = {}) {
    if (closed_) return;
    closed_ = true;
    close_code_ = why;
    close_text_ = std::move(text);
    boost::system::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
    watchdog_.cancel();
    wake_writer_.notify();
  }

  /// Starts the watchdog (closes on a stalled frame or an idle peer) and the writer.
  void start() {
    deadline_ = std::chrono::steady_clock::now() + timeouts_.idle;
    reason_ = ProtocolErrc::no_heartbeat;
    auto self = shared_from_this();
    asio::co_spawn(watchdog_.get_executor(), [self]() -> asio::awaitable<void> { co_await self->watch(); },
                   asio::detached);
    asio::co_spawn(watchdog_.get_executor(), [self]() -> asio::awaitable<void> { co_await self->write_loop(); },
                   asio::detached);
  }

  /// Stops closing for idleness while the reader waits for something other than the peer (e.g. a budget).
  void pause_idle() {
    deadline_ = std::chrono::steady_clock::time_point::max();
    watchdog_.cancel();
  }
  /// Counts the idle time from now again.
  void resume_idle() { arm(timeouts_.idle, ProtocolErrc::no_heartbeat); }
  /// Closes with `why` unless a frame arrives within `d` (e.g. the hello after connecting).
  void expect_within(std::chrono::milliseconds d, ProtocolErrc why) { arm(d, why); }

  /// TLS server or client handshake, within the handshake timeout.
  asio::awaitable<void> handshake(asio::ssl::stream_base::handshake_type type) {
    if (!tls_) co_return;
    arm(timeouts_.handshake, ProtocolErrc::handshake_timeout);
    co_await tls_->async_handshake(type, asio::use_awaitable);
    arm(timeouts_.idle, ProtocolErrc::no_heartbeat);
  }

  /// Reads the next complete message (heartbeats included). Throws on close or a protocol error.
  asio::awaitable<Message> read_message() {
    for (;;) {
      std::array<std::uint8_t, frame_header_size> hb{};
      co_await read_exact(asio::buffer(hb.data(), 1), false);  // the first byte starts the per-read deadline
      arm(timeouts_.read, ProtocolErrc::stalled);
      co_await read_exact(asio::buffer(hb.data() + 1, hb.size() - 1), true);
      const FrameDecoder::Target t = decoder_.on_header(hb);
      if (t.size() > 0) {
        std::array<asio::mutable_buffer, 2> bufs{asio::buffer(t.first.data(), t.first.size()),
                                                 asio::buffer(t.second.data(), t.second.size())};
        co_await read_exact(bufs, true);
      }
      arm(timeouts_.idle, ProtocolErrc::no_heartbeat);
      if (std::optional<Message> m = decoder_.on_body()) {
        bulk_started_ = false;
        co_return std::move(*m);
      }
      if (decoder_.pending_bulk() > 0 && !bulk_started_) {
        bulk_started_ = true;
        if (on_bulk_) co_await on_bulk_(decoder_.pending_head(), decoder_.pending_bulk());
      }
    }
  }

  /// Sets a coroutine run once after a head whose bulk follows, before the bulk is read (e.g.
  /// to wait for an ingest budget or to check the head); it may throw to refuse the message.
  void on_bulk(std::function<asio::awaitable<void>(const Head&, std::uint64_t)> f) { on_bulk_ = std::move(f); }

  /// Queues a message for sending (messages go out whole and in order).
  void send(std::shared_ptr<const OutboundMessage> m) {
    if (closed_) return;
    queue_.push_back(std::move(m));
    wake_writer_.notify();
  }
  /// Queues a head-only message.
  void send(const Head& h) { send(OutboundMessage::encode(h)); }
  /// Messages waiting to be written.
  [[nodiscard]] std::size_t queued() const noexcept { return queue_.size(); }

  /// After close(): waits until the connection's own coroutines (watchdog, writer) have ended, so
  /// nothing of it outlives its session (at most 2 s).
  asio::awaitable<void> drain() {
    for (int i = 0; i < 2000 && helpers_ > 0; ++i) {
      asio::steady_timer t(watchdog_.get_executor(), std::chrono::milliseconds(1));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

  /// Waits until the queue is written (or the connection closed).
  asio::awaitable<void> flush() {
    while (!closed_ && (!queue_.empty() || writing_)) {
      asio::steady_timer t(watchdog_.get_executor(), std::chrono::milliseconds(1));
      boost::system::error_code ec;
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
  }

 private:
  void remember_peer() {
    boost::system::error_code ec;
    const auto ep = socket().remote_endpoint(ec);
    peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  void arm(std::chrono::milliseconds d, ProtocolErrc why) {
    deadline_ = std::chrono::steady_clock::now() + d;
    reason_ = why;
    watchdog_.cancel();  // the watchdog re-reads the deadline
  }

  template <typename Buffers>
  asio::awaitable<void> read_exact(const Buffers& b, bool mid_frame) {
    boost::system::error_code ec;
    std::size_t n = 0;
    if (tls_)
      n = co_await asio::async_read(*tls_, b, asio::redirect_error(asio::use_awaitable, ec));
    else
      n = co_await asio::async_read(*plain_, b, asio::redirect_error(asio::use_awaitable, ec));
    bytes_in_ += n;
    if (!ec) co_return;
    if (closed_) {  // closed by us (watchdog, protocol error, shutdown): report that reason
      if (close_code_.category() == protocol_category())
        throw ProtocolError(static_cast<ProtocolErrc>(close_code_.value()),
                            close_text_.empty() ? close_code_.message() : close_text_);
      throw boost::system::system_error(asio::error::operation_aborted);  // the caller reads close_code()
    }
    const bool eof = ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    if (mid_frame || (eof && n > 0))
      throw ProtocolError(ProtocolErrc::truncated_frame, "connection ended after " + std::to_string(n) +
                                                             " bytes of a frame (" + ec.message() + ")");
    throw boost::system::system_error(ec);
  }

  asio::awaitable<void> watch() {
    auto self = shared_from_this();
    ++helpers_;
    while (!closed_) {
      watchdog_.expires_at(deadline_);
      boost::system::error_code ec;
      co_await watchdog_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (closed_) break;
      if (std::chrono::steady_clock::now() >= deadline_) {
        const auto ms = reason_ == ProtocolErrc::stalled   ? timeouts_.read
                        : reason_ == ProtocolErrc::no_heartbeat ? timeouts_.idle
                                                                : timeouts_.handshake;
        close(make_error_code(reason_), "nothing received for " + std::to_string(ms.count()) + " ms");
      }
    }
    --helpers_;
  }

  asio::awaitable<void> write_loop() {
    auto self = shared_from_this();
    ++helpers_;
    std::vector<asio::const_buffer> bufs;
    while (!closed_) {
      if (queue_.empty()) {
        co_await wake_writer_.wait();
        continue;
      }
      std::shared_ptr<const OutboundMessage> m = std::move(queue_.front());
      queue_.pop_front();
      writing_ = true;
      bufs.clear();
      for (const auto& p : m->pieces()) bufs.emplace_back(p.data, p.size);
      boost::system::error_code ec;
      std::size_t n = 0;
      if (tls_)
        n = co_await asio::async_write(*tls_, bufs, asio::redirect_error(asio::use_awaitable, ec));
      else
        n = co_await asio::async_write(*plain_, bufs, asio::redirect_error(asio::use_awaitable, ec));
      writing_ = false;
      bytes_out_ += n;
      if (ec) {
        close(ec, "write failed");
        break;
      }
    }
    --helpers_;
  }

  std::shared_ptr<asio::ssl::context> tls_ctx_;
  std::optional<tcp::socket> plain_;
  std::unique_ptr<asio::ssl::stream<tcp::socket>> tls_;
  ConnectionTimeouts timeouts_;
  FrameDecoder decoder_;
  asio::steady_timer watchdog_;
  std::chrono::steady_clock::time_point deadline_ = std::chrono::steady_clock::time_point::max();
  ProtocolErrc reason_ = ProtocolErrc::no_heartbeat;
  Signal wake_writer_;
  std::deque<std::shared_ptr<const OutboundMessage>> queue_;
  std::function<asio::awaitable<void>(const Head&, std::uint64_t)> on_bulk_;
  std::string peer_;
  std::error_code close_code_;
  std::string close_text_;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  int helpers_ = 0;  // watchdog and writer coroutines still running
  bool closed_ = false, writing_ = false, bulk_started_ = false;
};

}  // namespace fedpp::net
