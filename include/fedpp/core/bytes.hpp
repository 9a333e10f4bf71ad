#pragma once
/// @file bytes.hpp
/// Little-endian byte writer and bounds-checked reader for payloads and frames.

#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "fedpp/core/error.hpp"

namespace fedpp {

static_assert(std::endian::native == std::endian::little, "fedpp's wire format assumes a little-endian host");

/// Appends fixed-width little-endian values and LEB128 varints to a byte vector.
class ByteWriter {
 public:
  /// Writes into `out` (appending).
  explicit ByteWriter(std::vector<std::uint8_t>& out) noexcept : out_(&out) {}

  /// Appends a trivially copyable value (integers, float, double) in little-endian order.
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  void put(T v) {
    const auto n = out_->size();
    out_->resize(n + sizeof(T));
    std::memcpy(out_->data() + n, &v, sizeof(T));
  }

  /// Appends an unsigned LEB128 varint (1-10 bytes).
  void put_varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<std::uint8_t>(v | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<std::uint8_t>(v));
  }

  /// Appends raw bytes.
  void put_bytes(std::span<const std::uint8_t> b) { out_->insert(out_->end(), b.begin(), b.end()); }

  /// Appends the raw bytes of an array of trivially copyable values.
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  void put_array(std::span<const T> a) {
    const auto n = out_->size();
    out_->resize(n + a.size_bytes());
    if (!a.empty()) std::memcpy(out_->data() + n, a.data(), a.size_bytes());
  }

  /// Bytes written so far (size of the target vector).
  [[nodiscard]] std::size_t size() const noexcept { return out_->size(); }

 private:
  std::vector<std::uint8_t>* out_;
};

/// Reads what ByteWriter wrote; every read is bounds-checked and throws DecodeError past the end.
class ByteReader {
 public:
  /// Reads from `in`; `who` names the decoder in error messages.
  explicit ByteReader(std::span<const std::uint8_t> in, std::string_view who = "fedpp::ByteReader") noexcept
      : in_(in), who_(who) {}

  /// Reads a trivially copyable value.
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  /// Reads an unsigned LEB128 varint; rejects encodings longer than 10 bytes or overflowing 64 bits.
  std::uint64_t get_varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      need(1);
      const std::uint8_t b = in_[pos_++];
      if (shift == 63 && (b & 0x7e)) fail<DecodeError>(who_, "varint overflows 64 bits at byte", pos_ - 1);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    fail<DecodeError>(who_, "varint longer than 10 bytes at byte", pos_);
  }

  /// Copies `out.size()` values of a trivially copyable type.
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  void get_array(std::span<T> out) {
    need(out.size_bytes());
    if (!out.empty()) std::memcpy(out.data(), in_.data() + pos_, out.size_bytes());
    pos_ += out.size_bytes();
  }

  /// A view of the next `n` bytes, consumed.
  std::span<const std::uint8_t> get_bytes(std::size_t n) {
    need(n);
    auto s = in_.subspan(pos_, n);
    pos_ += n;
    return s;
  }

  /// Bytes not yet read.
  [[nodiscard]] std::size_t remaining() const noexcept { return in_.size() - pos_; }
  /// Current read position.
  [[nodiscard]] std::size_t position() const noexcept { return pos_; }

  /// Throws DecodeError unless every byte has been consumed.
  void expect_end() const {
    if (pos_ != in_.size()) fail<DecodeError>(who_, "trailing bytes after the payload", in_.size() - pos_);
  }

 private:
  void need(std::size_t n) const {
    if (n > in_.size() - pos_)
      fail<DecodeError>(who_, "truncated input: need " + std::to_string(n) + " bytes at offset " +
                                  std::to_string(pos_) + ", remaining", in_.size() - pos_);
  }

  std::span<const std::uint8_t> in_;
  std::size_t pos_ = 0;
  std::string_view who_;
};

}  // namespace fedpp
