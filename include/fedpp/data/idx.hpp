#pragma once
/// @file idx.hpp
/// Reader for IDX files (LeCun's MNIST format), plain or gzip-compressed, and conversion of an
/// image/label pair into a Dataset. Needs zlib: link the target `fedpp::data`.
///
/// IDX layout: a 4-byte magic `00 00 TT NN` (TT = element type, NN = number of dimensions),
/// NN big-endian uint32 sizes (outermost first), then the elements in row-major order.
/// fedpp reads unsigned-byte files (TT = 0x08): magic 0x00000803 for image stacks (N x H x W)
/// and 0x00000801 for label vectors (N). Every reader checks the whole file: magic, element type,
/// number of dimensions, and that the data is exactly as long as the header declares.

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "fedpp/core/config.hpp"
#include "fedpp/core/dataset.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Pass as a sample `limit` to keep every sample.
inline constexpr std::size_t all_samples = std::numeric_limits<std::size_t>::max();

/// An IDX array of unsigned bytes: its sizes and its elements.
struct IdxArray {
  std::vector<std::uint32_t> dims;  ///< sizes, outermost first (dims[0] = number of items)
  std::vector<std::uint8_t> data;   ///< the elements in row-major order (product of dims bytes)

  /// Number of items (size of the outermost dimension; 0 for an empty array).
  [[nodiscard]] std::size_t items() const noexcept { return dims.empty() ? 0 : dims[0]; }
  /// Elements per item (product of the inner dimensions; 1 for a vector).
  [[nodiscard]] std::size_t item_size() const noexcept {
    std::size_t s = 1;
    for (std::size_t i = 1; i < dims.size(); ++i) s *= dims[i];
    return s;
  }
};

/// How raw pixel values p in [0, 255] become features: x = (p - offset) / scale.
struct PixelTransform {
  double offset = 0.0;   ///< subtracted from the raw value
  double scale = 255.0;  ///< divides the shifted value (the default gives features in [0, 1])
};

/// Feature normalisation of image data sets.
enum class Normalization {
  unit,         ///< x = p / 255, features in [0, 1] (the default)
  standardize,  ///< x = (p - mean) / std, mean and std of all pixels of the (training) samples kept
  raw           ///< x = p, features in [0, 255]
};

namespace detail {

/// Largest element count accepted from a header (2^34); larger sizes mean a corrupt header.
inline constexpr std::uint64_t idx_max_elements = std::uint64_t{1} << 34;

/// Hexadecimal text of a 32-bit value, e.g. "0x00000803".
inline std::string idx_hex32(std::uint32_t v) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string s = "0x00000000";
  for (int i = 9; i >= 2; --i, v >>= 4) s[static_cast<std::size_t>(i)] = digits[v & 0xFu];
  return s;
}

/// Name of an IDX element type code.
inline std::string_view idx_type_name(unsigned code) noexcept {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return "unknown-type";
  }
}

/// Throws DataError "where: 'path': what".
[[noreturn]] inline void idx_fail(std::string_view where, const std::string& path, std::string_view what) {
  fail<DataError>(where, "'" + path + "': " + std::string(what));
}
/// Throws DataError "where: 'path': what, got value".
template <typename V>
[[noreturn]] void idx_fail(std::string_view where, const std::string& path, std::string_view what, const V& got) {
  fail<DataError>(where, "'" + path + "': " + std::string(what), got);
}

/// "60000 x 28 x 28".
inline std::string idx_shape_text(std::span<const std::uint32_t> dims) {
  std::string s;
  for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? " x " : "") + std::to_string(dims[i]);
  return s;
}

/// An open IDX file (plain or gzip, through zlib) whose header has been read and checked.
/**
 * The body is then read with read_body() in any chunk sizes, and finish() checks that nothing
 * follows it. All errors are DataError naming the path.
 */
