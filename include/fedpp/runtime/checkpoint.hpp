#pragma once
/// @file checkpoint.hpp
/// Whole-server (and whole-simulation) checkpoints: a versioned, fingerprinted, checksummed
/// cereal archive, written to a temporary file, flushed and renamed, so a crash during the
/// write leaves the previous checkpoint intact; loading is all-or-nothing.
/**
 * File layout (little-endian): u32 magic 0x56535046 ("FPSV"), u32 format version
 * (server_checkpoint_version), u64 body length, u64 reply_digest-style digest of the body, then
 * the body: a cereal portable-binary archive of the configuration fingerprint (a string) and the
 * parts (ServerState, then e.g. the simulated clients). A checkpoint whose fingerprint differs
 * from the loading configuration's (dimension, scalar, policy types, run settings, tag) is refused
 * with both fingerprints in the message.
 */

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#if __has_include(<unistd.h>)
#include <unistd.h>
#define FEDPP_HAVE_FSYNC 1
#endif

#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/runtime/server.hpp"
#include "fedpp/serialization/eigen.hpp"

namespace fedpp {

/// Format version of whole-server checkpoints (checked on load).
inline constexpr std::uint32_t server_checkpoint_version = 1;
/// Magic number at the start of a whole-server checkpoint ("FPSV" little-endian).
inline constexpr std::uint32_t server_checkpoint_magic = 0x56535046u;

namespace detail {

/// The compiler's spelling of type T (stable for one compiler and library version).
template <typename T>
std::string type_name() {
#if defined(__clang__) || defined(__GNUC__)
  std::string_view f = __PRETTY_FUNCTION__;
  const auto b = f.find("T = ");
  if (b == std::string_view::npos) return std::string(f);
  f.remove_prefix(b + 4);
  const auto e = f.find_first_of(";]");
  return std::string(f.substr(0, e));
#else
  return typeid(T).name();
#endif
}

/// Shortest round-trip text of a double (for fingerprints).
inline std::string fingerprint_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

/// 64-bit digest of a byte string (the checkpoint body's integrity check).
inline std::uint64_t bytes_digest(std::string_view bytes) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  return reply_digest(Payload(std::vector<std::uint8_t>(p, p + bytes.size())), Payload());
}

inline void put_u32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}
inline void put_u64(std::string& out, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xffu));
}
inline std::uint64_t get_le(std::string_view in, std::size_t at, int bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[at + static_cast<std::size_t>(i)])) << (8 * i);
  return v;
}

}  // namespace detail

/// Writes `bytes` to `path` atomically: `path` + ".tmp", flushed (fsync where available), then renamed over `path`.
/// @throws Error naming the file when any step fails (the previous file at `path` is then untouched).
inline void write_file_atomically(const std::filesystem::path& path, std::string_view bytes) {
  constexpr std::string_view who = "fedpp::write_file_atomically";
  const std::filesystem::path tmp = path.string() + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail<Error>(who, "cannot open the temporary checkpoint file for writing", tmp.string());
  const bool written = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size() && std::fflush(f) == 0;
#ifdef FEDPP_HAVE_FSYNC
  const bool synced = written && ::fsync(fileno(f)) == 0;
#else
  const bool synced = written;
#endif
  const bool closed = std::fclose(f) == 0;
  if (!written || !synced || !closed) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    fail<Error>(who, "writing the temporary checkpoint file failed", tmp.string());
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    fail<Error>(who, "renaming the checkpoint into place failed (" + ec.message() + ")", path.string());
  }
}

/// Writes a checkpoint of `parts` (each cereal-serialisable) under the configuration `fingerprint`.
template <typename... Parts>
void save_checkpoint_parts(const std::filesystem::path& path, const std::string& fingerprint, const Parts&... parts) {
  std::ostringstream body(std::ios::binary);
  {
    cereal::PortableBinaryOutputArchive ar(body);
    ar(fingerprint);
    (ar(parts), ...);
  }
  if (!body) fail<Error>("fedpp::save_checkpoint", "serialising the checkpoint failed", path.string());
  const std::string b = std::move(body).str();
  std::string out;
  out.reserve(24 + b.size());
  detail::put_u32(out, server_checkpoint_magic);
  detail::put_u32(out, server_checkpoint_version);
  detail::put_u64(out, b.size());
  detail::put_u64(out, detail::bytes_digest(b));
  out += b;
  write_file_atomically(path, out);
}

/// Reads a checkpoint written by save_checkpoint_parts into `parts`, all or nothing.
/**
 * Every part is loaded into a copy first and assigned only when the whole file has been read
 * and checked, so on any error the parts are unchanged.
 * @throws DataError when the file cannot be read; DecodeError on a bad magic number, version,
 *         length (truncated), digest (corrupted) or archive; InvalidArgument when the
 *         checkpoint's fingerprint differs from `fingerprint` (both are in the message).
 */
