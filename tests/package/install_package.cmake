# cmake -DBUILD_DIR=<fedpp build> -DPREFIX=<dir> -DINCLUDEDIR=<rel> -DCMAKEDIR=<rel> -DDOCDIR=<rel>
#       [-DCLEAN_DIR=<dir>] [-DCONFIG=<cfg>] -P install_package.cmake
# Installs fedpp with a plain `cmake --install` (as a user would) into a fresh PREFIX (removed
# first, so no file from an earlier run survives), removes CLEAN_DIR (a consumer's build tree),
# then checks that the prefix holds the package files and nothing else (no tests, no flags).
file(REMOVE_RECURSE ${PREFIX})
if(CLEAN_DIR)
  file(REMOVE_RECURSE ${CLEAN_DIR})
endif()
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} ${config_args}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed (${rc})")
endif()

foreach(f IN ITEMS ${CMAKEDIR}/fedppConfig.cmake ${CMAKEDIR}/fedppConfigVersion.cmake
                  ${CMAKEDIR}/fedppTargets.cmake ${INCLUDEDIR}/fedpp/core/concepts.hpp)
  if(NOT EXISTS ${PREFIX}/${f})
    message(FATAL_ERROR "the install prefix lacks ${f}")
  endif()
endforeach()
# Nothing but headers, the CMake package and documentation may be installed (no tests, no
# examples, no build flags).
file(GLOB_RECURSE installed RELATIVE ${PREFIX} "${PREFIX}/*")
foreach(f IN LISTS installed)
  string(FIND "${f}" "${INCLUDEDIR}/fedpp/" in_include)
  string(FIND "${f}" "${CMAKEDIR}/" in_cmake)
  string(FIND "${f}" "${DOCDIR}/" in_doc)
  if(NOT in_include EQUAL 0 AND NOT in_cmake EQUAL 0 AND NOT in_doc EQUAL 0)
    message(FATAL_ERROR "unexpected file installed: ${f}")
  endif()
endforeach()
# No warning or sanitizer flag may leak into the exported targets.
file(GLOB exported "${PREFIX}/${CMAKEDIR}/*Targets*.cmake")
foreach(f IN LISTS exported)
  file(READ ${f} text)
  if(text MATCHES "-W(all|extra|pedantic|error)|-fsanitize|fedpp_settings")
    message(FATAL_ERROR "${f} exports fedpp's private build flags (${CMAKE_MATCH_0})")
  endif()
endforeach()
list(LENGTH installed count)
message(STATUS "installed ${count} files into ${PREFIX}")