class IdxFile {
 public:
  /// Opens `path` and checks the header (unsigned-byte type, `expected_ndim` dims unless 0).
  IdxFile(const std::string& path, std::string_view where, int expected_ndim = 0) : path_(path), where_(where) {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(st)) idx_fail(where_, path_, "file not found");
    if (std::filesystem::is_directory(st)) idx_fail(where_, path_, "is a directory, not a file");
    errno = 0;
    file_.reset(gzopen(path.c_str(), "rb"));
    if (!file_) {
      const int e = errno;
      idx_fail(where_, path_, "cannot open (" + (e ? std::generic_category().message(e) : std::string("zlib error")) + ")");
    }
    gzbuffer(file_.get(), 1u << 17);
    read_header(expected_ndim);
    check_size_bound();
  }
  IdxFile(const IdxFile&) = delete;
  IdxFile& operator=(const IdxFile&) = delete;

  /// Sizes from the header, outermost first.
  [[nodiscard]] const std::vector<std::uint32_t>& dims() const noexcept { return dims_; }
  /// Number of items (dims()[0]).
  [[nodiscard]] std::size_t items() const noexcept { return dims_[0]; }
  /// Bytes per item (product of dims()[1..]).
  [[nodiscard]] std::size_t item_size() const noexcept { return item_size_; }
  /// Body size the header declares, in bytes.
  [[nodiscard]] std::size_t body_size() const noexcept { return body_; }
  /// The file's path.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  /// Reads the next n body bytes; throws "truncated data" if the file ends first.
  void read_body(void* buf, std::size_t n) {
    if (n > body_ - consumed_)
      fail<InvalidArgument>(where_, "internal: read past the declared IDX body", n);
    const std::size_t r = read(buf, n);
    consumed_ += r;
    if (r < n)
      idx_fail(where_, path_, "truncated data: the header declares " + idx_shape_text(dims_) + " = " +
                                  std::to_string(body_) + " bytes after the " + std::to_string(header_) +
                                  "-byte header, bytes present",
               consumed_);
  }

  /// Reads and discards the rest of the body, then checks that nothing follows it.
  void finish() {
    std::array<unsigned char, 1u << 14> sink;
    while (consumed_ < body_) read_body(sink.data(), std::min<std::size_t>(sink.size(), body_ - consumed_));
    if (read(sink.data(), 64) > 0)
      idx_fail(where_, path_, "trailing bytes after the " + std::to_string(body_) +
                                  " data bytes that the header (" + idx_shape_text(dims_) +
                                  ") declares: the file is longer than its header says");
  }

 private:
  /// Reads up to n decompressed bytes; fewer only at the end of the data.
  std::size_t read(void* buf, std::size_t n) {
    auto* p = static_cast<unsigned char*>(buf);
    std::size_t got = 0;
    while (got < n) {
      const auto chunk = static_cast<unsigned>(std::min<std::size_t>(n - got, std::size_t{1} << 30));
      const int r = gzread(file_.get(), p + got, chunk);
      if (r < 0) {
        int errnum = 0;
        const char* msg = gzerror(file_.get(), &errnum);
        idx_fail(where_, path_, std::string("corrupt or truncated gzip data (zlib: ") + (msg ? msg : "error") +
                                    ") after " + std::to_string(offset_ + got) + " decompressed bytes");
      }
      if (r == 0) {
        // zlib reports a gzip stream cut short (even just its CRC trailer) as a soft error at EOF.
        int errnum = Z_OK;
        const char* msg = gzerror(file_.get(), &errnum);
        if (errnum != Z_OK)
          idx_fail(where_, path_, std::string("corrupt or truncated gzip data (zlib: ") + (msg ? msg : "error") +
                                      ") after " + std::to_string(offset_ + got) + " decompressed bytes");
        break;
      }
      got += static_cast<std::size_t>(r);
    }
    offset_ += got;
    return got;
  }

  static std::uint32_t big_endian(const unsigned char* b) noexcept {
    return (std::uint32_t{b[0]} << 24) | (std::uint32_t{b[1]} << 16) | (std::uint32_t{b[2]} << 8) | std::uint32_t{b[3]};
  }

  void read_header(int expected_ndim) {
    std::array<unsigned char, 4> magic{};
    if (read(magic.data(), 4) != 4)
      idx_fail(where_, path_, "file is shorter than the 4-byte IDX magic number; bytes present", offset_);
    const std::uint32_t m = big_endian(magic.data());
    if (magic[0] != 0 || magic[1] != 0)
      idx_fail(where_, path_, "not an IDX file: the magic number must start with two zero bytes", idx_hex32(m));
    if (magic[2] != 0x08)
      idx_fail(where_, path_,
               "element type must be unsigned byte (0x08, magic 0x000008NN) but the file holds " +
                   std::string(idx_type_name(magic[2])) + " values; magic number",
               idx_hex32(m));
    const int ndim = magic[3];
    if (ndim == 0) idx_fail(where_, path_, "the number of dimensions must be >= 1; magic number", idx_hex32(m));
    if (expected_ndim > 0 && ndim != expected_ndim)
      idx_fail(where_, path_,
               "expected " + std::to_string(expected_ndim) + " dimension(s) (magic " +
                   idx_hex32(0x0800u + static_cast<std::uint32_t>(expected_ndim)) + ") but the magic number is " +
                   idx_hex32(m) + "; number of dimensions",
               ndim);
    dims_.resize(static_cast<std::size_t>(ndim));
    for (auto& d : dims_) {
      std::array<unsigned char, 4> b{};
      if (read(b.data(), 4) != 4)
        idx_fail(where_, path_, "truncated header: " + std::to_string(ndim) + " dimension sizes need " +
                                    std::to_string(4 + 4 * ndim) + " bytes; bytes present",
                 offset_);
      d = big_endian(b.data());
    }
    // Item size (inner dims) and body size, both capped so that a corrupt header cannot overflow.
    std::uint64_t inner = 1;
    for (std::size_t i = 1; i < dims_.size(); ++i) {
      if (dims_[i] != 0 && inner > idx_max_elements / dims_[i])
        idx_fail(where_, path_, "implausible header: the sizes multiply to more than 2^34 elements", idx_shape_text(dims_));
      inner *= dims_[i];
    }
    if (dims_[0] != 0 && inner > idx_max_elements / dims_[0])
      idx_fail(where_, path_, "implausible header: the sizes multiply to more than 2^34 elements", idx_shape_text(dims_));
    item_size_ = static_cast<std::size_t>(inner);
    body_ = static_cast<std::size_t>(inner * dims_[0]);
    header_ = offset_;
  }

  /// Rejects, before any body is read or allocated, a header declaring more data than the file can
  /// hold: a plain file holds its size, a gzip file at most ~1032 times its size (deflate's limit).
  void check_size_bound() {
    std::error_code ec;
    const std::uintmax_t size = std::filesystem::file_size(path_, ec);
    if (ec) return;  // not a regular file (pipe, device): rely on the checks while reading
    const auto declared = static_cast<std::uintmax_t>(header_) + body_;
    if (gzdirect(file_.get()) != 0) {
      if (declared > size)
        idx_fail(where_, path_, "truncated data: the header declares " + idx_shape_text(dims_) + " = " +
                                    std::to_string(body_) + " bytes after the " + std::to_string(header_) +
                                    "-byte header, bytes present",
                 size - header_);
    } else if (declared > size * 1040 + 4096) {
      idx_fail(where_, path_, "truncated or corrupt: the header declares " + idx_shape_text(dims_) + " = " +
                                  std::to_string(body_) + " bytes, more than a gzip file of " + std::to_string(size) +
                                  " bytes can hold");
    }
  }

  /// Closes a zlib file (also when the constructor throws after opening it).
  struct GzClose {
    void operator()(gzFile f) const noexcept { gzclose_r(f); }
  };

  std::string path_;
  std::string_view where_;
  std::unique_ptr<gzFile_s, GzClose> file_;
  std::vector<std::uint32_t> dims_;
  std::size_t body_ = 0, item_size_ = 1, header_ = 0, consumed_ = 0, offset_ = 0;
};

