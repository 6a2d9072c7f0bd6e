// `spillway prepare`: text or JSONL instruction files to token files, with the byte-level
// tokenizer (the default) or a byte-level BPE tokenizer.json. docs/data.md has the details.
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

enum class PrepareFormat {
  // Each input file is one document. Byte-level: the files' bytes, concatenated with nothing in
  // between. With a tokenizer: per file, the post-processor's template around the file's tokens
  // (e.g. a BOS), then the EOS token.
  kText,
  // JSONL instructions (instructions.h). Each example: template prefix + prompt tokens, all
  // masked (never targets), then response tokens + template suffix + EOS, not masked.
  kInstructions,
};

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string output;
  // With a non-empty val_output, the tail of the data goes there: the last round(n * F) tokens
  // (kText) or examples (kInstructions), F = val_fraction in (0, 1), both splits non-empty.
  std::string val_output;
  double val_fraction = 0.0;
  std::string tokenizer;  // a tokenizer.json; empty: the byte-level tokenizer
  PrepareFormat format = PrepareFormat::kText;
  // The token that ends each document or example: "auto" (BpeTokenizer::DefaultEos(); none for
  // the byte-level tokenizer), "none", or a token of the tokenizer, e.g. "<|eot_id|>".
  std::string eos = "auto";
};

struct PrepareReport {
  size_t input_files = 0;
  uint64_t input_bytes = 0;
  uint64_t documents = 0;      // kText: non-empty files; kInstructions: examples
  uint64_t val_documents = 0;  // kInstructions: examples in the validation split
  uint64_t train_tokens = 0;   // written to output
  uint64_t val_tokens = 0;     // written to val_output (0 if none)
  uint64_t masked_tokens = 0;  // of both splits
  uint32_t vocab_size = kByteVocabSize;
  std::string tokenizer = "byte-level";  // or the tokenizer.json path
  std::string eos;                       // the EOS token's content, empty for none
  int64_t eos_id = -1;
  std::string output;
  std::string val_output;
};

// Tokenizes `options.inputs` (in order) and writes the token files (version 2 with a loss mask
// for kInstructions, else version 1), creating their parent directories. Errors (naming the
// path, and the line for JSONL) for a missing or unreadable input, all-empty input, text that is
// not UTF-8 (with a tokenizer), a bad JSONL line, a tokenizer that cannot be read, an unknown
// --eos token, data whose every token is masked, or an unwritable output.
absl::StatusOr<PrepareReport> Prepare(const PrepareOptions& options);

// Prepare() of text files with the byte-level tokenizer.
absl::StatusOr<PrepareReport> PrepareTextFiles(const std::vector<std::string>& inputs,
                                               const std::string& output,
                                               const std::string& val_output, double val_fraction);

}  // namespace spillway
