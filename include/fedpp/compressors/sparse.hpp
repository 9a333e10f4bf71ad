#pragma once
/// @file sparse.hpp
/// The sparse wire format shared by TopK, RandomK and Dgc: a strictly increasing index set coded as
/// delta varints or a bitmap (whichever is smaller), followed by the kept values in a chosen precision.
///
/// Payload layout (all multi-byte fields little-endian; see docs/compressors/sparse.md):
///
///     PayloadHeader   u16 codec = Codec::sparse (5), u8 version = 1, varint dim, varint count = k
///     u8              value format (ValueFormat: 0 f32, 1 f64, 2 f16, 3 bf16)
///     index block     u8 mode, then
///                       mode 0 (varints): k LEB128 varints: the first index, then each gap minus one
///                                         (idx[i] - idx[i-1] - 1);
///                       mode 1 (bitmap):  ceil(dim / 8) bytes; coordinate i is kept iff bit (i % 8) of
///                                         byte (i / 8) is set; bits past dim are zero.
///                     The encoder picks the mode with fewer bytes; on a tie, varints.
///     values          k values in index order, 4 (f32), 8 (f64) or 2 (f16, bf16) bytes each.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "fedpp/compressors/detail/bits.hpp"
#include "fedpp/core/bytes.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Precision of the values carried by a payload.
enum class ValueFormat : std::uint8_t {
  f32 = 0,   ///< IEEE binary32
  f64 = 1,   ///< IEEE binary64
  f16 = 2,   ///< IEEE binary16 (half precision), round to nearest even
  bf16 = 3,  ///< bfloat16 (the top 16 bits of a binary32), round to nearest even
};

/// Bytes per value in format `fmt`.
constexpr std::size_t value_bytes(ValueFormat fmt) noexcept {
  switch (fmt) {
    case ValueFormat::f32: return 4;
    case ValueFormat::f64: return 8;
    case ValueFormat::f16:
    case ValueFormat::bf16: return 2;
  }
  return 0;
}

/// The natural format of scalar type S (f32 for float, f64 for double).
template <typename S>
constexpr ValueFormat native_format() noexcept {
  return std::is_same_v<S, double> ? ValueFormat::f64 : ValueFormat::f32;
}

/// Name of a value format ("f32", "f64", "f16", "bf16").
constexpr std::string_view to_string(ValueFormat fmt) noexcept {
  switch (fmt) {
    case ValueFormat::f32: return "f32";
    case ValueFormat::f64: return "f64";
    case ValueFormat::f16: return "f16";
    case ValueFormat::bf16: return "bf16";
  }
  return "?";
}

