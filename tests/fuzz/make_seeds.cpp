// Writes a seed corpus for decode_fuzz: one valid payload per decoder (same input layout as
// decode_fuzz.cpp: selector byte, 2-byte dimension, payload), so the fuzzer starts from inputs
// that get past the header checks. Usage: fedpp_fuzz_seeds <output directory>.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
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

namespace {

int written = 0;

void seed(const std::filesystem::path& dir, unsigned which, std::size_t dim, const fedpp::Payload& p) {
  std::vector<char> b{static_cast<char>(which), static_cast<char>(dim & 0xff), static_cast<char>(dim >> 8)};
  b.insert(b.end(), p.data().begin(), p.data().end());
  std::ofstream f(dir / ("seed_" + std::to_string(which) + "_" + std::to_string(written++)), std::ios::binary);
  f.write(b.data(), static_cast<std::streamsize>(b.size()));
}

template <typename S, typename C>
void seed_from(const std::filesystem::path& dir, unsigned which, const C& c, std::size_t dim) {
  std::vector<S> x(dim);
  for (std::size_t i = 0; i < dim; ++i) x[i] = static_cast<S>(std::sin(static_cast<double>(i) * 1.7) * (1 + i % 5));
  auto st = c.template make_state<S>(static_cast<fedpp::Index>(dim));
  fedpp::Rng rng(which);
  seed(dir, which, dim, c.encode(std::span<const S>(x), st, rng));
}

}  // namespace

int main(int argc, char** argv) {
  using namespace fedpp;
  if (argc != 2) {
    std::fprintf(stderr, "usage: fedpp_fuzz_seeds <output directory>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  for (std::size_t dim : {std::size_t{9}, std::size_t{100}}) {
    seed_from<float>(dir, 0, Identity(), dim);
    seed_from<double>(dir, 1, Identity(), dim);
    seed_from<float>(dir, 2, Identity(ValueFormat::f16), dim);
    seed_from<double>(dir, 3, Identity(ValueFormat::bf16), dim);
    seed_from<float>(dir, 4, TopK::count(2), dim);
    seed_from<double>(dir, 5, TopK::density(0.6).with_format(ValueFormat::f64), dim);
    seed_from<float>(dir, 6, TopK::density(0.1), dim);
    seed_from<double>(dir, 7, TopK::count(3).with_format(ValueFormat::f16), dim);
    seed_from<float>(dir, 8, RandomK::count(5), dim);
    seed_from<float>(dir, 9, RandomK::density(0.5).with_format(ValueFormat::bf16), dim);
#ifdef FEDPP_FUZZ_QSGD
    seed_from<float>(dir, 11, Qsgd(), dim);
    seed_from<double>(dir, 12, Qsgd(4, 0, QsgdCoding::elias_omega), dim);
    seed_from<float>(dir, 13, Qsgd(1, 7, QsgdCoding::elias_omega), dim);
    seed_from<float>(dir, 14, Qsgd(255, 64, QsgdCoding::packed), dim);
#endif
#ifdef FEDPP_FUZZ_SIGN
    seed_from<float>(dir, 15, ScaledSign(), dim);
    seed_from<double>(dir, 16, ScaledSign(), dim);
#endif
  }
  std::printf("fedpp_fuzz_seeds: wrote %d seeds to %s\n", written, dir.string().c_str());
  return 0;
}
