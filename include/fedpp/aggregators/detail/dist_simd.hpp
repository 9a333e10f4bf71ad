#pragma once
/// @file dist_simd.hpp
/// Private helpers shared by the distance kernels (pairwise.hpp, dist_sweep.hpp, dist_mix.hpp):
/// lane vector types, loads with conversion to double, a register barrier that pins the
/// rounding of a product, and run-time CPU checks for the AVX2 / AVX-512F kernel versions.
///
/// The kernels fix their arithmetic per lane (which values are added in which order), so a
/// version compiled for a wider instruction set gives the same bits as the base version. Where
/// a product's rounding matters (it does unless both factors are floats widened to double),
/// `keep_in_register` sits between the multiply and the add (GCC), or the kernel body starts
/// with FEDPP_DIST_NO_CONTRACT (clang), so no compiler contracts them into a fused multiply-add
/// in one version and not in another. Conditions: no -ffast-math / -fassociative-math, and with
/// clang no -ffp-contract=fast (clang 14 lets that flag override the pragma; the thread count
/// then still changes no bit, but the compiled versions may differ in the last bit).

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "fedpp/core/config.hpp"
#include "fedpp/core/types.hpp"

#if !defined(FEDPP_NO_ISA_DISPATCH) && (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && \
    !defined(__AVX2__) && !defined(__FMA__)
/// 1 when the distance kernels also have AVX2 / AVX-512F versions chosen at run time.
#define FEDPP_DIST_DISPATCH 1
#else
#define FEDPP_DIST_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
/// 1 when GCC/Clang vector extensions carry the lane arithmetic (else plain doubles, same lanes).
#define FEDPP_DIST_VECTOR_EXT 1
/// Forces inlining so kernel bodies take the instruction set of the function they are inlined into.
#define FEDPP_DIST_INLINE __attribute__((always_inline)) inline
#else
#define FEDPP_DIST_VECTOR_EXT 0
#define FEDPP_DIST_INLINE inline
#endif

namespace fedpp::detail {

#if FEDPP_DIST_VECTOR_EXT
/// Two doubles (one SSE2 register).
typedef double dist_v2d __attribute__((vector_size(16)));
/// Four doubles (one AVX register).
typedef double dist_v4d __attribute__((vector_size(32)));
/// Eight doubles (one AVX-512 register).
typedef double dist_v8d __attribute__((vector_size(64)));
/// Two floats.
typedef float dist_v2f __attribute__((vector_size(8)));
/// Four floats.
typedef float dist_v4f __attribute__((vector_size(16)));
/// Eight floats.
typedef float dist_v8f __attribute__((vector_size(32)));
#endif

/// Number of doubles in a lane vector V (V = double: 1).
template <typename V>
inline constexpr int dist_width = static_cast<int>(sizeof(V) / sizeof(double));

/// Loads a V from possibly unaligned doubles.
template <typename V>
FEDPP_DIST_INLINE void dist_load(V& v, const double* p) noexcept {
  std::memcpy(&v, p, sizeof(V));
}

/// Loads dist_width<V> values of type S and widens them to double (exact for float).
template <typename V, typename S>
FEDPP_DIST_INLINE void dist_load_widen(V& v, const S* p) noexcept {
  if constexpr (std::is_same_v<S, double>) {
    std::memcpy(&v, p, sizeof(V));
  } else {
#if FEDPP_DIST_VECTOR_EXT
    constexpr int W = dist_width<V>;
    if constexpr (W == 1) {
      v = static_cast<double>(*p);
    } else {
      using F = std::conditional_t<W == 2, dist_v2f, std::conditional_t<W == 4, dist_v4f, dist_v8f>>;
      F f;
      std::memcpy(&f, p, sizeof(F));
      v = __builtin_convertvector(f, V);
    }
#else
    v = static_cast<double>(*p);
#endif
  }
}

#if defined(__clang__)
/// Put first in a kernel body: no floating-point contraction in it (clang; GCC relies on
/// keep_in_register, since it has no such pragma).
#define FEDPP_DIST_NO_CONTRACT _Pragma("clang fp contract(off)")
#else
#define FEDPP_DIST_NO_CONTRACT
#endif

/// Keeps `v` in a register: the compiler can neither fold its load into each later use nor
/// contract the multiply that produced it with a following add.
/**
 * GCC: an empty asm with a register operand. Clang checks the operand's register class in the
 * template's own (base) target, where 256/512-bit vectors have none, so there the kernels use
 * FEDPP_DIST_NO_CONTRACT instead and this is a no-op.
 */
template <typename V>
FEDPP_DIST_INLINE void keep_in_register(V& v) noexcept {
#if defined(__clang__)
  (void)v;
#elif FEDPP_DIST_VECTOR_EXT && defined(__x86_64__)
  asm("" : "+v"(v));
#elif FEDPP_DIST_VECTOR_EXT && defined(__aarch64__)
  asm("" : "+w"(v));
#else
  // Other compilers: a volatile round trip (slow, but keeps the rounding of v).
  volatile V t = v;
  v = t;
#endif
}

/// Reduces 8 lanes held in H = 8 / width registers in a fixed order:
/// ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).
template <typename V, int H>
FEDPP_DIST_INLINE double dist_reduce8(const V (&acc)[H]) noexcept {
  static_assert(dist_width<V> * H == 8);
  double l[8];
  for (int h = 0; h < H; ++h) std::memcpy(l + h * dist_width<V>, &acc[h], sizeof(V));
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

#if FEDPP_DIST_DISPATCH
/// True when the CPU and OS support AVX2 and FMA; checked once.
inline bool dist_cpu_has_avx2() noexcept {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}
/// True when the CPU and OS support AVX-512F; checked once.
inline bool dist_cpu_has_avx512() noexcept {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}
#endif

/// Which compiled version of a distance kernel runs (all give the same bits; tests force each).
enum class DistIsa {
  best,    ///< the fastest this CPU runs
  base,    ///< the build's instruction set
  avx2,    ///< AVX2 version (where the CPU has it)
  avx512   ///< AVX-512F version (where the CPU has it)
};

/// True when kernels compiled for `isa` can run on this CPU.
inline bool dist_isa_available(DistIsa isa) noexcept {
  switch (isa) {
    case DistIsa::best:
    case DistIsa::base:
      return true;
#if FEDPP_DIST_DISPATCH
    case DistIsa::avx2:
      return dist_cpu_has_avx2();
    case DistIsa::avx512:
      return dist_cpu_has_avx512();
#endif
    default:
      return false;
  }
}

}  // namespace fedpp::detail