namespace detail {

/// Index-block mode flag: delta-coded LEB128 varints.
inline constexpr std::uint8_t sparse_mode_varint = 0;
/// Index-block mode flag: a bitmap of `dim` bits.
inline constexpr std::uint8_t sparse_mode_bitmap = 1;

/// Bytes of the LEB128 varint of v (1-10).
constexpr std::size_t varint_size(std::uint64_t v) noexcept {
  return v == 0 ? 1 : (static_cast<std::size_t>(std::bit_width(v)) + 6) / 7;
}

/// Bytes of a bitmap of `dim` bits.
constexpr std::uint64_t bitmap_bytes(std::uint64_t dim) noexcept { return dim / 8 + (dim % 8 != 0); }

/// Size of the varint coding of a valid index set (without the mode byte).
inline std::uint64_t varint_block_bytes(std::span<const Index> indices) noexcept {
  std::uint64_t total = 0;
  std::uint64_t prev = 0;
  bool first = true;
  for (const Index i : indices) {
    const auto u = static_cast<std::uint64_t>(i);
    total += varint_size(first ? u : u - prev - 1);
    prev = u;
    first = false;
  }
  return total;
}

/// Throws InvalidArgument unless `indices` is strictly increasing with every index in [0, dim).
inline void check_sparse_indices(std::uint64_t dim, std::span<const Index> indices, std::string_view who) {
  Index prev = -1;
  for (std::size_t j = 0; j < indices.size(); ++j) {
    const Index i = indices[j];
    if (i <= prev)
      fail(who, "indices must be strictly increasing (position " + std::to_string(j) + " follows " +
                    std::to_string(prev) + ")", i);
    if (static_cast<std::uint64_t>(i) >= dim)
      fail(who, "indices must be < dim = " + std::to_string(dim), i);
    prev = i;
  }
}

/// Writes an index block (u8 mode, then varints or a bitmap, whichever is smaller; ties: varints).
/**
 * @param dim      dimension of the vector the indices refer to
 * @param indices  strictly increasing indices in [0, dim) (checked; InvalidArgument otherwise)
 * @return the mode written (sparse_mode_varint or sparse_mode_bitmap)
 */
inline std::uint8_t write_sparse_indices(ByteWriter& w, std::uint64_t dim, std::span<const Index> indices) {
  constexpr std::string_view who = "fedpp::detail::write_sparse_indices";
  check_sparse_indices(dim, indices, who);
  const std::uint64_t vbytes = varint_block_bytes(indices);
  const std::uint64_t bbytes = bitmap_bytes(dim);
  if (vbytes <= bbytes) {
    w.put(sparse_mode_varint);
    std::uint64_t prev = 0;
    bool first = true;
    for (const Index i : indices) {
      const auto u = static_cast<std::uint64_t>(i);
      w.put_varint(first ? u : u - prev - 1);
      prev = u;
      first = false;
    }
    return sparse_mode_varint;
  }
  w.put(sparse_mode_bitmap);
  std::vector<std::uint8_t> bitmap(static_cast<std::size_t>(bbytes), 0);
  for (const Index i : indices) {
    const auto u = static_cast<std::uint64_t>(i);
    bitmap[static_cast<std::size_t>(u >> 3)] |= static_cast<std::uint8_t>(1u << (u & 7));
  }
  w.put_bytes(bitmap);
  return sparse_mode_bitmap;
}

/// Reads an index block written by write_sparse_indices and validates it completely.
/**
 * On success `out` holds `count` strictly increasing indices in [0, dim). Throws DecodeError (message
 * prefixed by `who`) on truncation, an unknown mode, an index >= dim, a varint that overflows, a bitmap
 * whose popcount differs from `count` or that has bits set past `dim`, or count > dim. Never reads
 * past the reader's end; allocates at most what the input bytes can describe.
 */
inline void read_sparse_indices(ByteReader& r, std::uint64_t dim, std::uint64_t count, std::vector<Index>& out,
                                std::string_view who) {
  out.clear();
  if (count > dim) fail<DecodeError>(who, "count must be <= dim = " + std::to_string(dim), count);
  const auto mode = r.get<std::uint8_t>();
  if (mode == sparse_mode_varint) {
    // Each varint takes at least one byte: reject impossible counts before allocating.
    if (count > r.remaining())
      fail<DecodeError>(who, "truncated index block: " + std::to_string(r.remaining()) +
                                 " bytes cannot hold the index count", count);
    out.resize(static_cast<std::size_t>(count));
    std::uint64_t next_min = 0;  // smallest admissible next index
    for (std::uint64_t j = 0; j < count; ++j) {
      const std::uint64_t gap = r.get_varint();
      if (next_min >= dim || gap >= dim - next_min)
        fail<DecodeError>(who, "index out of range (must be < dim = " + std::to_string(dim) + ") at position " +
                                   std::to_string(j) + ": gap", gap);
      const std::uint64_t idx = next_min + gap;
      out[static_cast<std::size_t>(j)] = static_cast<Index>(idx);
      next_min = idx + 1;
    }
    return;
  }
  if (mode != sparse_mode_bitmap) fail<DecodeError>(who, "unknown index mode (0 varints, 1 bitmap)", unsigned{mode});
  const std::uint64_t nbytes = bitmap_bytes(dim);
  if (nbytes > r.remaining())
    fail<DecodeError>(who, "truncated bitmap: need " + std::to_string(nbytes) + " bytes, remaining", r.remaining());
  const std::span<const std::uint8_t> bm = r.get_bytes(static_cast<std::size_t>(nbytes));
  if (dim % 8 != 0 && (bm.back() >> (dim % 8)) != 0)
    fail<DecodeError>(who, "bitmap has bits set past dim", dim);
  std::uint64_t pop = 0;
  const std::size_t nwords = bm.size() / 8;
  for (std::size_t q = 0; q < nwords; ++q) {
    std::uint64_t word;
    std::memcpy(&word, bm.data() + 8 * q, 8);
    pop += static_cast<std::uint64_t>(std::popcount(word));
  }
  for (std::size_t b = 8 * nwords; b < bm.size(); ++b) pop += static_cast<std::uint64_t>(std::popcount(bm[b]));
  if (pop != count) fail<DecodeError>(who, "bitmap popcount must equal count = " + std::to_string(count), pop);
  out.resize(static_cast<std::size_t>(count));
  std::size_t j = 0;
  for (std::size_t q = 0; q < nwords; ++q) {
    std::uint64_t word;
    std::memcpy(&word, bm.data() + 8 * q, 8);
    while (word != 0) {
      out[j++] = static_cast<Index>(64 * q + static_cast<std::size_t>(std::countr_zero(word)));
      word &= word - 1;
    }
  }
  for (std::size_t b = 8 * nwords; b < bm.size(); ++b) {
    unsigned byte = bm[b];
    while (byte != 0) {
      out[j++] = static_cast<Index>(8 * b + static_cast<std::size_t>(std::countr_zero(byte)));
      byte &= byte - 1;
    }
  }
}

/// Throws DecodeError unless `raw` names a known ValueFormat.
inline ValueFormat checked_value_format(std::uint8_t raw, std::string_view who) {
  if (raw > 3) fail<DecodeError>(who, "unknown value format (0 f32, 1 f64, 2 f16, 3 bf16)", unsigned{raw});
  return static_cast<ValueFormat>(raw);
}

/// Appends `values` converted to `fmt` (little-endian).
/**
 * Throws InvalidArgument (prefixed by `who`) when a value is not finite or becomes infinite in `fmt`
 * (e.g. |v| >= 65520 in f16), so that such an update never reaches the wire. Doubles are converted to
 * f16 / bf16 through float (two roundings).
 */
template <typename S>
void put_values(ByteWriter& w, std::span<const S> values, ValueFormat fmt, std::string_view who) {
  static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "values must be float or double");
  for (std::size_t j = 0; j < values.size(); ++j)
    if (!std::isfinite(values[j])) fail(who, "values must be finite, got a non-finite value at position", j);
  auto overflow = [&](std::size_t j) {
    fail(who, "value overflows " + std::string(to_string(fmt)) + " at position " + std::to_string(j) + ":",
         static_cast<double>(values[j]));
  };
  switch (fmt) {
    case ValueFormat::f32:
      if constexpr (std::is_same_v<S, float>) {
        w.put_array(values);
      } else {
        for (std::size_t j = 0; j < values.size(); ++j) {
          const auto v = static_cast<float>(values[j]);
          if (!std::isfinite(v)) overflow(j);
          w.put(v);
        }
      }
      return;
    case ValueFormat::f64:
      if constexpr (std::is_same_v<S, double>) {
        w.put_array(values);
      } else {
        for (const S v : values) w.put(static_cast<double>(v));
      }
      return;
    case ValueFormat::f16:
    case ValueFormat::bf16:
      for (std::size_t j = 0; j < values.size(); ++j) {
        const auto f = static_cast<float>(values[j]);
        const std::uint16_t h = fmt == ValueFormat::f16 ? to_f16(f) : to_bf16(f);
        if ((h & 0x7fffu) == (fmt == ValueFormat::f16 ? 0x7c00u : 0x7f80u)) overflow(j);
        w.put(h);
      }
      return;
  }
  fail(who, "unknown value format", static_cast<unsigned>(fmt));
}

