// StreamTiles: one pass of a computation over K float arrays that live in NvmeFiles, tile by
// tile, with disk reads, computation and disk writes overlapped (the optimizer step over
// NVMe-resident state: fp32 master, Adam m and v).
//
// The arrays are cut into tiles of tile_floats (the last one shorter). For each tile in order,
// compute(tile, tiles, count) runs on the caller's thread with tiles[a] pointing at `count`
// floats of array a, which it may change in place; the tile is then written back. With D
// buffers per array, reads run up to D-2 tiles ahead: while tile i computes, the read of tile
// i+1 and the write of tile i-1 are in flight. Every write has completed when StreamTiles
// returns. The buffers are the engine's own (registered) buffers
// [first_buffer, first_buffer + K*D): array a, slot s is buffer first_buffer + a*D + s.
//
// The bytes past n up to the array's 4 KiB padding are read and written back unchanged.
// Errors: InvalidArgument for a tile size that is not a multiple of 1024 floats, too few or too
// small engine buffers (naming buffer_count/buffer_size), a file too small for n floats; the
// first I/O or compute error otherwise, after all I/O in flight has finished.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "absl/status/statusor.h"
#include "offload/io_engine.h"
#include "offload/nvme_file.h"

namespace spillway {

struct TileStreamOptions {
  size_t tile_floats = 0;     // a multiple of 1024 (one 4 KiB block)
  int buffers_per_array = 3;  // D >= 3
  int first_buffer = 0;
  // Byte offset of array a in its file (a multiple of 4 KiB); empty: every array at 0. Arrays
  // may share one file at different offsets.
  std::vector<uint64_t> file_offsets;
};

// Where the time went, seen from the caller's thread.
struct TileStreamStats {
  size_t tiles = 0;
  double read_wait_s = 0;   // blocked until a tile's reads were done
  double compute_s = 0;     // inside compute()
  double write_wait_s = 0;  // blocked until writes were done (to reuse a buffer, and at the end)
  double total_s = 0;
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
};

using TileCompute = std::function<absl::Status(size_t tile, float* const* tiles, size_t count)>;

// Bytes an NvmeFile needs to hold n floats.
inline uint64_t NvmeBytesForFloats(size_t n) { return RoundUpToNvmeAlignment(n * sizeof(float)); }

absl::StatusOr<TileStreamStats> StreamTiles(IoEngine& engine,
                                            std::span<const NvmeFile* const> files, size_t n,
                                            const TileStreamOptions& options,
                                            const TileCompute& compute);

}  // namespace spillway
