// Sequential write and read throughput of the NVMe I/O engines on one preallocated file.
//
// usage: nvme_io --dir DIR [--size_gib 8] [--engines uring,pread] [--queue_depths 1,8,32,64]
//                [--block_mib 1,4,8] [--request_mib 64] [--fill random|zero]
// For every engine x queue depth x block size: one timed pass writing the whole file, then one
// reading it, in requests of request_mib with enough requests outstanding to keep queue_depth
// blocks in flight. The file is written once, untimed, before the first measurement, so every
// timed pass overwrites allocated blocks (as dd over an existing file does). Prints a table
// row and one JSON line per configuration. O_DIRECT bypasses the page cache (the JSON says
// "direct": false if the filesystem refused it, and then the numbers are not the disk's).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "offload/io_engine.h"
#include "offload/nvme_file.h"
#include "offload/posix_io_engine.h"
#include "offload/uring_io_engine.h"

namespace spillway {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

struct Flags {
  std::string dir;
  double size_gib = 8;
  std::vector<std::string> engines = {"uring", "pread"};
  std::vector<int> queue_depths = {1, 8, 32, 64};
  std::vector<int> block_mib = {1, 4, 8};
  int request_mib = 64;
  std::string fill = "random";
};

bool ParseInts(const std::string& text, std::vector<int>* out) {
  out->clear();
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0) return false;
    out->push_back(v);
  }
  return !out->empty();
}

bool ParseFlags(int argc, char** argv, Flags* f) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    bool ok = true;
    if (key == "--dir") {
      f->dir = value;
    } else if (key == "--size_gib") {
      ok = absl::SimpleAtod(value, &f->size_gib) && f->size_gib > 0;
    } else if (key == "--engines") {
      f->engines = absl::StrSplit(value, ',');
    } else if (key == "--queue_depths") {
      ok = ParseInts(value, &f->queue_depths);
    } else if (key == "--block_mib") {
      ok = ParseInts(value, &f->block_mib);
    } else if (key == "--request_mib") {
      ok = absl::SimpleAtoi(value, &f->request_mib) && f->request_mib > 0;
    } else if (key == "--fill") {
      f->fill = value;
      ok = value == "random" || value == "zero";
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "bad option %s %s\n", key.c_str(), value.c_str());
      return false;
    }
  }
  if (argc % 2 == 0 || f->dir.empty()) {
    std::fprintf(stderr,
                 "usage: nvme_io --dir DIR [--size_gib 8] [--engines uring,pread] "
                 "[--queue_depths 1,8,32,64] [--block_mib 1,4,8] [--request_mib 64] "
                 "[--fill random|zero]\n");
    return false;
  }
  return true;
}

absl::StatusOr<std::unique_ptr<IoEngine>> MakeEngine(const std::string& kind, IoOptions options) {
  if (kind == "uring") {
    absl::StatusOr<std::unique_ptr<UringIoEngine>> e = UringIoEngine::Create(std::move(options));
    if (!e.ok()) return e.status();
    return std::unique_ptr<IoEngine>(std::move(e).value());
  }
  if (kind == "pread") {
    absl::StatusOr<std::unique_ptr<PosixIoEngine>> e = PosixIoEngine::Create(std::move(options));
    if (!e.ok()) return e.status();
    return std::unique_ptr<IoEngine>(std::move(e).value());
  }
  return absl::InvalidArgumentError("engines are uring and pread, not " + kind);
}

