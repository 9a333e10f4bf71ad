#pragma once
/// @file thread_pool.hpp
/// A fixed pool of worker threads for the in-process runtime. Each worker limits OpenMP (and
/// so Eigen) to one thread, so concurrent clients do not oversubscribe the cores and every
/// client's arithmetic is the same whatever the pool size.

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "fedpp/core/config.hpp"
#include "fedpp/core/error.hpp"
#include "fedpp/core/types.hpp"

namespace fedpp {

/// Fixed-size thread pool running one job on all workers at a time.
class ThreadPool {
 public:
  /// Starts `threads` workers (>= 1); 0 means std::thread::hardware_concurrency().
  explicit ThreadPool(int threads = 0) {
    if (threads == 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    require(threads >= 1, "fedpp::ThreadPool", "threads must be >= 0", threads);
    workers_.reserve(static_cast<std::size_t>(threads));
    for (int w = 0; w < threads; ++w) workers_.emplace_back([this, w] { loop(w); });
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  /// Stops and joins the workers (waits for a running job first).
  ~ThreadPool() {
    {
      std::unique_lock lk(m_);
      done_cv_.wait(lk, [&] { return pending_ == 0; });
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  /// Number of workers.
  [[nodiscard]] int size() const noexcept { return static_cast<int>(workers_.size()); }

  /// Runs `job(worker)` on every worker and returns at once; pair with wait().
  void start(std::function<void(int)> job) {
    std::unique_lock lk(m_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    job_ = std::move(job);
    error_ = nullptr;
    pending_ = size();
    ++generation_;
    lk.unlock();
    cv_.notify_all();
  }

  /// Blocks until the job started last has finished on every worker; rethrows its first exception.
  void wait() {
    std::unique_lock lk(m_);
    done_cv_.wait(lk, [&] { return pending_ == 0; });
    if (error_) {
      auto e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
  }

  /// Calls fn(i) for i in [0, n), dynamically spread over the workers; blocks until done.
  template <typename F>
  void parallel_for(Index n, F&& fn) {
    std::atomic<Index> next{0};
    start([&](int) {
      for (Index i = next++; i < n; i = next++) fn(i);
    });
    wait();
  }

 private:
  void loop(int w) {
    set_max_threads(1);  // OpenMP/Eigen inside a worker run single-threaded
    std::uint64_t seen = 0;
    for (;;) {
      std::function<void(int)>* job = nullptr;
      {
        std::unique_lock lk(m_);
        cv_.wait(lk, [&] { return stop_ || generation_ != seen; });
        if (stop_) return;
        seen = generation_;
        job = &job_;
      }
      try {
        (*job)(w);
      } catch (...) {
        std::lock_guard lk(m_);
        if (!error_) error_ = std::current_exception();
      }
      {
        std::lock_guard lk(m_);
        if (--pending_ == 0) done_cv_.notify_all();
      }
    }
  }

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::function<void(int)> job_;
  std::exception_ptr error_;
  std::uint64_t generation_ = 0;
  int pending_ = 0;
  bool stop_ = false;
};

}  // namespace fedpp