/// Streams an image IDX body into a d x n feature matrix through a 256-entry lookup table;
/// items beyond `n` are read and discarded. Counts pixel values of the kept items into `hist` if given.
template <typename S>
void idx_stream_features(IdxFile& f, std::size_t n, const std::array<S, 256>& lut, Matrix<S>& out,
                         std::array<std::uint64_t, 256>* hist = nullptr) {
  const std::size_t d = f.item_size();
  out.resize(static_cast<Index>(d), static_cast<Index>(n));
  const std::size_t per_chunk = std::max<std::size_t>(1, (std::size_t{1} << 20) / std::max<std::size_t>(d, 1));
  std::vector<std::uint8_t> buf(per_chunk * d);
  for (std::size_t first = 0; first < n; first += per_chunk) {
    const std::size_t m = std::min(per_chunk, n - first);
    f.read_body(buf.data(), m * d);
    if (hist)
      for (std::size_t i = 0; i < m * d; ++i) ++(*hist)[buf[i]];
    const std::uint8_t* src = buf.data();
    S* dst = out.data() + first * d;
    // Serial on purpose: per-chunk parallel regions cost more than they save next to inflation.
    for (std::size_t i = 0; i < m * d; ++i) dst[i] = lut[src[i]];
  }
  f.finish();
}

