// The BPE model of a Hugging Face tokenizer.json: a vocabulary and ranked merges.
//
// Encoding one piece (a pre-tokenized word, in the byte-level alphabet) works as HF's BPE does
// with dropout off: with ignore_merges a piece that is itself in the vocabulary is that one
// token; otherwise the piece starts as one symbol per character and the adjacent pair of lowest
// merge rank (the leftmost among equals) is merged until no adjacent pair has a merge. A
// character outside the vocabulary becomes unk_token when there is one (consecutive ones fused
// into one with fuse_unk) and is dropped otherwise, as HF does.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

class BpeModel {
 public:
  struct Options {
    bool ignore_merges = false;
    std::optional<std::string> unk_token;
    bool fuse_unk = false;
  };

  BpeModel() = default;  // empty: encodes nothing

  // `vocab`: token -> id; `merges`: the pairs in rank order. InvalidArgument naming the JSON
  // field ("model.vocab", "model.merges[12]") when an id repeats, a merge's parts or their
  // concatenation is not in the vocabulary, or unk_token is not in it.
  static absl::StatusOr<BpeModel> Create(
      std::vector<std::pair<std::string, uint32_t>> vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, Options options);

  // Appends the ids of `piece` (UTF-8) to *ids.
  void Encode(absl::string_view piece, std::vector<uint32_t>* ids) const;

  std::optional<uint32_t> TokenToId(absl::string_view token) const;
  // The token of `id`, or nullptr for an id that the vocabulary does not have.
  const std::string* IdToToken(uint32_t id) const;
  // One past the largest id.
  uint32_t id_limit() const { return static_cast<uint32_t>(id_to_token_.size()); }
  size_t num_merges() const { return merges_.size(); }

 private:
  struct Merge {
    uint32_t rank;
    uint32_t id;  // the merged token
  };
  static uint64_t PairKey(uint32_t left, uint32_t right) { return (uint64_t{left} << 32) | right; }

  absl::flat_hash_map<std::string, uint32_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> has_id_;
  absl::flat_hash_map<uint64_t, Merge> merges_;
  Options options_;
  std::optional<uint32_t> unk_id_;
};

}  // namespace spillway
