#pragma once
/// @file error_feedback.hpp
/// Error feedback around any compressor: ErrorFeedback<C> (Mem-SGD / EF: the client remembers what
/// compression dropped and adds it to the next update) and Ef21<C> (EF21: client and server track
/// the same per-client estimate g_i and only its compressed correction is sent).

#include <concepts>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "fedpp/compressors/identity.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

namespace detail {

/// Encodes with the round-aware overload of `c` when it has one and a context is given.
template <typename C, typename S>
Payload encode_maybe_with_context(const C& c, std::span<const S> x, compressor_state_t<C, S>& st, Rng& rng,
                                  const RoundContext* ctx) {
  if constexpr (CompressorWithContext<C, S>) {
    if (ctx != nullptr) return c.encode(x, st, rng, *ctx);
  }
  return c.encode(x, st, rng);
}

/// Checks an update against the state's dimension and for finiteness (before any state changes).
template <typename S>
void check_feedback_input(std::string_view who, std::span<const S> x, Index dim) {
  if (static_cast<Index>(x.size()) != dim)
    fail<DimensionError>(who, "update dimension must equal the state's dimension " + std::to_string(dim), x.size());
  if (!all_finite(x)) fail(who, "update must be finite", "non-finite values");
}

}  // namespace detail

/// Error feedback (memory) around a compressor C.
/**
 * Mem-SGD / EF: Stich, Cordonnier, Jaggi, "Sparsified SGD with Memory", NeurIPS 2018, and
 * Karimireddy, Rebjock, Stich, Jaggi, "Error Feedback Fixes SignSGD", ICML 2019.
 * Per client, with memory e (initially 0) and update x:
 *   p = x + e;  payload = C.encode(p);  e = p - C.decode(payload);  send payload.
 * The memory is computed from the payload itself, so it is exactly what did not cross the wire
 * (sparsification and quantisation error, and the rounding of p to S for the inner encoder).
 * The server decodes with C's decoder unchanged (same wire format as C).
 *
 * Precision: e is stored as `memory_scalar<S> = std::common_type_t<S, Mem>` (double by default).
 * p = x + e and e = p - decode(payload) are the only roundings, both in that precision, so
 * sum of decoded payloads + e = sum of inputs holds to within one rounding of each per round
 * (|error| <= 2 eps_Mem * max|p| per round and coordinate). `ErrorFeedback<C, float>` halves
 * the memory for float models at float rounding.
 *
 * Memory: per client d memory values + one d-vector of S scratch (not serialised) + C's state.
 * Errors: non-finite or wrongly sized input -> InvalidArgument / DimensionError from encode,
 * before the memory or C's state change (strong guarantee as long as C's encode gives it).
 * The round-aware `encode(x, state, rng, ctx)` forwards ctx to C when C has that overload.
 * @tparam C   a Compressor with a stateless decoder (not a StatefulDecoder)
 * @tparam Mem floating-point type that, combined with S, stores the memory (default double)
 */
template <typename C, std::floating_point Mem = double>
class ErrorFeedback {
 public:
  /// Scalar of the memory for updates of type S.
  template <typename S>
  using memory_scalar = std::common_type_t<S, Mem>;

  /// Per-client state: C's state and the memory e.
  template <typename S>
  struct State {
    compressor_state_t<C, S> inner;      ///< the inner compressor's state
    Vector<memory_scalar<S>> memory;     ///< e: what compression has not yet transmitted
    Vector<S> scratch;                   ///< work buffer (not serialised; resized on demand)

    /// cereal: the inner state (skipped when empty), then the memory.
    template <class Archive>
    void serialize(Archive& ar) {
      if constexpr (!std::is_empty_v<compressor_state_t<C, S>>) ar(inner);
      ar(memory);
    }
  };

  /// Wraps `inner`.
  explicit ErrorFeedback(C inner = C()) : inner_(std::move(inner)) {}

  /// The wrapped compressor.
  [[nodiscard]] const C& inner() const noexcept { return inner_; }

