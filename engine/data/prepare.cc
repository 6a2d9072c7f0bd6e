#include "engine/data/prepare.h"

#include <cmath>
#include <filesystem>
#include <optional>
#include <span>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_io.h"
#include "core/status.h"
#include "engine/data/bpe_tokenizer.h"
#include "engine/data/instructions.h"
#include "engine/data/token_file.h"

namespace spillway {
namespace {

absl::Status MakeParentDirectories(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) return absl::OkStatus();
  return Annotate(MakeDirectories(dir), absl::StrCat("write ", path));
}

absl::Status CheckOptions(const PrepareOptions& o) {
  if (o.inputs.empty()) return absl::InvalidArgumentError("prepare: no input files");
  if (o.output.empty()) return absl::InvalidArgumentError("prepare: no output path");
  if (o.val_output.empty()) return absl::OkStatus();
  if (!(o.val_fraction > 0 && o.val_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: val_fraction ", o.val_fraction, " must be in (0, 1)"));
  }
  if (o.val_output == o.output) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: output and val output are the same file ", o.output));
  }
  return absl::OkStatus();
}

// round(n * fraction) items for validation; an error names `what` when a split would be empty.
absl::StatusOr<uint64_t> ValidationCount(uint64_t n, double fraction, absl::string_view what) {
  const uint64_t val = static_cast<uint64_t>(std::llround(static_cast<double>(n) * fraction));
  if (val == 0 || val == n) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: val_fraction ", fraction, " of ", n, " ", what, " leaves ",
                     val == 0 ? "the validation" : "the training", " split empty"));
  }
  return val;
}

// The original byte-level text path: bytes straight to a version-1 file, never widened.
absl::StatusOr<PrepareReport> PrepareBytes(const PrepareOptions& o) {
  std::string text;
  for (const std::string& input : o.inputs) {
    SPW_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(input));
    text += contents;
  }
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: the inputs are empty: ", absl::StrJoin(o.inputs, ", ")));
  }
  PrepareReport report;
  report.input_files = o.inputs.size();
  report.input_bytes = text.size();
  report.documents = o.inputs.size();
  report.output = o.output;
  report.val_output = o.val_output;
  if (!o.val_output.empty()) {
    SPW_ASSIGN_OR_RETURN(report.val_tokens, ValidationCount(text.size(), o.val_fraction, "tokens"));
  }
  report.train_tokens = text.size() - report.val_tokens;
  const absl::string_view all(text);
  SPW_RETURN_IF_ERROR(MakeParentDirectories(o.output));
  SPW_RETURN_IF_ERROR(WriteByteTokenFile(o.output, all.substr(0, report.train_tokens)));
  if (!o.val_output.empty()) {
    SPW_RETURN_IF_ERROR(MakeParentDirectories(o.val_output));
    SPW_RETURN_IF_ERROR(WriteByteTokenFile(o.val_output, all.substr(report.train_tokens)));
  }
  return report;
}