// One pass over the whole file in request-sized pieces, `outstanding` requests at a time,
// cycling through the engine's buffers; seconds taken.
absl::StatusOr<double> Pass(IoEngine& engine, const NvmeFile& file, IoOp op, size_t request) {
  const auto start = std::chrono::steady_clock::now();
  std::deque<IoEngine::Ticket> in_flight;
  int next_buffer = 0;
  for (uint64_t offset = 0; offset < file.size(); offset += request) {
    if (static_cast<int>(in_flight.size()) == engine.buffer_count()) {
      if (absl::Status s = engine.Wait(in_flight.front()); !s.ok()) return s;
      in_flight.pop_front();
    }
    std::span<std::byte> buffer =
        engine.buffer(next_buffer).first(std::min<uint64_t>(request, file.size() - offset));
    next_buffer = (next_buffer + 1) % engine.buffer_count();
    absl::StatusOr<IoEngine::Ticket> t = op == IoOp::kRead
                                             ? engine.SubmitRead(file, offset, buffer)
                                             : engine.SubmitWrite(file, offset, buffer);
    if (!t.ok()) return t.status();
    in_flight.push_back(*t);
  }
  if (absl::Status s = engine.WaitAll(); !s.ok()) return s;
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void Fill(IoEngine& engine, const std::string& fill) {
  std::mt19937_64 rng(1);
  for (int b = 0; b < engine.buffer_count(); ++b) {
    std::span<std::byte> s = engine.buffer(b);
    if (fill == "zero") {
      std::memset(s.data(), 0, s.size());
      continue;
    }
    for (size_t i = 0; i + 8 <= s.size(); i += 8) {
      const uint64_t word = rng();
      std::memcpy(s.data() + i, &word, 8);
    }
  }
}

int Main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  const uint64_t bytes =
      RoundUpToNvmeAlignment(static_cast<uint64_t>(flags.size_gib * double(1 << 30)));
  absl::StatusOr<std::unique_ptr<NvmeFile>> file = NvmeFile::Create(flags.dir, "nvme_io", bytes);
  if (!file.ok()) {
    std::fprintf(stderr, "nvme_io: %s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  const size_t request = static_cast<size_t>(flags.request_mib) * kMiB;
  {
    IoOptions warm;
    warm.buffer_count = 4;
    warm.buffer_size = request;
    absl::StatusOr<std::unique_ptr<IoEngine>> engine = CreateIoEngine(warm);
    if (!engine.ok()) return 1;
    Fill(**engine, flags.fill);
    absl::StatusOr<double> s = Pass(**engine, **file, IoOp::kWrite, request);
    if (!s.ok()) {
      std::fprintf(stderr, "nvme_io: %s\n", std::string(s.status().message()).c_str());
      return 1;
    }
    std::printf("# %s: %.2f GiB, O_DIRECT %s, first write %.2f GB/s (untimed warm-up)\n",
                (*file)->path().c_str(), bytes / double(1 << 30), (*file)->direct() ? "yes" : "NO",
                bytes / *s / 1e9);
  }
  std::printf("%-8s %5s %6s %11s %10s %10s\n", "engine", "qd", "block", "write GB/s", "read GB/s",
              "registered");
  for (const std::string& kind : flags.engines) {
    for (int qd : flags.queue_depths) {
      for (int block_mib : flags.block_mib) {
        const size_t block = static_cast<size_t>(block_mib) * kMiB;
        IoOptions options;
        options.queue_depth = qd;
        options.block_size = block;
        options.buffer_size = std::max(request, block);
        // Enough requests outstanding that queue_depth chunks can be in flight, plus one.
        options.buffer_count =
            static_cast<int>((size_t(qd) * block + options.buffer_size - 1) / options.buffer_size) +
            1;
        options.buffer_count = std::max(options.buffer_count, 2);
        absl::StatusOr<std::unique_ptr<IoEngine>> engine = MakeEngine(kind, options);
        if (!engine.ok()) {
          std::fprintf(stderr, "nvme_io: %s: %s\n", kind.c_str(),
                       std::string(engine.status().message()).c_str());
          break;
        }
        Fill(**engine, flags.fill);
        absl::StatusOr<double> w = Pass(**engine, **file, IoOp::kWrite, options.buffer_size);
        absl::StatusOr<double> r =
            w.ok() ? Pass(**engine, **file, IoOp::kRead, options.buffer_size) : w;
        if (!r.ok()) {
          std::fprintf(stderr, "nvme_io: %s\n", std::string(r.status().message()).c_str());
          return 1;
        }
        const double write_gbps = bytes / *w / 1e9, read_gbps = bytes / *r / 1e9;
        const bool registered = (*engine)->registered_buffers();
        std::printf("%-8s %5d %4d Mi %11.2f %10.2f %10s\n", std::string((*engine)->name()).c_str(),
                    qd, block_mib, write_gbps, read_gbps, registered ? "yes" : "no");
        std::printf(
            "{\"bench\": \"nvme_io\", \"engine\": \"%s\", \"queue_depth\": %d, \"block_size\": "
            "%zu, \"bytes\": %llu, \"write_gbps\": %.3f, \"read_gbps\": %.3f, \"registered\": "
            "%s, \"direct\": %s, \"fill\": \"%s\"}\n",
            std::string((*engine)->name()).c_str(), qd, block,
            static_cast<unsigned long long>(bytes), write_gbps, read_gbps,
            registered ? "true" : "false", (*file)->direct() ? "true" : "false",
            flags.fill.c_str());
        std::fflush(stdout);
      }
    }
  }
  return 0;
}

}  // namespace
}  // namespace spillway

int main(int argc, char** argv) { return spillway::Main(argc, argv); }
