#pragma once
/// @file dgc.hpp
/// Deep Gradient Compression (Lin, Han, Mao, Wang, Dally, ICLR 2018, arXiv 1712.01887) as a
/// Compressor of the client update: momentum correction, local clipping, momentum factor masking,
/// warm-up of the density, and the top-k threshold estimated from a strided sample, following the
/// reference code (synxlin/deep-gradient-compression). See docs/compressors/dgc.md.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "fedpp/compressors/sparse.hpp"
#include "fedpp/core/concepts.hpp"
#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/layout.hpp"
#include "fedpp/core/messages.hpp"
#include "fedpp/core/payload.hpp"
#include "fedpp/core/rng.hpp"
#include "fedpp/core/types.hpp"

#if FEDPP_HAS_OPENMP
/// `omp parallel for` (static schedule) only when `cond` holds: small segments stay on one thread.
#define FEDPP_DGC_PARALLEL_FOR_IF(cond) FEDPP_PRAGMA(omp parallel for schedule(static) if(cond))
#else
#define FEDPP_DGC_PARALLEL_FOR_IF(cond)
#endif

namespace fedpp {

/// How DGC's density grows to its target over the first rounds.
enum class DgcWarmup : std::uint8_t {
  paper,              ///< density max(4^-(e+1), density): 0.25, 0.0625, 0.015625, 0.00390625, ... (75%, 93.75%, ...)
  reference_formula,  ///< the reference code's default: max(c^(e+1), density), c = density^(1/(W+1))
  none,               ///< the target density from the first round
  list,               ///< warmup_densities[e] for e < warmup_rounds
};

/// How DGC finds the magnitude threshold of the kept coordinates.
enum class DgcThreshold : std::uint8_t {
  sampled,  ///< the reference's estimate from a strided sample, with adaptation and re-selection
  exact,    ///< exact top-k of |v| (ties to the lower index)
};

/// Hyperparameters of Dgc; the defaults are the reference code's (`configs/dgc/__init__.py`).
struct DgcOptions {
  double density = 0.001;          ///< target fraction of coordinates sent per segment, in (0, 1]
  double momentum = 0.9;           ///< momentum m of the correction, in [0, 1)
  bool nesterov = false;           ///< Nesterov branch: u <- m (u + g), v <- v + u + g
  bool momentum_masking = true;    ///< zero the momentum where values were sent
  double clip_norm = 0.0;          ///< global clipping threshold thr_G (0: no local clipping)
  Index num_workers = 1;           ///< N: the per-segment clip threshold is clip_norm / sqrt(N)
  DgcWarmup warmup = DgcWarmup::paper;  ///< warm-up schedule of the density
  std::uint64_t warmup_rounds = 5;      ///< W: rounds 0..W-1 use the warm-up density
  std::vector<double> warmup_densities; ///< densities of DgcWarmup::list (at least warmup_rounds entries)
  DgcThreshold threshold = DgcThreshold::sampled;  ///< threshold estimate
  double sample_ratio = 0.01;      ///< fraction of |v| sampled for the threshold, in [0.01, 1]
  double upper_bound = 1.3;        ///< re-select when more than upper_bound * k pass the threshold (>= 1)
  double lower_bound = 0.8;        ///< lower the threshold when fewer than lower_bound * k pass, in (0, 1]
  int max_adaptation_iters = 10;   ///< maximum threshold adaptations per segment (>= 0)
  bool resample = true;            ///< too many candidates: exact top-k among them (false: threshold *= upper_bound)
  std::optional<ValueFormat> value_format;  ///< wire format of the values (default: f32 for float, f64 for double)
};

/// Per-client DGC state: momentum u, velocity (accumulation) v, and the number of encodes done.
template <typename S>
struct DgcState {
  Vector<S> momentum;       ///< u: locally kept momentum
  Vector<S> velocity;       ///< v: accumulated velocity not yet sent (the residual)
  std::uint64_t steps = 0;  ///< encodes done so far (participations)