// The tokenizer of a run: the byte-level one, or a BpeTokenizer with its template and EOS.
class Encoder {
 public:
  static absl::StatusOr<Encoder> Create(const PrepareOptions& o, PrepareReport* report) {
    Encoder e;
    if (!o.tokenizer.empty()) {
      SPW_ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::Load(o.tokenizer));
      e.tokenizer_.emplace(std::move(tokenizer));
      report->tokenizer = o.tokenizer;
      report->vocab_size = e.tokenizer_->vocab_size();
    }
    if (o.eos == "auto") {
      if (e.tokenizer_) e.eos_ = e.tokenizer_->DefaultEos();
    } else if (o.eos != "none") {
      if (!e.tokenizer_) {
        return absl::InvalidArgumentError(
            absl::StrCat("prepare: eos \"", o.eos,
                         "\": the byte-level tokenizer has no EOS token; pass a tokenizer.json"));
      }
      e.eos_ = e.tokenizer_->TokenToId(o.eos);
      if (!e.eos_) {
        return absl::InvalidArgumentError(
            absl::StrCat("prepare: eos \"", o.eos, "\" is not a token of ", o.tokenizer));
      }
    }
    if (e.eos_) {
      report->eos = *e.tokenizer_->IdToToken(*e.eos_);
      report->eos_id = *e.eos_;
    }
    return e;
  }

  absl::StatusOr<std::vector<uint32_t>> Encode(absl::string_view text) const {
    if (tokenizer_) return tokenizer_->Encode(text);
    return ByteTokenize(text);
  }

  // Before a document or a prompt: the template's prefix.
  void AppendStart(std::vector<uint32_t>* ids) const {
    if (tokenizer_) Append(tokenizer_->template_prefix(), ids);
  }
  // After a document or a response: the template's suffix, then the EOS unless the suffix
  // already ends with it.
  void AppendEnd(std::vector<uint32_t>* ids) const {
    if (tokenizer_) Append(tokenizer_->template_suffix(), ids);
    const std::vector<uint32_t> none;
    const std::vector<uint32_t>& suffix = tokenizer_ ? tokenizer_->template_suffix() : none;
    if (eos_ && (suffix.empty() || suffix.back() != *eos_)) ids->push_back(*eos_);
  }

 private:
  static void Append(const std::vector<uint32_t>& more, std::vector<uint32_t>* ids) {
    ids->insert(ids->end(), more.begin(), more.end());
  }

  std::optional<BpeTokenizer> tokenizer_;
  std::optional<uint32_t> eos_;
};

struct Tokens {
  std::vector<uint32_t> ids;
  std::vector<uint8_t> masked;      // kInstructions only
  std::vector<uint64_t> documents;  // kInstructions: where each example ends
};

absl::Status AppendText(const Encoder& encoder, const std::string& path, absl::string_view contents,
                        Tokens* tokens, PrepareReport* report) {
  if (contents.empty()) return absl::OkStatus();
  encoder.AppendStart(&tokens->ids);
  absl::StatusOr<std::vector<uint32_t>> ids = encoder.Encode(contents);
  if (!ids.ok()) return Annotate(ids.status(), path);
  tokens->ids.insert(tokens->ids.end(), ids->begin(), ids->end());
  encoder.AppendEnd(&tokens->ids);
  ++report->documents;
  return absl::OkStatus();
}

absl::Status AppendInstructions(const Encoder& encoder, const std::string& path,
                                absl::string_view contents, Tokens* tokens, PrepareReport* report) {
  SPW_ASSIGN_OR_RETURN(std::vector<InstructionExample> examples, ParseInstructions(contents, path));
  for (const InstructionExample& example : examples) {
    const std::string where = absl::StrCat(path, ":", example.line);
    encoder.AppendStart(&tokens->ids);
    absl::StatusOr<std::vector<uint32_t>> prompt = encoder.Encode(example.prompt);
    if (!prompt.ok()) return Annotate(prompt.status(), absl::StrCat(where, ": \"prompt\""));
    tokens->ids.insert(tokens->ids.end(), prompt->begin(), prompt->end());
    tokens->masked.resize(tokens->ids.size(), 1);
    absl::StatusOr<std::vector<uint32_t>> response = encoder.Encode(example.response);
    if (!response.ok()) return Annotate(response.status(), absl::StrCat(where, ": \"response\""));
    tokens->ids.insert(tokens->ids.end(), response->begin(), response->end());
    encoder.AppendEnd(&tokens->ids);
    tokens->masked.resize(tokens->ids.size(), 0);
    tokens->documents.push_back(tokens->ids.size());
    ++report->documents;
  }
  return absl::OkStatus();
}

// Refuses a split whose every token is masked: it would have nothing to train or evaluate on.
absl::Status CheckNotAllMasked(std::span<const uint8_t> masked, const std::string& path) {
  for (uint8_t m : masked) {
    if (m == 0) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("prepare: every token of ", path,
                   " is a masked prompt token, so it has no targets; give the examples responses"));
}