template <typename... Parts>
void load_checkpoint_parts(const std::filesystem::path& path, const std::string& fingerprint, Parts&... parts) {
  constexpr std::string_view who = "fedpp::load_checkpoint";
  std::ifstream in(path, std::ios::binary);
  if (!in) fail<DataError>(who, "cannot open the checkpoint file", path.string());
  std::string file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (file.size() < 24) fail<DecodeError>(who, "truncated checkpoint (shorter than its 24-byte header)", file.size());
  if (detail::get_le(file, 0, 4) != server_checkpoint_magic)
    fail<DecodeError>(who, "not a fedpp server checkpoint (bad magic number)", detail::get_le(file, 0, 4));
  if (detail::get_le(file, 4, 4) != server_checkpoint_version)
    fail<DecodeError>(who, "unsupported checkpoint version (expected " + std::to_string(server_checkpoint_version) + ")",
                      detail::get_le(file, 4, 4));
  const std::uint64_t len = detail::get_le(file, 8, 8);
  if (len != file.size() - 24)
    fail<DecodeError>(who, "truncated or padded checkpoint (body of " + std::to_string(file.size() - 24) +
                               " bytes, header says)", len);
  const std::string_view body = std::string_view(file).substr(24);
  if (detail::get_le(file, 16, 8) != detail::bytes_digest(body))
    fail<DecodeError>(who, "corrupted checkpoint (digest mismatch)", path.string());
  std::tuple<std::remove_cvref_t<Parts>...> loaded(parts...);
  std::string stored;
  try {
    std::istringstream is(std::string(body), std::ios::binary);
    cereal::PortableBinaryInputArchive ar(is);
    ar(stored);
    if (stored != fingerprint)
      fail(who, "the checkpoint belongs to another configuration; expected \"" + fingerprint + "\"", stored);
    std::apply([&](auto&... p) { (ar(p), ...); }, loaded);
  } catch (const cereal::Exception& e) {
    fail<DecodeError>(who, "malformed checkpoint", e.what());
  }
  std::apply([&](auto&... p) { ((parts = std::move(p)), ...); }, loaded);
}

namespace detail {

/// Hex text of a 64-bit digest of `n` values of type T.
template <typename T>
std::string values_digest(const T* p, std::size_t n) {
  const auto* b = reinterpret_cast<const std::uint8_t*>(p);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(reply_digest(Payload(std::vector<std::uint8_t>(b, b + n * sizeof(T))), Payload())));
  return buf;
}

/// The fixed input of the behaviour probes: 23 updates of dimension 64 with distinct weights.
template <typename S>
UpdateBatch<S> probe_batch() {
  constexpr Index d = 64, n = 23;
  UpdateBatch<S> batch(d, n);
  Vector<S> col(d);
  for (Index i = 0; i < n; ++i) {
    Rng rng = make_rng(0x5eedf00dULL, 0, static_cast<std::uint64_t>(i), Purpose::user);
    for (Index k = 0; k < d; ++k) col(k) = static_cast<S>(rng.uniform() - 0.5);
    batch.push_back(static_cast<ClientId>(i), static_cast<double>(1 + i), as_span(std::as_const(col)));
  }
  return batch;
}

/// What a policy does on the probe input, as text: a digest of its output, or its error message.
/// Settings that change the behaviour (a rule's tau or f, an optimizer's lr, a compressor's k)
/// change this text; the probe never touches the policy itself (it works on a fresh copy and state).
template <typename S, typename Agg, typename SOpt, typename Comp>
std::string behaviour_probe(const Agg& agg, const SOpt& sopt, const Comp& comp) {
  const UpdateBatch<S> batch = probe_batch<S>();
  std::string out;
  try {
    Agg a = agg;
    if constexpr (StatefulAggregator<Agg>) a.state() = std::remove_cvref_t<decltype(a.state())>{};
    Vector<S> r;
    detail::aggregate_in_context(a, batch, r, AggregationContext{0, 0});
    out += "aggregate " + values_digest(r.data(), static_cast<std::size_t>(r.size()));
  } catch (const std::exception& e) {
    out += std::string("aggregate throws ") + e.what();
  }
  try {
    auto st = sopt.template make_state<S>(batch.dim());
    Vector<S> params = Vector<S>::Map(batch.column(0).data(), batch.dim());
    const Vector<S> update = Vector<S>::Map(batch.column(1).data(), batch.dim());
    detail::server_step(sopt, params, update, st, ServerContext{0, 100, 10});
    out += "; step " + values_digest(params.data(), static_cast<std::size_t>(params.size()));
  } catch (const std::exception& e) {
    out += std::string("; step throws ") + e.what();
  }
  try {
    auto st = comp.template make_state<S>(batch.dim());
    Rng rng = make_rng(0x5eedf00dULL, 0, 0, Purpose::compression);
    const Payload p = comp.encode(batch.column(2), st, rng);
    out += "; encode " + values_digest(p.data().data(), p.bytes());
  } catch (const std::exception& e) {
    out += std::string("; encode throws ") + e.what();
  }
  return out;
}

}  // namespace detail

