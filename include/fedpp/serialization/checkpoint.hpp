#pragma once
/// @file checkpoint.hpp
/// Checkpoints of per-client state (compressor and optimizer states, whole Clients) in cereal's
/// portable binary archive, behind a magic number and a format version.
/**
 * Stream layout: cereal's portable-binary endianness byte, then u32 magic 0x4b435046 ("FPCK"),
 * u32 format version (checkpoint_format_version), then the object. Any type with a cereal
 * `serialize` or `save`/`load` member works (Client, ErrorFeedback/Ef21 states, ...); empty
 * types (e.g. Identity::State) are written as nothing. Eigen members go through
 * fedpp/serialization/eigen.hpp (included here); std::string, std::vector and std::map are
 * supported too, e.g. a Server's EF21 decoder states: `save_state(server.decoder_states(), os)`.
 */

#include <cereal/archives/portable_binary.hpp>
#include <cereal/cereal.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/vector.hpp>

#include <cstdint>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "fedpp/core/error.hpp"
#include "fedpp/serialization/eigen.hpp"

namespace fedpp {

/// Version of the checkpoint format written by save_state (checked by load_state).
inline constexpr std::uint32_t checkpoint_format_version = 1;
/// Magic number at the start of every checkpoint ("FPCK" little-endian).
inline constexpr std::uint32_t checkpoint_magic = 0x4b435046u;

/// Writes `value` to `os` as a versioned portable-binary checkpoint.
/**
 * @throws Error when the stream fails.
 */
template <typename T>
void save_state(const T& value, std::ostream& os) {
  {
    cereal::PortableBinaryOutputArchive ar(os);
    ar(checkpoint_magic, checkpoint_format_version);
    if constexpr (!std::is_empty_v<T>) ar(value);
  }
  if (!os) fail<Error>("fedpp::save_state", "the output stream failed");
}

/// Reads a checkpoint written by save_state into `value`.
/**
 * Loads into a copy and moves it into `value` on success when T is copyable, so `value` is then
 * unchanged on any error.
 * @throws DecodeError on a wrong magic number or version, or a truncated or malformed stream;
 *         whatever the object's own load throws (e.g. Client: a checkpoint of another client id).
 */
template <typename T>
void load_state(T& value, std::istream& is) {
  constexpr std::string_view who = "fedpp::load_state";
  try {
    cereal::PortableBinaryInputArchive ar(is);
    std::uint32_t magic = 0, version = 0;
    ar(magic, version);
    if (magic != checkpoint_magic) fail<DecodeError>(who, "not a fedpp checkpoint (bad magic number)", magic);
    if (version != checkpoint_format_version)
      fail<DecodeError>(who, "unsupported checkpoint version (expected " +
                                 std::to_string(checkpoint_format_version) + ")", version);
    if constexpr (std::is_empty_v<T>) {
      return;
    } else if constexpr (std::is_copy_constructible_v<T> && std::is_move_assignable_v<T>) {
      T tmp(value);
      ar(tmp);
      value = std::move(tmp);
    } else {
      ar(value);
    }
  } catch (const cereal::Exception& e) {
    fail<DecodeError>(who, "malformed checkpoint", e.what());
  }
}

}  // namespace fedpp
