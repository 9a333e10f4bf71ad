// Empty source of fedpp_test_pch, the target that builds the unit tests' precompiled header
// (tests/CMakeLists.txt).