/// x = (p - t.offset) / t.scale for every byte value p, computed in double.
template <typename S>
std::array<S, 256> idx_lut(const PixelTransform& t) {
  std::array<S, 256> lut{};
  for (int v = 0; v < 256; ++v) lut[static_cast<std::size_t>(v)] = static_cast<S>((v - t.offset) / t.scale);
  return lut;
}

/// Mean and standard deviation of pixel values from their histogram (scale 1 for a constant set).
inline PixelTransform idx_standardizing(const std::array<std::uint64_t, 256>& hist) {
  double n = 0.0, sum = 0.0, sum2 = 0.0;
  for (int v = 0; v < 256; ++v) {
    const auto c = static_cast<double>(hist[static_cast<std::size_t>(v)]);
    n += c;
    sum += c * v;
    sum2 += c * v * v;
  }
  PixelTransform t{0.0, 1.0};
  if (n == 0.0) return t;
  const double mean = sum / n;
  const double var = std::max(0.0, sum2 / n - mean * mean);
  t.offset = mean;
  t.scale = var > 0.0 ? std::sqrt(var) : 1.0;
  return t;
}

inline void idx_check_transform(const PixelTransform& t, std::string_view where) {
  require(std::isfinite(t.scale) && t.scale != 0.0 && std::isfinite(t.offset), where,
          "PixelTransform scale must be finite and non-zero and offset finite; scale", t.scale);
}

