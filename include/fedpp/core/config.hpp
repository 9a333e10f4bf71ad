#pragma once
/// @file config.hpp
/// Compile-time switches: OpenMP pragmas, the throw macro, restrict and host/device qualifiers.
///
/// User switches (define before including any fedpp header):
/// - `FEDPP_NO_OPENMP`: ignore OpenMP even when the compiler enables it.
/// - `FEDPP_THROW(x)`: how fedpp raises an error object (default `throw x`).

#if defined(_OPENMP) && !defined(FEDPP_NO_OPENMP)
#define FEDPP_HAS_OPENMP 1
#include <omp.h>
#else
#define FEDPP_HAS_OPENMP 0
#endif

#define FEDPP_PRAGMA(x) _Pragma(#x)

#if FEDPP_HAS_OPENMP
/// `#pragma omp parallel for` with a static schedule (deterministic partition), or nothing.
#define FEDPP_OMP_PARALLEL_FOR FEDPP_PRAGMA(omp parallel for schedule(static))
/// `#pragma omp parallel for` with a thread count, or nothing.
#define FEDPP_OMP_PARALLEL_FOR_THREADS(n) FEDPP_PRAGMA(omp parallel for schedule(static) num_threads(n))
/// `#pragma omp simd`, or nothing.
#define FEDPP_OMP_SIMD FEDPP_PRAGMA(omp simd)
#else
#define FEDPP_OMP_PARALLEL_FOR
#define FEDPP_OMP_PARALLEL_FOR_THREADS(n)
#define FEDPP_OMP_SIMD
#endif

#ifndef FEDPP_THROW
/// Raises an error object; override to customise (e.g. log before throwing).
#define FEDPP_THROW(x) throw x
#endif

#if defined(__CUDACC__)
#define FEDPP_HOST_DEVICE __host__ __device__
#else
/// `__host__ __device__` under nvcc, empty otherwise.
#define FEDPP_HOST_DEVICE
#endif

#if defined(__GNUC__) || defined(__clang__)
#define FEDPP_RESTRICT __restrict__
#else
#define FEDPP_RESTRICT
#endif

namespace fedpp {

/// Number of threads an OpenMP parallel region would use (1 without OpenMP).
inline int max_threads() noexcept {
#if FEDPP_HAS_OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

/// Sets the default OpenMP thread count (no-op without OpenMP).
inline void set_max_threads(int n) noexcept {
#if FEDPP_HAS_OPENMP
  if (n > 0) omp_set_num_threads(n);
#else
  (void)n;
#endif
}

}  // namespace fedpp
