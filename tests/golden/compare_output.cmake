# cmake -DEXE=<program> -DEXPECTED=<file> -DOUT=<file> -P compare_output.cmake:
# runs the program, writes its standard output to OUT and fails unless OUT equals EXPECTED.
execute_process(COMMAND ${EXE} OUTPUT_FILE ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} exited with ${rc}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT} ${EXPECTED} RESULT_VARIABLE diff)
if(NOT diff EQUAL 0)
  message(FATAL_ERROR "${OUT} differs from the committed ${EXPECTED}: regenerate it (see the top of the generator) "
                      "and review the change")
endif()