/// The configuration fingerprint of a server: scalar, dimension, policy types, run settings and `tag`.
/**
 * Policy settings enter through a behaviour probe (detail::behaviour_probe): the digests of what
 * fresh copies of the aggregator, the server optimizer and the compressor make of a fixed small
 * input, so a checkpoint of CenteredClipping(tau 0.05) does not load into a server built with
 * tau 0.5. Settings that do not change the behaviour on that input escape it; name them in `tag`.
 */
template <typename S, typename Agg, typename SOpt, typename Comp>
std::string config_fingerprint(const Server<S, Agg, SOpt, Comp>& server, std::string_view tag = {}) {
  const ServerOptions& o = server.options();
  std::string f = "fedpp server; scalar ";
  const auto add = [&f](std::string_view key, const std::string& value) {
    ((f += "; ") += key) += ' ';
    f += value;
  };
  f += detail::type_name<S>();
  add("dim", std::to_string(server.params().size()));
  add("aggregator", detail::type_name<Agg>());
  add("server optimizer", detail::type_name<SOpt>());
  add("compressor", detail::type_name<Comp>());
  add("seed", std::to_string(o.seed));
  add("fraction", detail::fingerprint_number(o.fraction));
  add("clients_per_round", std::to_string(o.clients_per_round));
  add("min_updates", std::to_string(o.min_updates));
  add("over_selection", detail::fingerprint_number(o.over_selection));
  add("behaviour", detail::behaviour_probe<S>(server.aggregator(), server.server_optimizer(), server.compressor()));
  if (!tag.empty()) (f += "; ") += tag;
  return f;
}

/// Saves the server's whole state (and any `extra` cereal-serialisable parts) to `path`, atomically.
template <typename S, typename Agg, typename SOpt, typename Comp, typename... Extra>
void save_checkpoint(const Server<S, Agg, SOpt, Comp>& server, const std::filesystem::path& path,
                     std::string_view tag = {}, const Extra&... extra) {
  save_checkpoint_parts(path, config_fingerprint(server, tag), server.state(), extra...);
}

/// Restores the server's whole state (and `extra` parts) from `path`; the next round is the checkpoint's.
/// @throws as load_checkpoint_parts; the server and `extra` are unchanged on any error.
template <typename S, typename Agg, typename SOpt, typename Comp, typename... Extra>
void load_checkpoint(Server<S, Agg, SOpt, Comp>& server, const std::filesystem::path& path, std::string_view tag = {},
                     Extra&... extra) {
  auto state = server.state();
  load_checkpoint_parts(path, config_fingerprint(server, tag), state, extra...);
  server.restore(std::move(state));
}

/// The clients of a simulation as one checkpoint part: each client's own state, in id order.
/**
 * Saving writes the count, then each client (Client::save); loading requires the same count and
 * loads each client in place (Client::load checks its id). Holds its own copy of the clients, so
 * load_checkpoint_parts can load all-or-nothing and the caller moves them back afterwards.
 */
template <typename C>
struct ClientStates {
  std::vector<C> clients;  ///< the clients

  /// cereal save: count, then each client.
  template <class Archive>
  void save(Archive& ar) const {
    ar(static_cast<std::uint64_t>(clients.size()));
    for (const C& c : clients) ar(c);
  }
  /// cereal load: the same count, then each client in place.
  template <class Archive>
  void load(Archive& ar) {
    std::uint64_t n = 0;
    ar(n);
    if (n != clients.size())
      fail("fedpp::load_checkpoint", "the checkpoint holds another number of clients; expected " +
                                         std::to_string(clients.size()), n);
    for (C& c : clients) ar(c);
  }
};

/// Callback that checkpoints a server after every completed round (pass it to Server::run).
template <typename ServerT>
class ServerCheckpointer {
 public:
  /// Writes `server`'s state to `path` after each round (`tag` goes into the fingerprint).
  ServerCheckpointer(const ServerT& server, std::filesystem::path path, std::string tag = {})
      : server_(&server), path_(std::move(path)), tag_(std::move(tag)) {}

  /// Saves the checkpoint.
  template <typename S>
  void on_round_end(const RoundStats& /*st*/, std::span<const S> /*params*/) {
    save_checkpoint(*server_, path_, tag_);
  }

 private:
  const ServerT* server_;
  std::filesystem::path path_;
  std::string tag_;
};

}  // namespace fedpp
