// A deterministic synthetic English-like language whose entropy rate is known exactly.
//
// Byte tokens (ASCII, vocab 256). Text is produced by a unifilar word-level automaton: each
// state (a part of speech: sentence-initial determiner, subject noun phrase, verb, ...) emits
// one word from its own list with Zipf-like probabilities, every word is followed by one space
// token, and the next state is a function of the emitted word alone (every word leads to the
// same state wherever it appears), so the state is recoverable from the previous word. Words of
// one state are distinct, so a word is determined by its characters up to the space. Example:
//   "The old farmer painted a wooden boat near the river . A cat slept again ! ..."
// The per-token entropy rate, in nats, is
//   H = sum_s pi_s H(W | s) / sum_s pi_s (E[len(W) | s] + 1)
// where pi is the stationary distribution of the state chain. docs/data.md has the details.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace spillway {

inline constexpr uint32_t kSyntheticVocabSize = 256;
// Conventional Generate() streams for the train and validation splits.
inline constexpr uint64_t kSyntheticTrainStream = 0;
inline constexpr uint64_t kSyntheticValStream = 1;

class SyntheticLanguage {
 public:
  struct Word {
    std::string text;
    double prob = 0;  // p(word | state)
    int next = 0;     // the state after this word
  };
  struct State {
    std::string name;
    std::vector<Word> words;
  };

  // `seed` picks the grammar variant: which word of each state gets which Zipf rank. Fails
  // only if the built-in grammar is inconsistent (a bug).
  static absl::StatusOr<SyntheticLanguage> Create(uint64_t seed);

  // n_tokens tokens of text starting at a sentence start, from Rng(seed, stream); the same
  // arguments always give the same tokens. The last word may be cut off.
  std::vector<uint32_t> Generate(size_t n_tokens, uint64_t seed, uint64_t stream) const;

  // The exact entropy rate, in nats per token (see above).
  double EntropyNatsPerToken() const { return entropy_nats_per_token_; }

  // The natural log of the probability that Generate() (from a sentence start) begins with
  // `tokens`; a cut-off last word counts with the total probability of the words it begins.
  // InvalidArgument, naming the position, if the language cannot produce `tokens`.
  absl::StatusOr<double> LogProb(std::span<const uint32_t> tokens) const;

  // A one-line summary: states, words, entropy.
  std::string Describe() const;

  uint64_t seed() const { return seed_; }
  const std::vector<State>& states() const { return states_; }
  // The stationary distribution of the state chain.
  const std::vector<double>& stationary() const { return stationary_; }

 private:
  SyntheticLanguage() = default;

  uint64_t seed_ = 0;
  std::vector<State> states_;
  std::vector<std::vector<double>> cumulative_;                      // per state, for sampling
  std::vector<std::unordered_map<std::string, size_t>> word_index_;  // per state, for LogProb
  std::vector<double> stationary_;
  double entropy_nats_per_word_ = 0;
  double tokens_per_word_ = 0;
  double entropy_nats_per_token_ = 0;
};

}  // namespace spillway