  /// Creates the state of one client: C's state and a zero memory of `dim` values.
  template <typename S>
  [[nodiscard]] State<S> make_state(Index dim) const {
    static_assert(Compressor<C, S>, "fedpp::ErrorFeedback: C must be a Compressor for S");
    static_assert(!StatefulDecoder<C, S>, "fedpp::ErrorFeedback: C's decoder must be stateless");
    require(dim >= 0, "fedpp::ErrorFeedback", "dim must be >= 0", dim);
    return State<S>{inner_.template make_state<S>(dim), Vector<memory_scalar<S>>::Zero(dim), Vector<S>()};
  }

  /// Encodes x + memory with C and keeps what was not transmitted in the memory.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State<S>& st, Rng& rng) const {
    return encode_impl(x, st, rng, nullptr);
  }

  /// Round-aware overload: as above, forwarding `ctx` to C when C is round-aware.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State<S>& st, Rng& rng, const RoundContext& ctx) const {
    return encode_impl(x, st, rng, &ctx);
  }

  /// Decodes with C (the wire format is C's).
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    inner_.decode(p, out);
  }

 private:
  template <typename S>
  Payload encode_impl(std::span<const S> x, State<S>& st, Rng& rng, const RoundContext* ctx) const {
    using M = memory_scalar<S>;
    detail::check_feedback_input("fedpp::ErrorFeedback", x, st.memory.size());
    const auto xm = as_map(x);
    // p = x + e, rounded to S for C; the memory only changes once the payload exists.
    st.scratch.resize(st.memory.size());
    st.scratch = (xm.template cast<M>() + st.memory).template cast<S>();
    Payload payload = detail::encode_maybe_with_context(inner_, as_span(std::as_const(st.scratch)), st.inner, rng, ctx);
    inner_.decode(payload, as_span(st.scratch));  // exactly what the server will see
    // e = p - decode(payload), with p recomputed by the same (deterministic) arithmetic.
    st.memory = (xm.template cast<M>() + st.memory) - st.scratch.template cast<M>();
    return payload;
  }

  C inner_;
};

/// EF21 around a compressor C: client and server track the same estimate g_i per client.
/**
 * Richtárik, Sokolov, Fatkhullin, "EF21: A New, Simpler, Theoretically Better, and Practically
 * Faster Error Feedback", NeurIPS 2021. Client i keeps g_i (initially 0) and, for its update x:
 *   c = C(x - g_i);  g_i += decode(c);  send c.
 * The server keeps the same g_i per client as its decoder state (see StatefulDecoder; Server
 * creates it on the client's first accepted payload) and outputs g_i + decode(c), the client's
 * new tracked estimate, as that client's update; the aggregator then averages the g_i of the
 * round's participants (the paper's g^{t+1} under full participation).
 *
 * Initialisation: the paper starts from g_i^0 = C(grad f_i(x^0)) (or the full gradient); here
 * g_i^0 = 0, so the first message is C(x^0) and g_i^1 = decode(C(x^0)): the paper's
 * compressed initialisation, reached one round later.
 * Both sides compute g_i += decode(c) with identical arithmetic in `memory_scalar<S>`
 * (double by default), so client and server estimates stay bit-identical.
 * Memory: client d values of g_i + d scratch + C's state; server d values per client seen.
 * The stateless `decode(payload, out)` returns only the increment decode(c).
 * Errors as ErrorFeedback (checked before any state changes).
 * @tparam C   a Compressor with a stateless decoder (contractive, e.g. TopK, for the theory)
 * @tparam Mem floating-point type that, combined with S, stores g_i (default double)
 */
template <typename C, std::floating_point Mem = double>
class Ef21 {
 public:
  /// Scalar of g_i for updates of type S.
  template <typename S>
  using memory_scalar = std::common_type_t<S, Mem>;

  /// Client state: C's state and the tracked estimate g_i.
  template <typename S>
  struct State {
    compressor_state_t<C, S> inner;    ///< the inner compressor's state
    Vector<memory_scalar<S>> g;        ///< g_i, the estimate the server also holds
    Vector<S> scratch;                 ///< work buffer (not serialised; resized on demand)