  /// Lists the fields for a serialisation archive (cereal).
  template <class Archive>
  void serialize(Archive& ar) {
    ar(momentum, velocity, steps);
  }
};

/// The selected coordinates of one DGC step: increasing global indices and the values sent.
template <typename S>
struct DgcSparse {
  std::vector<Index> indices;  ///< strictly increasing positions in the update
  std::vector<S> values;       ///< v at those positions before they were cleared
};

/// The sampling plan of one segment at one density (the reference's `initialize`).
struct DgcSamplingPlan {
  Index numel = 0;          ///< elements in the segment
  Index num_selects = 0;    ///< k = ceil(numel * density)
  Index num_samples = 0;    ///< numel // stride (numel when the sample is the whole segment)
  Index top_k_samples = 0;  ///< ceil(num_samples * density)
  Index stride = 1;         ///< sampling stride
};

/// What the threshold selection of one segment did (for tests and diagnostics).
struct DgcSelectInfo {
  double threshold = 0.0;   ///< final threshold (0 when everything was kept)
  Index start = 0;          ///< first sampled position (0 without sampling)
  int adaptations = 0;      ///< threshold recomputations after the first
  bool resampled = false;   ///< exact top-k among too many candidates happened
  Index candidates = 0;     ///< count passing the final threshold, before the cap
};

namespace detail {

inline constexpr Index dgc_block = Index{1} << 14;  // fixed block for parallel passes (thread-count independent)
inline constexpr Index dgc_parallel_min = Index{1} << 16;  // fewer elements: one thread

/// The reference's sampling plan for `numel` elements at `density` (sample_ratio in [0.01, 1]).
inline DgcSamplingPlan dgc_sampling_plan(Index numel, double density, double sample_ratio) {
  DgcSamplingPlan p;
  p.numel = numel;
  if (sample_ratio < 1.0) {
    const auto pct = static_cast<Index>(std::ceil(static_cast<double>(numel) * sample_ratio));
    const auto cpr = static_cast<Index>(std::ceil(2.0 / density));
    if (numel <= cpr) {
      p.stride = 1;
      p.num_samples = numel;
    } else {
      const Index m = std::max(pct, cpr);
      p.stride = static_cast<Index>(std::ceil(static_cast<double>(numel) / static_cast<double>(m) / 32.0)) * 32 + 1;
      p.num_samples = numel / p.stride;
      while (p.num_samples < m) {
        p.stride -= 8;
        p.num_samples = numel / p.stride;
      }
    }
  } else {
    p.stride = 1;
    p.num_samples = numel;
  }
  p.top_k_samples = static_cast<Index>(std::ceil(static_cast<double>(p.num_samples) * density));
  p.num_selects = static_cast<Index>(std::ceil(static_cast<double>(numel) * density));
  return p;
}

/// Appends to `out` every i (in increasing order) with |v_i| >= thr; parallel over fixed blocks.
/**
 * A vectorisable pre-filter skips runs of 64 values whose largest |v| (compared as the integer bits
 * of the magnitude, which order like the values for non-negative floats) is below the threshold;
 * the runs that pass are scanned with the floating-point comparison, so NaN is never selected.
 */
template <typename S>
void dgc_collect(std::span<const S> v, S thr, std::vector<Index>& out) {
  using Bits = std::conditional_t<sizeof(S) == 4, std::int32_t, std::int64_t>;
  constexpr Bits magnitude = std::numeric_limits<Bits>::max();  // clears the sign bit
  constexpr Index run = 64;
  const Index n = static_cast<Index>(v.size());
  const Index nb = (n + dgc_block - 1) / dgc_block;
  std::vector<std::vector<Index>> hits(static_cast<std::size_t>(nb));
  const S* p = v.data();
  const S t = std::abs(thr);
  Bits tb;
  std::memcpy(&tb, &t, sizeof tb);
  FEDPP_DGC_PARALLEL_FOR_IF(n >= dgc_parallel_min)
  for (Index b = 0; b < nb; ++b) {
    auto& h = hits[static_cast<std::size_t>(b)];
    const Index lo = b * dgc_block, hi = std::min(n, lo + dgc_block);
    Index i = lo;
    for (; i + run <= hi; i += run) {
      Bits lanes[16] = {};
      for (Index j = 0; j < run; j += 16)
        for (int k = 0; k < 16; ++k) {
          Bits x;
          std::memcpy(&x, p + i + j + k, sizeof x);
          x &= magnitude;
          lanes[k] = lanes[k] < x ? x : lanes[k];
        }
      Bits mx = 0;
      for (Bits l : lanes) mx = mx < l ? l : mx;
      if (mx >= tb)
        for (Index k = i; k < i + run; ++k)
          if (std::abs(p[k]) >= thr) h.push_back(k);
    }
    for (; i < hi; ++i)
      if (std::abs(p[i]) >= thr) h.push_back(i);
  }
  std::size_t total = out.size();
  for (const auto& h : hits) total += h.size();
  out.reserve(total);
  for (const auto& h : hits) out.insert(out.end(), h.begin(), h.end());
}

/// Keeps the k candidates of largest |v| (ties to the lower index), returned in increasing order.
template <typename S>
void dgc_top_k_among(std::span<const S> v, std::vector<Index>& idx, Index k) {
  if (static_cast<Index>(idx.size()) <= k) return;
  auto better = [&v](Index a, Index b) {
    const S fa = std::abs(v[static_cast<std::size_t>(a)]), fb = std::abs(v[static_cast<std::size_t>(b)]);
    return fa > fb || (fa == fb && a < b);
  };
  std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), better);
  idx.resize(static_cast<std::size_t>(k));
  std::sort(idx.begin(), idx.end());
}