/// Loads an image/label pair as a Dataset. With `fixed` the features use that transform, otherwise
/// `norm` decides (standardize: statistics of the kept images). Returns the transform used in `used`.
/// `item_shape`, when not empty, is the required shape of one image (e.g. {28, 28}).
template <typename S>
Dataset<S> idx_load_pair(const std::string& images_path, const std::string& labels_path, int num_classes,
                         std::size_t limit, Normalization norm, const PixelTransform* fixed, PixelTransform& used,
                         std::string_view where, std::span<const std::uint32_t> item_shape = {}) {
  require(num_classes >= 1 && num_classes <= 256, where, "num_classes must be in [1, 256]", num_classes);
  if (fixed) idx_check_transform(*fixed, where);
  // Labels first: small, and their count must match the image header before the big body is read.
  IdxFile lf(labels_path, where, 1);
  IdxFile imf(images_path, where);
  if (!item_shape.empty()) {
    const auto& d = imf.dims();
    if (d.size() != item_shape.size() + 1 || !std::equal(item_shape.begin(), item_shape.end(), d.begin() + 1))
      idx_fail(where, images_path, "images must be N x " + idx_shape_text(item_shape) + ", the header declares",
               idx_shape_text(d));
  }
  if (imf.items() != lf.items())
    fail<DataError>(where, "'" + images_path + "' holds " + std::to_string(imf.items()) + " images but '" +
                               labels_path + "' must hold as many labels",
                    lf.items());
  const std::size_t n = std::min(limit, imf.items());

  Dataset<S> ds;
  ds.num_classes = num_classes;
  std::vector<std::uint8_t> lab(lf.items());
  lf.read_body(lab.data(), lab.size());
  lf.finish();
  for (std::size_t i = 0; i < lab.size(); ++i)
    if (lab[i] >= num_classes)
      idx_fail(where, labels_path, "label " + std::to_string(i) + " must be in [0, " + std::to_string(num_classes) + ")",
               static_cast<int>(lab[i]));
  ds.labels.assign(lab.begin(), lab.begin() + static_cast<std::ptrdiff_t>(n));

  if (fixed || norm != Normalization::standardize) {
    used = fixed ? *fixed : (norm == Normalization::raw ? PixelTransform{0.0, 1.0} : PixelTransform{});
    idx_stream_features(imf, n, idx_lut<S>(used), ds.features);
  } else {
    // Two passes over the matrix: raw values (exact in any float type) plus a histogram, then the map.
    std::array<std::uint64_t, 256> hist{};
    idx_stream_features(imf, n, idx_lut<S>(PixelTransform{0.0, 1.0}), ds.features, &hist);
    used = idx_standardizing(hist);
    const auto lut = idx_lut<S>(used);
    S* x = ds.features.data();
    const Index total = ds.features.size();
    FEDPP_OMP_PARALLEL_FOR
    for (Index i = 0; i < total; ++i) x[i] = lut[static_cast<std::size_t>(x[i])];
  }
  return ds;
}

}  // namespace detail

/// Reads an unsigned-byte IDX file, plain or gzip-compressed, and checks it completely.
/**
 * @param path          file to read (gzip is recognised from the content, not the name)
 * @param expected_ndim required number of dimensions, or 0 for any
 * @throws DataError naming `path` when the file is missing, unreadable, not an unsigned-byte IDX
 *         file, has the wrong number of dimensions, holds fewer bytes than its header declares
 *         (truncated) or more (trailing bytes), or is a corrupt gzip stream.
 * Memory grows with the data actually present, so a corrupt header cannot force a huge allocation.
 */
inline IdxArray read_idx(const std::string& path, int expected_ndim = 0) {
  detail::IdxFile f(path, "fedpp::read_idx", expected_ndim);
  IdxArray out;
  out.dims = f.dims();
  const std::size_t expected = f.body_size();
  out.data.reserve(std::min<std::size_t>(expected, std::size_t{64} << 20));
  std::size_t got = 0;
  while (got < expected) {
    const std::size_t chunk = std::min(expected - got, std::max<std::size_t>(got, std::size_t{1} << 20));
    out.data.resize(got + chunk);
    f.read_body(out.data.data() + got, chunk);
    got += chunk;
  }
  f.finish();
  return out;
}

/// Reads a label file (1-d unsigned-byte IDX, magic 0x00000801) and checks labels < num_classes.
/**
 * @param num_classes labels must lie in [0, num_classes); 0 skips the range check
 * @throws DataError naming `path` (see read_idx), or the first out-of-range label and its position.
 */
inline IdxArray read_idx_labels(const std::string& path, int num_classes = 0) {
  IdxArray a = read_idx(path, 1);
  if (num_classes > 0) {
    for (std::size_t i = 0; i < a.data.size(); ++i)
      if (a.data[i] >= num_classes)
        detail::idx_fail("fedpp::read_idx_labels", path,
                         "label " + std::to_string(i) + " must be in [0, " + std::to_string(num_classes) + ")",
                         static_cast<int>(a.data[i]));
  }
  return a;
}

/// Reads an image file (3-d unsigned-byte IDX, magic 0x00000803: N x rows x cols).
inline IdxArray read_idx_images(const std::string& path) { return read_idx(path, 3); }