absl::Status WriteSplit(const std::string& path, const Tokens& tokens, uint64_t begin, uint64_t end,
                        uint32_t vocab_size) {
  const std::span<const uint32_t> ids(tokens.ids.data() + begin, end - begin);
  std::span<const uint8_t> masked;
  if (!tokens.masked.empty()) masked = {tokens.masked.data() + begin, end - begin};
  SPW_RETURN_IF_ERROR(MakeParentDirectories(path));
  return WriteTokenFile(path, ids, vocab_size, masked);
}

}  // namespace

std::vector<uint32_t> ByteTokenize(absl::string_view text) {
  std::vector<uint32_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  return tokens;
}

std::string ByteDetokenize(const std::vector<uint32_t>& tokens) {
  std::string text(tokens.size(), '\0');
  for (size_t i = 0; i < tokens.size(); ++i) text[i] = static_cast<char>(tokens[i]);
  return text;
}

absl::StatusOr<PrepareReport> Prepare(const PrepareOptions& o) {
  SPW_RETURN_IF_ERROR(CheckOptions(o));
  const bool instructions = o.format == PrepareFormat::kInstructions;
  if (o.tokenizer.empty() && !instructions && (o.eos == "auto" || o.eos == "none")) {
    return PrepareBytes(o);
  }
  PrepareReport report;
  SPW_ASSIGN_OR_RETURN(Encoder encoder, Encoder::Create(o, &report));
  report.input_files = o.inputs.size();
  report.output = o.output;
  report.val_output = o.val_output;
  Tokens tokens;
  for (const std::string& input : o.inputs) {
    SPW_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(input));
    report.input_bytes += contents.size();
    SPW_RETURN_IF_ERROR(instructions
                            ? AppendInstructions(encoder, input, contents, &tokens, &report)
                            : AppendText(encoder, input, contents, &tokens, &report));
  }
  if (tokens.ids.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: the inputs are empty: ", absl::StrJoin(o.inputs, ", ")));
  }
  uint64_t train_end = tokens.ids.size();
  if (!o.val_output.empty()) {
    if (instructions) {
      SPW_ASSIGN_OR_RETURN(report.val_documents,
                           ValidationCount(report.documents, o.val_fraction, "examples"));
      train_end = tokens.documents[report.documents - report.val_documents - 1];
    } else {
      SPW_ASSIGN_OR_RETURN(uint64_t val_tokens,
                           ValidationCount(tokens.ids.size(), o.val_fraction, "tokens"));
      train_end -= val_tokens;
    }
  }
  report.train_tokens = train_end;
  report.val_tokens = tokens.ids.size() - train_end;
  for (uint8_t m : tokens.masked) report.masked_tokens += m;
  if (!tokens.masked.empty()) {  // checked before anything is written
    const std::span<const uint8_t> masked(tokens.masked);
    SPW_RETURN_IF_ERROR(CheckNotAllMasked(masked.first(train_end), o.output));
    if (!o.val_output.empty()) {
      SPW_RETURN_IF_ERROR(CheckNotAllMasked(masked.subspan(train_end), o.val_output));
    }
  }
  SPW_RETURN_IF_ERROR(WriteSplit(o.output, tokens, 0, train_end, report.vocab_size));
  if (!o.val_output.empty()) {
    SPW_RETURN_IF_ERROR(
        WriteSplit(o.val_output, tokens, train_end, tokens.ids.size(), report.vocab_size));
  }
  return report;
}

absl::StatusOr<PrepareReport> PrepareTextFiles(const std::vector<std::string>& inputs,
                                               const std::string& output,
                                               const std::string& val_output, double val_fraction) {
  PrepareOptions options;
  options.inputs = inputs;
  options.output = output;
  options.val_output = val_output;
  options.val_fraction = val_fraction;
  return Prepare(options);
}

}  // namespace spillway