/// Exact top-k of |v| (ties to the lower index), increasing order, into `out` (cleared).
template <typename S>
void dgc_select_exact(std::span<const S> v, Index k, std::vector<Index>& out, DgcSelectInfo* info = nullptr) {
  out.clear();
  const Index n = static_cast<Index>(v.size());
  if (k >= n) {
    out.resize(static_cast<std::size_t>(n));
    for (Index i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = i;
    if (info) *info = DgcSelectInfo{0.0, 0, 0, false, n};
    return;
  }
  const S* p = v.data();
  if (n >= dgc_parallel_min && k <= n / 64) {
    // Pre-filter with a lower threshold from a deterministic strided sample (expected ~2k pass);
    // the exact top-k among the candidates is the exact top-k of v whenever at least k pass.
    const Index stride = std::max<Index>(1, n / std::max<Index>(4096, 16 * k));
    const Index ns = (n + stride - 1) / stride;
    const Index rank = std::min<Index>(ns, (2 * k * ns + n - 1) / n + 1);
    std::vector<S> sample(static_cast<std::size_t>(ns));
    for (Index j = 0; j < ns; ++j) sample[static_cast<std::size_t>(j)] = std::abs(p[j * stride]);
    std::nth_element(sample.begin(), sample.begin() + (rank - 1), sample.end(), std::greater<S>());
    dgc_collect(v, sample[static_cast<std::size_t>(rank - 1)], out);
    if (static_cast<Index>(out.size()) >= k) {
      const auto cand = static_cast<Index>(out.size());
      dgc_top_k_among(v, out, k);
      if (info) {
        S t = std::numeric_limits<S>::infinity();
        for (Index i : out) t = std::min(t, std::abs(p[i]));
        *info = DgcSelectInfo{static_cast<double>(t), 0, 0, false, cand};
      }
      return;
    }
    out.clear();  // too few passed (adversarial sample): the full path below
  }
  const std::unique_ptr<S[]> mag(new S[static_cast<std::size_t>(n)]);  // no zero-fill: written below
  S* m = mag.get();
  FEDPP_DGC_PARALLEL_FOR_IF(n >= dgc_parallel_min)
  for (Index i = 0; i < n; ++i) m[i] = std::abs(p[i]);
  std::nth_element(m, m + (k - 1), m + n, std::greater<S>());
  const S t = m[k - 1];
  std::vector<Index> cand;
  dgc_collect(v, t, cand);
  // Everything above t is kept; ties at t are kept in index order until k are chosen.
  Index above = 0;
  for (Index i : cand) above += std::abs(p[i]) > t;
  Index ties = k - above;
  out.reserve(static_cast<std::size_t>(k));
  for (Index i : cand) {
    if (std::abs(p[i]) > t) {
      out.push_back(i);
    } else if (ties > 0) {
      out.push_back(i);
      --ties;
    }
  }
  if (info) *info = DgcSelectInfo{static_cast<double>(t), 0, 0, false, static_cast<Index>(cand.size())};
}

/// The reference's sampled-threshold selection (`_sparsify`) on one segment, into `out` (cleared).
/**
 * Draws the sampling start from `rng` (one uniform_index(stride) draw, only when the sample is not
 * the whole segment). The threshold is the top_k_samples-th largest sampled |v|; it is then adapted
 * (x upper_bound / x lower_bound, computed in S) at most max_adaptation_iters times, too many
 * candidates are re-selected exactly (ties to the lower index), and the first num_selects
 * candidates in index order are kept.
 */
template <typename S>
void dgc_select_sampled(std::span<const S> v, const DgcSamplingPlan& plan, const DgcOptions& o, Rng& rng,
                        std::vector<Index>& out, DgcSelectInfo* info = nullptr) {
  out.clear();
  const Index n = static_cast<Index>(v.size());
  const Index k = plan.num_selects;
  DgcSelectInfo inf;
  if (k >= n) {
    dgc_select_exact(v, k, out, info);
    return;
  }
  const S* p = v.data();
  std::vector<S> samples;
  if (plan.num_samples == n) {
    samples.resize(static_cast<std::size_t>(n));
    S* s = samples.data();
    FEDPP_DGC_PARALLEL_FOR_IF(n >= detail::dgc_parallel_min)
    for (Index i = 0; i < n; ++i) s[i] = std::abs(p[i]);
  } else {
    inf.start = static_cast<Index>(rng.uniform_index(static_cast<std::uint64_t>(plan.stride)));
    const Index count = (n - inf.start + plan.stride - 1) / plan.stride;
    samples.resize(static_cast<std::size_t>(count));
    S* s = samples.data();
    const Index start = inf.start, stride = plan.stride;
    FEDPP_DGC_PARALLEL_FOR_IF(count >= detail::dgc_parallel_min / 8)
    for (Index j = 0; j < count; ++j) s[j] = std::abs(p[start + j * stride]);
  }
  const Index kk = plan.top_k_samples;
  std::nth_element(samples.begin(), samples.begin() + (kk - 1), samples.end(), std::greater<S>());
  S thr = samples[static_cast<std::size_t>(kk - 1)];
  dgc_collect(v, thr, out);
  if (n > plan.num_samples) {
    const double kd = static_cast<double>(k);
    for (int it = 0; it < o.max_adaptation_iters; ++it) {
      const auto c = static_cast<Index>(out.size());
      if (c > k) {
        if (static_cast<double>(c) > kd * o.upper_bound) {
          if (o.resample) {
            dgc_top_k_among(v, out, k);
            inf.resampled = true;
            break;
          }
          thr = static_cast<S>(thr * static_cast<S>(o.upper_bound));
        } else {
          break;
        }
      } else if (static_cast<double>(c) < o.lower_bound * kd) {
        thr = static_cast<S>(thr * static_cast<S>(o.lower_bound));
      } else {
        break;
      }
      out.clear();
      dgc_collect(v, thr, out);
      ++inf.adaptations;
    }
  }
  inf.candidates = static_cast<Index>(out.size());
  if (static_cast<Index>(out.size()) > k) out.resize(static_cast<std::size_t>(k));
  inf.threshold = static_cast<double>(thr);
  if (info) *info = inf;
}

/// Sum of squares in double over fixed blocks (the same bits for any thread count).
template <typename S>
double dgc_sum_squares(std::span<const S> x) {
  const Index n = static_cast<Index>(x.size());
  const Index nb = (n + dgc_block - 1) / dgc_block;
  std::vector<double> part(static_cast<std::size_t>(nb));
  const S* p = x.data();
  FEDPP_DGC_PARALLEL_FOR_IF(n >= dgc_parallel_min)
  for (Index b = 0; b < nb; ++b) {
    double s = 0.0;
    const Index lo = b * dgc_block, hi = std::min(n, lo + dgc_block);
    for (Index i = lo; i < hi; ++i) s += static_cast<double>(p[i]) * static_cast<double>(p[i]);
    part[static_cast<std::size_t>(b)] = s;
  }
  double total = 0.0;
  for (double s : part) total += s;
  return total;
}

/// True when every value is finite (parallel, vectorisable: x * 0 is NaN exactly for inf/NaN).
template <typename S>
bool dgc_all_finite(std::span<const S> x) {
  const Index n = static_cast<Index>(x.size());
  const Index nb = (n + dgc_block - 1) / dgc_block;
  const S* p = x.data();
  std::vector<unsigned char> bad(static_cast<std::size_t>(nb), 0);
  FEDPP_DGC_PARALLEL_FOR_IF(n >= dgc_parallel_min)
  for (Index b = 0; b < nb; ++b) {
    S lanes[16] = {};
    const Index lo = b * dgc_block, hi = std::min(n, lo + dgc_block);
    Index i = lo;
    for (; i + 16 <= hi; i += 16)
      for (int k = 0; k < 16; ++k) lanes[k] += p[i + k] * S(0);
    for (; i < hi; ++i) lanes[0] += p[i] * S(0);
    S s = 0;
    for (S l : lanes) s += l;
    bad[static_cast<std::size_t>(b)] = !(s == S(0));
  }
  return std::find(bad.begin(), bad.end(), 1) == bad.end();
}

}  // namespace detail

