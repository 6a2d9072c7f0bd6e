// `spillway prepare`: text files to token files, with the byte-level tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace spillway {

// The byte-level tokenizer: every byte is one token, vocab 256.
inline constexpr uint32_t kByteVocabSize = 256;
std::vector<uint32_t> ByteTokenize(absl::string_view text);
std::string ByteDetokenize(const std::vector<uint32_t>& tokens);  // tokens must be < 256

struct PrepareReport {
  size_t input_files = 0;
  uint64_t input_bytes = 0;   // = train_tokens + val_tokens
  uint64_t train_tokens = 0;  // written to output
  uint64_t val_tokens = 0;    // written to val_output (0 if none)
  uint32_t vocab_size = kByteVocabSize;
  std::string output;
  std::string val_output;
};

// Concatenates the bytes of `inputs` (in order, nothing in between) and tokenizes them. With a
// non-empty val_output, the last round(n * val_fraction) tokens go to val_output and the rest to
// output; val_fraction must be in (0, 1) and both splits non-empty. val_fraction is ignored when
// val_output is empty. Creates the outputs' parent directories. Errors (naming the path) for a
// missing or unreadable input, all-empty input, or an unwritable output.
absl::StatusOr<PrepareReport> PrepareTextFiles(const std::vector<std::string>& inputs,
                                               const std::string& output,
                                               const std::string& val_output, double val_fraction);

}  // namespace spillway
