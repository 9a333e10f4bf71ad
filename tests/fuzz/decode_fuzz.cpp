// libFuzzer target for fedpp's payload decoders: arbitrary bytes must either decode or make the
// decoder throw fedpp::DecodeError -- never crash, read out of bounds (ASan), hit undefined
// behaviour (UBSan), or throw anything else (an escaping exception aborts and is reported).
//
// Input layout: byte 0 selects the decoder, bytes 1-2 (little-endian) the expected dimension
// (mod 4097), the rest is the payload. Built with clang (-fsanitize=fuzzer,address,undefined) by
// tests/fuzz/CMakeLists.txt; see docs/compressors/sparse.md for how to run it.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fedpp/compressors/identity.hpp"
#include "fedpp/compressors/random_k.hpp"
#include "fedpp/compressors/sparse.hpp"
#include "fedpp/compressors/top_k.hpp"
#if __has_include("fedpp/compressors/qsgd.hpp")
#include "fedpp/compressors/qsgd.hpp"
#define FEDPP_FUZZ_QSGD 1
#endif
#if __has_include("fedpp/compressors/sign.hpp")
#include "fedpp/compressors/sign.hpp"
#define FEDPP_FUZZ_SIGN 1
#endif
#if __has_include("fedpp/compressors/sparse_quantized.hpp")
#include "fedpp/compressors/sparse_quantized.hpp"
#define FEDPP_FUZZ_SPARSE_QSGD 1
#endif
#if __has_include("fedpp/compressors/dgc.hpp")
#include "fedpp/compressors/dgc.hpp"
#define FEDPP_FUZZ_DGC 1
#endif

namespace {

template <typename S, typename C>
void try_decode(const C& c, const fedpp::Payload& p, std::size_t dim) {
  std::vector<S> out(dim);
  try {
    c.decode(p, std::span<S>(out));
  } catch (const fedpp::DecodeError&) {
  }
}

template <typename S>
void try_sparse(const fedpp::Payload& p, std::size_t dim) {
  std::vector<S> out(dim);
  try {
    fedpp::decode_sparse(p, std::span<S>(out), "fuzz");
  } catch (const fedpp::DecodeError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace fedpp;
  if (size < 3) return 0;
  const unsigned which = data[0];
  const std::size_t dim = (static_cast<std::size_t>(data[1]) | (static_cast<std::size_t>(data[2]) << 8)) % 4097;
  const Payload p(std::vector<std::uint8_t>(data + 3, data + size));
  switch (which % 20) {
    case 0: try_decode<float>(Identity(), p, dim); break;
    case 1: try_decode<double>(Identity(), p, dim); break;
    case 2: try_decode<float>(Identity(ValueFormat::f16), p, dim); break;
    case 3: try_decode<double>(Identity(ValueFormat::bf16), p, dim); break;
    case 4: try_sparse<float>(p, dim); break;
    case 5: try_sparse<double>(p, dim); break;
    case 6: try_decode<float>(TopK::density(0.1), p, dim); break;
    case 7: try_decode<double>(TopK::count(3).with_format(ValueFormat::f16), p, dim); break;
    case 8: try_decode<float>(RandomK::count(5), p, dim); break;
    case 9: try_decode<float>(RandomK::density(0.5).with_format(ValueFormat::bf16), p, dim); break;
    case 10: {
      // The index block on its own, with a count taken from the input.
      ByteReader r(p.data(), "fuzz");
      std::vector<Index> idx;
      try {
        const std::uint64_t count = r.get_varint();
        detail::read_sparse_indices(r, dim, count, idx, "fuzz");
      } catch (const DecodeError&) {
      }
      break;
    }
#ifdef FEDPP_FUZZ_QSGD
    case 11: try_decode<float>(Qsgd(), p, dim); break;
    case 12: try_decode<double>(Qsgd(4, 0, QsgdCoding::elias_omega), p, dim); break;
    case 13: try_decode<float>(Qsgd(1, 7, QsgdCoding::elias_omega), p, dim); break;
    case 14: try_decode<float>(Qsgd(255, 64, QsgdCoding::packed), p, dim); break;
#endif
#ifdef FEDPP_FUZZ_SIGN
    case 15: try_decode<float>(ScaledSign(), p, dim); break;
    case 16: try_decode<double>(ScaledSign(), p, dim); break;
#endif
#ifdef FEDPP_FUZZ_SPARSE_QSGD
    case 17: try_decode<float>(SparseQsgd(), p, dim); break;
#endif
#ifdef FEDPP_FUZZ_DGC
    case 18: try_decode<float>(Dgc(), p, dim); break;
#endif
    default: {
      // The bit reader on its own.
      detail::BitReader br(p.data(), "fuzz");
      try {
        for (int i = 0; i < 64; ++i) {
          (void)br.get_elias_gamma();
          (void)br.get_elias_omega();
          (void)br.get(static_cast<unsigned>(i));
        }
      } catch (const DecodeError&) {
      }
      break;
    }
  }
  return 0;
}