/// Deep Gradient Compression of the client update (Lin et al., ICLR 2018).
/**
 * The update x (delta = local - global) is treated as the gradient g. Per segment of the layout,
 * per encode: g <- clip(g); u <- m u + g (Nesterov: u <- m (u + g)); v <- v + u (Nesterov: v + u + g);
 * the coordinates of largest |v| (density rho(round) of the segment, threshold per `threshold`)
 * are sent; then v and (with momentum_masking) u are zeroed there. The payload is a sparse one
 * (Codec::sparse, see sparse.hpp) over the whole update.
 *
 * Determinism: the only random draw is the sampling start per segment, from the Rng passed in;
 * every parallel pass uses fixed blocks, so results are bit-identical for any thread count.
 * @throws InvalidArgument from the constructor for options out of range (class, parameter, value),
 *         from encode for a non-finite update; DimensionError for sizes that disagree.
 */
class Dgc {
 public:
  /// Per-client state for scalar S.
  template <typename S>
  using State = DgcState<S>;

  /// Validates the options; `layout` gives the segments (empty: one segment over the update).
  explicit Dgc(DgcOptions options = {}, ParameterLayout layout = {})
      : o_(std::move(options)), layout_(std::move(layout)) {
    constexpr std::string_view who = "fedpp::Dgc";
    require(o_.density > 0.0 && o_.density <= 1.0, who, "density must be in (0, 1]", o_.density);
    require(o_.momentum >= 0.0 && o_.momentum < 1.0, who, "momentum must be in [0, 1)", o_.momentum);
    require(std::isfinite(o_.clip_norm) && o_.clip_norm >= 0.0, who, "clip_norm must be finite and >= 0 (0: off)",
            o_.clip_norm);
    require(o_.num_workers >= 1, who, "num_workers must be >= 1", o_.num_workers);
    require(o_.sample_ratio >= 0.01 && o_.sample_ratio <= 1.0, who, "sample_ratio must be in [0.01, 1]",
            o_.sample_ratio);
    require(o_.upper_bound >= 1.0 && std::isfinite(o_.upper_bound), who, "upper_bound must be finite and >= 1",
            o_.upper_bound);
    require(o_.lower_bound > 0.0 && o_.lower_bound <= 1.0, who, "lower_bound must be in (0, 1]", o_.lower_bound);
    require(o_.max_adaptation_iters >= 0, who, "max_adaptation_iters must be >= 0", o_.max_adaptation_iters);
    if (o_.warmup == DgcWarmup::list) {
      require(o_.warmup_densities.size() >= o_.warmup_rounds, who,
              "warmup_densities must have at least warmup_rounds = " + std::to_string(o_.warmup_rounds) +
                  " entries",
              o_.warmup_densities.size());
    }
    for (double w : o_.warmup_densities)
      require(w > 0.0 && w <= 1.0, who, "warmup_densities entries must be in (0, 1]", w);
    for (const Segment& s : layout_.segments()) segments_.emplace_back(s.offset, s.size());
  }

