#pragma once
/// @file version.hpp
/// fedpp version numbers.

#define FEDPP_VERSION_MAJOR 0
#define FEDPP_VERSION_MINOR 1
#define FEDPP_VERSION_PATCH 0

namespace fedpp {
/// Library version as "major.minor.patch".
inline constexpr const char* version_string = "0.1.0";
}  // namespace fedpp
