#pragma once
// A hand-driven plaintext peer for the network tests: connects to a TcpTransport with a blocking
// socket and sends exactly the bytes a test wants (valid messages, crafted frames, garbage), reads
// the server's messages with FrameDecoder, and tells whether the server closed the connection.
#include <sys/socket.h>
#include <sys/time.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "fedpp/net/protocol.hpp"

namespace fedpp_test {

class RawPeer {
 public:
  /// Connects to 127.0.0.1:port.
  explicit RawPeer(std::uint16_t port) : sock_(io_) {
    sock_.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    set_timeout(std::chrono::milliseconds(5000));
  }

  /// Sends raw bytes (ignores errors: the server may have closed already).
  void send(std::span<const std::uint8_t> b) {
    boost::system::error_code ec;
    boost::asio::write(sock_, boost::asio::buffer(b.data(), b.size()), ec);
  }
  /// Sends an encoded message (all its frames).
  void send(const fedpp::net::OutboundMessage& m) {
    for (const auto& p : m.pieces()) send(std::span<const std::uint8_t>(p.data, p.size));
  }
  /// Sends a head-only message.
  void send(const fedpp::net::Head& h) { send(*fedpp::net::OutboundMessage::encode(h)); }

  /// Sends a hello.
  void hello(std::uint32_t id, std::uint16_t codec, std::uint64_t dim, std::uint8_t scalar_bytes = 4,
             std::string token = {}) {
    fedpp::net::Hello h;
    h.client = id;
    h.codec = codec;
    h.dim = dim;
    h.scalar_bytes = scalar_bytes;
    h.token = std::move(token);
    h.software = "raw peer";
    send(fedpp::net::Head{h});
  }

  /// Reads the next message; nullopt when the connection closed or `timeout` passed first.
  std::optional<fedpp::net::Message> read_message(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    set_timeout(timeout);
    try {
      for (;;) {
        std::array<std::uint8_t, fedpp::net::frame_header_size> h{};
        if (!read_exact(h.data(), h.size())) return std::nullopt;
        const auto t = dec_.on_header(h);
        if (!read_exact(t.first.data(), t.first.size()) || !read_exact(t.second.data(), t.second.size()))
          return std::nullopt;
        if (auto m = dec_.on_body()) return m;
      }
    } catch (const fedpp::net::ProtocolError&) {
      return std::nullopt;
    }
  }

  /// Reads messages until one of type `t` (skipping heartbeats and others); nullopt on close/timeout.
  std::optional<fedpp::net::Message> read_until(fedpp::net::MessageType t,
                                                std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      auto m = read_message(std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now()) +
                            std::chrono::milliseconds(1));
      if (!m) return std::nullopt;
      if (m->type() == t) return m;
    }
    return std::nullopt;
  }

  /// Whether the server closes the connection within `timeout` (reads and discards until EOF).
  bool closed_by_server(std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
    set_timeout(std::chrono::milliseconds(50));
    const auto until = std::chrono::steady_clock::now() + timeout;
    std::array<std::uint8_t, 4096> buf{};
    while (std::chrono::steady_clock::now() < until) {
      boost::system::error_code ec;
      sock_.read_some(boost::asio::buffer(buf), ec);
      if (ec == boost::asio::error::eof || ec == boost::asio::error::connection_reset) return true;
      if (ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) return true;
    }
    return false;
  }

  /// Closes our side.
  void close() {
    boost::system::error_code ec;
    sock_.shutdown(boost::asio::ip::tcp::socket::shutdown_both, ec);
    sock_.close(ec);
  }

 private:
  void set_timeout(std::chrono::milliseconds t) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(t.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
    ::setsockopt(sock_.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

  bool read_exact(std::uint8_t* p, std::size_t n) {
    if (n == 0) return true;
    boost::system::error_code ec;
    boost::asio::read(sock_, boost::asio::buffer(p, n), ec);
    return !ec;
  }

  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket sock_;
  fedpp::net::FrameDecoder dec_{fedpp::net::DecoderLimits{}};
};

}  // namespace fedpp_test