  /// The options.
  [[nodiscard]] const DgcOptions& options() const noexcept { return o_; }
  /// The layout (empty: one segment).
  [[nodiscard]] const ParameterLayout& layout() const noexcept { return layout_; }

  /// Density used at warm-up index `round` (round number, or the participation count).
  [[nodiscard]] double density_at(std::uint64_t round) const noexcept {
    const double rho = o_.density;
    if (round >= o_.warmup_rounds) return rho;
    const auto e = static_cast<double>(round);
    switch (o_.warmup) {
      case DgcWarmup::paper:
        return std::max(std::pow(0.25, e + 1.0), rho);
      case DgcWarmup::reference_formula: {
        const double c = std::pow(rho, 1.0 / (static_cast<double>(o_.warmup_rounds) + 1.0));
        return std::max(std::pow(c, e + 1.0), rho);
      }
      case DgcWarmup::list:
        return o_.warmup_densities[static_cast<std::size_t>(round)];
      case DgcWarmup::none:
        break;
    }
    return rho;
  }

  /// The sampling plan of a segment of `numel` elements at `density`.
  [[nodiscard]] DgcSamplingPlan plan(Index numel, double density) const {
    return detail::dgc_sampling_plan(numel, density, o_.sample_ratio);
  }

  /// Creates the zero state of a client (u = v = 0, steps = 0).
  /** @throws DimensionError when a layout was given and its total differs from `dim`. */
  template <typename S>
  [[nodiscard]] State<S> make_state(Index dim) const {
    require(dim >= 0, "fedpp::Dgc::make_state", "dim must be >= 0", dim);
    if (layout_.size() > 0 && layout_.total() != dim)
      fail<DimensionError>("fedpp::Dgc::make_state", "dim must equal the layout's total " +
                                                         std::to_string(layout_.total()), dim);
    State<S> st;
    st.momentum = Vector<S>::Zero(dim);
    st.velocity = Vector<S>::Zero(dim);
    return st;
  }