/// The standardising transform (mean and std of all pixels) of the first `limit` items of `images`.
/** Computed in double from a 256-bin histogram; a constant image set gets scale 1. */
inline PixelTransform standardizing_transform(const IdxArray& images, std::size_t limit = all_samples) {
  const std::size_t n = std::min(std::min(limit, images.items()) * images.item_size(), images.data.size());
  std::array<std::uint64_t, 256> hist{};
  for (std::size_t i = 0; i < n; ++i) ++hist[images.data[i]];
  return detail::idx_standardizing(hist);
}

/// Builds a Dataset from IDX arrays: column j holds image j (row-major pixels), so 28x28 images give 784 rows.
/**
 * Feature r of column j is `(images[j][r] - t.offset) / t.scale`, computed in double then rounded to S.
 * @tparam S scalar type of the features
 * @param limit keep only the first `limit` samples (all_samples = all)
 * @throws DataError if image and label counts differ, labels is not 1-d, an array is shorter than
 *         its dims, or a label is outside [0, num_classes); InvalidArgument if num_classes is
 *         outside [1, 256] or `t` is not finite with non-zero scale.
 */
template <typename S = float>
Dataset<S> idx_to_dataset(const IdxArray& images, const IdxArray& labels, int num_classes,
                          std::size_t limit = all_samples, PixelTransform t = {}) {
  constexpr std::string_view where = "fedpp::idx_to_dataset";
  require(num_classes >= 1 && num_classes <= 256, where, "num_classes must be in [1, 256]", num_classes);
  detail::idx_check_transform(t, where);
  if (labels.dims.size() != 1)
    fail<DataError>(where, "labels must be a 1-d IDX array; number of dimensions", labels.dims.size());
  if (images.dims.empty()) fail<DataError>(where, "images must have at least one dimension");
  if (images.items() != labels.items())
    fail<DataError>(where, "images (" + std::to_string(images.items()) + ") and labels must have the same count",
                    labels.items());
  const std::size_t n = std::min(limit, images.items());
  const std::size_t d = images.item_size();
  if (images.data.size() < n * d || labels.data.size() < n)
    fail<DataError>(where, "array data is shorter than its dims declare");

  Dataset<S> ds;
  ds.num_classes = num_classes;
  ds.labels.resize(n);
  for (std::size_t j = 0; j < n; ++j) {
    const int y = labels.data[j];
    if (y >= num_classes)
      fail<DataError>(where, "label " + std::to_string(j) + " must be in [0, " + std::to_string(num_classes) + ")", y);
    ds.labels[j] = static_cast<Label>(y);
  }
  const auto lut = detail::idx_lut<S>(t);
  ds.features.resize(static_cast<Index>(d), static_cast<Index>(n));
  const std::uint8_t* src = images.data.data();
  S* dst = ds.features.data();
  const auto total = static_cast<Index>(n * d);
  FEDPP_OMP_PARALLEL_FOR
  for (Index i = 0; i < total; ++i) dst[i] = lut[src[i]];
  return ds;
}

/// Reads an image file and a label file into a shared Dataset (one column per image).
/**
 * Streams the images straight into the feature matrix (no intermediate byte copy). Both files
 * are read and checked completely, also with a limit.
 * @param limit first `limit` samples only (all_samples = all)
 * @param norm  feature normalisation; standardize uses the statistics of the kept samples
 * @throws DataError naming the file at fault (see read_idx), when the counts differ or a label is
 *         outside [0, num_classes).
 */
template <typename S = float>
std::shared_ptr<const Dataset<S>> load_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                                   int num_classes, std::size_t limit = all_samples,
                                                   Normalization norm = Normalization::unit) {
  PixelTransform used;
  return std::make_shared<const Dataset<S>>(detail::idx_load_pair<S>(
      images_path, labels_path, num_classes, limit, norm, nullptr, used, "fedpp::load_idx_dataset"));
}

}  // namespace fedpp