    /// cereal: the inner state (skipped when empty), then g_i.
    template <class Archive>
    void serialize(Archive& ar) {
      if constexpr (!std::is_empty_v<compressor_state_t<C, S>>) ar(inner);
      ar(g);
    }
  };

  /// Server-side state of one client: its g_i.
  template <typename S>
  struct DecoderState {
    Vector<memory_scalar<S>> g;  ///< g_i as tracked by the server

    /// cereal: g_i.
    template <class Archive>
    void serialize(Archive& ar) {
      ar(g);
    }
  };

  /// Wraps `inner`.
  explicit Ef21(C inner = C()) : inner_(std::move(inner)) {}

  /// The wrapped compressor.
  [[nodiscard]] const C& inner() const noexcept { return inner_; }

  /// Creates a client's state: C's state and g_i = 0 of `dim` values.
  template <typename S>
  [[nodiscard]] State<S> make_state(Index dim) const {
    static_assert(Compressor<C, S>, "fedpp::Ef21: C must be a Compressor for S");
    static_assert(!StatefulDecoder<C, S>, "fedpp::Ef21: C's decoder must be stateless");
    require(dim >= 0, "fedpp::Ef21", "dim must be >= 0", dim);
    return State<S>{inner_.template make_state<S>(dim), Vector<memory_scalar<S>>::Zero(dim), Vector<S>()};
  }

  /// Creates the server's state for one client: g_i = 0 of `dim` values.
  template <typename S>
  [[nodiscard]] DecoderState<S> make_decoder_state(Index dim) const {
    require(dim >= 0, "fedpp::Ef21", "dim must be >= 0", dim);
    return DecoderState<S>{Vector<memory_scalar<S>>::Zero(dim)};
  }

  /// Sends C(x - g_i) and adds its decoded value to g_i.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State<S>& st, Rng& rng) const {
    return encode_impl(x, st, rng, nullptr);
  }

  /// Round-aware overload: as above, forwarding `ctx` to C when C is round-aware.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State<S>& st, Rng& rng, const RoundContext& ctx) const {
    return encode_impl(x, st, rng, &ctx);
  }

  /// Decodes only the increment decode(c) (no server state; see the 3-argument overload).
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    inner_.decode(p, out);
  }

  /// Server side: g_i += decode(c), then writes g_i into `out`; throws DecodeError (g_i unchanged)
  /// on a malformed payload or a state of the wrong dimension.
  template <typename S>
  void decode(const Payload& p, std::span<S> out, DecoderState<S>& dst) const {
    using M = memory_scalar<S>;
    if (dst.g.size() != static_cast<Index>(out.size()))
      fail<DecodeError>("fedpp::Ef21::decode", "decoder state dimension must be " + std::to_string(out.size()),
                        dst.g.size());
    inner_.decode(p, out);
    auto om = as_map(out);
    dst.g += om.template cast<M>();
    om = dst.g.template cast<S>();
  }

 private:
  template <typename S>
  Payload encode_impl(std::span<const S> x, State<S>& st, Rng& rng, const RoundContext* ctx) const {
    using M = memory_scalar<S>;
    detail::check_feedback_input("fedpp::Ef21", x, st.g.size());
    st.scratch.resize(st.g.size());
    st.scratch = (as_map(x).template cast<M>() - st.g).template cast<S>();
    Payload payload = detail::encode_maybe_with_context(inner_, as_span(std::as_const(st.scratch)), st.inner, rng, ctx);
    inner_.decode(payload, as_span(st.scratch));  // the server decodes exactly this
    st.g += st.scratch.template cast<M>();
    return payload;
  }

  C inner_;
};

static_assert(Compressor<ErrorFeedback<Identity>, float> && Compressor<ErrorFeedback<Identity>, double>);
static_assert(CompressorWithContext<ErrorFeedback<Identity>, float>);
static_assert(!StatefulDecoder<ErrorFeedback<Identity>, float>);
static_assert(Compressor<Ef21<Identity>, float> && Compressor<Ef21<Identity>, double>);
static_assert(StatefulDecoder<Ef21<Identity>, float> && StatefulDecoder<Ef21<Identity>, double>);
}  // namespace fedpp