  /// One DGC step at warm-up index `round`: updates the state and returns what is sent.
  /**
   * @param x the update (treated as the gradient); must be finite and of the state's dimension.
   * @param rng source of the sampling starts (one draw per sampled segment, in segment order).
   * @param round warm-up index (the global round, or the participation count).
   * @param info optional per-segment diagnostics (resized to the number of segments).
   */
  template <typename S>
  DgcSparse<S> compress(std::span<const S> x, State<S>& st, Rng& rng, std::uint64_t round,
                        std::vector<DgcSelectInfo>* info = nullptr) const {
    static_assert(std::is_same_v<S, float> || std::is_same_v<S, double>, "Dgc supports float and double");
    constexpr std::string_view who = "fedpp::Dgc::encode";
    const Index d = static_cast<Index>(x.size());
    if (st.velocity.size() != d || st.momentum.size() != d)
      fail<DimensionError>(who, "update size must equal the state dimension " + std::to_string(st.velocity.size()),
                           d);
    if (!detail::dgc_all_finite(x)) fail(who, "update must be finite, got a NaN or infinite value at index", first_bad(x));

    const double rho = density_at(round);
    std::vector<std::pair<Index, Index>> segs = segments_;
    if (segs.empty() && d > 0) segs.emplace_back(0, d);
    if (info) info->assign(segs.size(), DgcSelectInfo{});

    DgcSparse<S> out;
    std::vector<Index> sel;
    const S m = static_cast<S>(o_.momentum);
    for (std::size_t s = 0; s < segs.size(); ++s) {
      const auto [off, len] = segs[s];
      const Index n = len;  // a plain variable: OpenMP regions cannot capture structured bindings before clang 16
      const S* g = x.data() + off;
      S* u = st.momentum.data() + off;
      S* v = st.velocity.data() + off;

      S coef = S(1);
      bool clip = false;
      if (o_.clip_norm > 0.0) {
        const double thr = o_.clip_norm / std::sqrt(static_cast<double>(o_.num_workers));
        const double norm = std::sqrt(detail::dgc_sum_squares(std::span<const S>(g, static_cast<std::size_t>(n))));
        const double c = thr / (norm + 1e-6);
        if (c < 1.0) {
          clip = true;
          coef = static_cast<S>(c);
        }
      }
      if (o_.nesterov) {
        FEDPP_DGC_PARALLEL_FOR_IF(n >= detail::dgc_parallel_min)
        for (Index i = 0; i < n; ++i) {
          const S gi = clip ? g[i] * coef : g[i];
          u[i] = m * (u[i] + gi);
          v[i] = v[i] + u[i] + gi;
        }
      } else {
        FEDPP_DGC_PARALLEL_FOR_IF(n >= detail::dgc_parallel_min)
        for (Index i = 0; i < n; ++i) {
          const S gi = clip ? g[i] * coef : g[i];
          u[i] = m * u[i] + gi;
          v[i] = v[i] + u[i];
        }
      }

      const std::span<const S> vs(v, static_cast<std::size_t>(n));
      DgcSelectInfo* inf = info ? &(*info)[s] : nullptr;
      if (o_.threshold == DgcThreshold::exact) {
        const auto k = static_cast<Index>(std::ceil(static_cast<double>(n) * rho));
        detail::dgc_select_exact(vs, k, sel, inf);
      } else {
        detail::dgc_select_sampled(vs, plan(n, rho), o_, rng, sel, inf);
      }

      const std::size_t base = out.indices.size();
      out.indices.resize(base + sel.size());
      out.values.resize(base + sel.size());
      for (std::size_t j = 0; j < sel.size(); ++j) {
        const Index i = sel[j];
        out.indices[base + j] = off + i;
        out.values[base + j] = v[i];
        v[i] = S(0);
        if (o_.momentum_masking) u[i] = S(0);
      }
    }
    ++st.steps;
    return out;
  }

