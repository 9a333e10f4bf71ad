// Writes a seed corpus for net_fuzz (same input layout as net_fuzz.cpp: a flags byte, then the
// byte stream): valid encoded messages of every type, bulk split across several data frames
// (one frame straddling the two bulk parts), a stream of several messages, and bare head bodies
// for the head parsers. Each stream is written with flags 0 (checksums recomputed), 1 (the
// stream's own, valid, checksums) and 2 (1024-byte frame limit). Usage: fedpp_net_fuzz_seeds <dir>.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include "fedpp/net/frame.hpp"
#include "fedpp/net/protocol.hpp"

namespace {

using namespace fedpp::net;
using Bytes = std::vector<std::uint8_t>;

int written = 0;

void seed(const std::filesystem::path& dir, const std::string& name, std::uint8_t flags, const Bytes& stream) {
  std::ofstream f(dir / ("net_" + name + "_" + std::to_string(flags) + "_" + std::to_string(written++)),
                  std::ios::binary);
  const char c = static_cast<char>(flags);
  f.write(&c, 1);
  f.write(reinterpret_cast<const char*>(stream.data()), static_cast<std::streamsize>(stream.size()));
}

Bytes wire(const Head& h, const Bytes& b1 = {}, const Bytes& b2 = {}, std::uint32_t max_frame = 1024) {
  const auto m = OutboundMessage::encode(h, b1, b2, max_frame);
  Bytes w;
  for (const auto& p : m->pieces()) w.insert(w.end(), p.data, p.data + p.size);
  return w;
}

Bytes pattern(std::size_t n, unsigned salt) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>((i * 131 + salt * 17) ^ (i >> 8));
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fedpp_net_fuzz_seeds <output directory>\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);

  Hello hello;
  hello.client = 3;
  hello.token = "token-3";
  hello.codec = 2;
  hello.scalar_bytes = 4;
  hello.dim = 300;
  hello.software = "fedpp seeds";
  const Welcome welcome{3, 8, 500, 1024};
  const Reject reject{RejectReason::codec_mismatch, "server decodes codec 1"};
  RoundHead round;
  round.round = 5;
  round.seed = 1;
  round.deadline_ms = 1000;
  round.scalar_bytes = 4;
  round.model_count = 300;
  round.aux_count = 100;
  ReplyHead reply;
  reply.round = 5;
  reply.weight = 12;
  reply.train_loss = 0.25;
  reply.steps = 10;
  reply.samples = 120;
  reply.payload_bytes = 3000;
  reply.aux_bytes = 1000;
  ReplyHead failed;
  failed.round = 6;
  failed.status = 2;
  failed.reason = 3;
  failed.error = "diverged";
  ReplyHead aux_only = reply;
  aux_only.payload_bytes = 0;
  aux_only.aux_bytes = 1500;
  const Heartbeat heartbeat{9, 1, 5};
  const Goodbye goodbye{GoodbyeReason::finished, "done"};

  const Bytes model = pattern(1200, 1), broadcast = pattern(400, 2), payload = pattern(3000, 3), aux = pattern(1000, 4);
  const std::pair<std::string, Bytes> streams[] = {
      {"hello", wire(hello)},
      {"welcome", wire(welcome)},
      {"reject", wire(reject)},
      {"round", wire(round, model, broadcast)},
      {"reply", wire(reply, payload, aux)},
      {"reply_failed", wire(failed)},
      {"reply_aux_only", wire(aux_only, {}, pattern(1500, 5), 512)},
      {"heartbeat", wire(heartbeat)},
      {"goodbye", wire(goodbye)},
  };
  Bytes all;
  for (const auto& [name, s] : streams) {
    for (std::uint8_t flags : {0, 1, 2}) seed(dir, name, flags, s);
    all.insert(all.end(), s.begin(), s.end());
  }
  for (std::uint8_t flags : {0, 1, 2}) seed(dir, "all", flags, all);

  // Bare head bodies, for the parse_head pass.
  const Head heads[] = {hello, welcome, reject, round, reply, failed, heartbeat, goodbye};
  for (const Head& h : heads) seed(dir, "head", 0, encode_head(h));

  std::printf("fedpp_net_fuzz_seeds: wrote %d seeds to %s\n", written, dir.string().c_str());
  return 0;
}
