# cmake -DBUILD_DIR=<dir> -DCONFIG=<cfg> -DCONTROL=<target> -DCASE=<target> -DSOURCE=<file.cpp>
#       -P check_compile_fail.cmake
# Passes when CONTROL builds, CASE fails to build, and CASE's build output matches every
# `// expect-error: <regex>` line of SOURCE.
foreach(var IN ITEMS BUILD_DIR CONTROL CASE SOURCE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_compile_fail.cmake: -D${var}=... is required")
  endif()
endforeach()
set(config_args "")
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()

file(STRINGS ${SOURCE} expect_lines REGEX "^// expect-error: ")
if(NOT expect_lines)
  message(FATAL_ERROR "${SOURCE} has no `// expect-error: <regex>` line")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${CONTROL} ${config_args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "control build of ${SOURCE} (${CONTROL}) failed; the test file itself is broken:\n${out}")
endif()

execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${CASE} ${config_args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled with FEDPP_COMPILE_FAIL defined, but it must not compile")
endif()
foreach(line IN LISTS expect_lines)
  string(REGEX REPLACE "^// expect-error: " "" regex "${line}")
  if(NOT out MATCHES "${regex}")
    message(FATAL_ERROR "${SOURCE} failed to compile as expected, but the output does not match `${regex}`:\n${out}")
  endif()
endforeach()
message(STATUS "${SOURCE}: the control compiles; the case is rejected as expected")