  /// Encodes `x` with the warm-up indexed by the state's participation count.
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State<S>& st, Rng& rng) const {
    return to_payload(x.size(), compress(x, st, rng, st.steps));
  }

  /// Encodes `x` with the warm-up indexed by the global round `ctx.round` (contract 3).
  template <typename S>
  [[nodiscard]] Payload encode(std::span<const S> x, State<S>& st, Rng& rng, const RoundContext& ctx) const {
    return to_payload(x.size(), compress(x, st, rng, ctx.round));
  }

  /// Decodes a sparse payload into `out` (zeros elsewhere); throws DecodeError on malformed input.
  template <typename S>
  void decode(const Payload& p, std::span<S> out) const {
    decode_sparse<S>(p, out, "fedpp::Dgc::decode");
  }

 private:
  template <typename S>
  Payload to_payload(std::size_t dim, const DgcSparse<S>& sp) const {
    const ValueFormat fmt = o_.value_format ? *o_.value_format : native_format<S>();
    return encode_sparse<S>(dim, std::span<const Index>(sp.indices), std::span<const S>(sp.values), fmt);
  }

  template <typename S>
  static std::size_t first_bad(std::span<const S> x) noexcept {
    for (std::size_t i = 0; i < x.size(); ++i)
      if (!std::isfinite(x[i])) return i;
    return x.size();
  }

  DgcOptions o_;
  ParameterLayout layout_;
  std::vector<std::pair<Index, Index>> segments_;  // (offset, size) per segment
};

static_assert(Compressor<Dgc, float> && Compressor<Dgc, double>);
static_assert(CompressorWithContext<Dgc, float> && CompressorWithContext<Dgc, double>);

}  // namespace fedpp