/// Reads `n` values in format `fmt` and hands value j to `sink(j, value)` (as S).
template <typename S, typename Sink>
void get_values(ByteReader& r, std::size_t n, ValueFormat fmt, Sink&& sink) {
  const std::size_t width = value_bytes(fmt);
  // Bounds check (ByteReader throws on truncation) before touching anything.
  const std::span<const std::uint8_t> raw = r.get_bytes(n * width);
  const std::uint8_t* p = raw.data();
  switch (fmt) {
    case ValueFormat::f32:
      for (std::size_t j = 0; j < n; ++j) {
        float v;
        std::memcpy(&v, p + 4 * j, 4);
        sink(j, static_cast<S>(v));
      }
      return;
    case ValueFormat::f64:
      for (std::size_t j = 0; j < n; ++j) {
        double v;
        std::memcpy(&v, p + 8 * j, 8);
        sink(j, static_cast<S>(v));
      }
      return;
    case ValueFormat::f16:
    case ValueFormat::bf16:
      for (std::size_t j = 0; j < n; ++j) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * j, 2);
        sink(j, static_cast<S>(fmt == ValueFormat::f16 ? from_f16(h) : from_bf16(h)));
      }
      return;
  }
}

/// Sets `out` to zero, in parallel for large vectors: one contiguous part per thread, so that the
/// C library's memset can use streaming stores on the large parts.
template <typename S>
void parallel_zero(std::span<S> out) {
  const auto n = static_cast<std::int64_t>(out.size());
  constexpr std::int64_t min_part = std::int64_t{1} << 18;
  const std::int64_t parts = std::max<std::int64_t>(1, std::min<std::int64_t>(max_threads(), n / min_part));
  if (parts == 1) {
    std::fill(out.begin(), out.end(), S(0));
    return;
  }
  S* data = out.data();
  FEDPP_OMP_PARALLEL_FOR
  for (std::int64_t c = 0; c < parts; ++c) {
    const std::int64_t b = n * c / parts;
    const std::int64_t e = n * (c + 1) / parts;
    std::memset(static_cast<void*>(data + b), 0, static_cast<std::size_t>(e - b) * sizeof(S));
  }
}

}  // namespace detail

