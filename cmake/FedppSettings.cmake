# Settings applied only to fedpp's own tests, examples and benchmarks, through fedpp_settings.
# fedpp_settings is never installed or exported, so users of fedpp::fedpp never inherit these flags.
if(NOT TARGET fedpp_settings)
  add_library(fedpp_settings INTERFACE)
  target_compile_options(fedpp_settings INTERFACE -Wall -Wextra -Wpedantic)
  if(FEDPP_WARNINGS_AS_ERRORS)
    target_compile_options(fedpp_settings INTERFACE -Werror)
  endif()
  if(FEDPP_SANITIZE)
    target_compile_options(fedpp_settings INTERFACE -fsanitize=${FEDPP_SANITIZE} -fno-omit-frame-pointer
                                                    -fno-sanitize-recover=all)
    target_link_options(fedpp_settings INTERFACE -fsanitize=${FEDPP_SANITIZE})
    if(FEDPP_SANITIZE MATCHES "thread")
      # Asio orders handler memory with std::atomic_thread_fence, which ThreadSanitizer does not
      # model (GCC warns, -Wtsan, and TSan would report the handoffs as races); its mutex-based
      # scheduler already orders them, so the fences are left out of TSan builds.
      target_compile_definitions(fedpp_settings INTERFACE BOOST_ASIO_DISABLE_FENCED_BLOCK)
    endif()
  endif()
endif()

# fedpp_target_settings(<target>...): warnings and sanitizers for a fedpp-owned target, compiled
# as ISO C++20 (no GNU extensions) so that the code stays portable.
function(fedpp_target_settings)
  foreach(t IN LISTS ARGN)
    target_link_libraries(${t} PRIVATE fedpp_settings)
    set_target_properties(${t} PROPERTIES CXX_EXTENSIONS OFF)
  endforeach()
endfunction()