/// Encodes a sparse vector: PayloadHeader{sparse, 1, dim, k}, u8 value format, index block, values.
/**
 * @tparam S       float or double
 * @param dim      dimension of the full vector
 * @param indices  the kept coordinates, strictly increasing, each < dim
 * @param values   their values (same length as indices)
 * @param fmt      precision of the values on the wire
 * @throws InvalidArgument on mismatched lengths, bad indices, non-finite values or a value that
 *         overflows `fmt`.
 */
template <typename S>
Payload encode_sparse(std::uint64_t dim, std::span<const Index> indices, std::span<const S> values,
                      ValueFormat fmt = ValueFormat::f32) {
  constexpr std::string_view who = "fedpp::encode_sparse";
  if (indices.size() != values.size())
    fail<DimensionError>(who, "values must have one entry per index (" + std::to_string(indices.size()) + ")",
                         values.size());
  if (static_cast<std::uint8_t>(fmt) > 3) fail(who, "unknown value format", static_cast<unsigned>(fmt));
  Payload p;
  auto& buf = p.buffer();
  const std::uint64_t k = indices.size();
  buf.reserve(static_cast<std::size_t>(
      24 + std::min<std::uint64_t>(10 * k, detail::bitmap_bytes(dim)) + k * value_bytes(fmt)));
  ByteWriter w(buf);
  PayloadHeader{Codec::sparse, 1, dim, k}.write(w);
  w.put(static_cast<std::uint8_t>(fmt));
  detail::write_sparse_indices(w, dim, indices);
  detail::put_values(w, values, fmt, who);
  return p;
}

/// Decodes a sparse payload into `out` (zero-filled; its size is the expected dimension).
/**
 * Validates codec, version, dim == out.size(), count <= dim, value format, index mode, the index
 * block (see read_sparse_indices) and the exact length; throws DecodeError with `who` as the prefix.
 * When `expect_fmt` is given, the payload's value format must be that one. Every check happens
 * before `out` is written, so `out` is left untouched when it throws.
 */
template <typename S>
void decode_sparse(const Payload& p, std::span<S> out, std::string_view who,
                   std::optional<ValueFormat> expect_fmt = std::nullopt) {
  ByteReader r(p.data(), who);
  const PayloadHeader h = PayloadHeader::read(r);
  if (h.codec != Codec::sparse)
    fail<DecodeError>(who, "unexpected codec (expected sparse = 5)", static_cast<unsigned>(h.codec));
  if (h.version != 1) fail<DecodeError>(who, "unsupported version", static_cast<unsigned>(h.version));
  if (h.dim != out.size()) fail<DecodeError>(who, "dimension must be " + std::to_string(out.size()), h.dim);
  if (h.count > h.dim) fail<DecodeError>(who, "count must be <= dim = " + std::to_string(h.dim), h.count);
  const ValueFormat fmt = detail::checked_value_format(r.get<std::uint8_t>(), who);
  if (expect_fmt && fmt != *expect_fmt)
    fail<DecodeError>(who, "value format must be " + std::string(to_string(*expect_fmt)), to_string(fmt));
  std::vector<Index> idx;
  detail::read_sparse_indices(r, h.dim, h.count, idx, who);
  const std::size_t k = idx.size();
  if (r.remaining() != k * value_bytes(fmt))
    fail<DecodeError>(who, "value block must be " + std::to_string(k * value_bytes(fmt)) + " bytes", r.remaining());
  detail::parallel_zero(out);
  S* o = out.data();
  const Index* ix = idx.data();
  detail::get_values<S>(r, k, fmt, [&](std::size_t j, S v) { o[ix[j]] = v; });
  r.expect_end();
}

}  // namespace fedpp
