#include "engine/data/prepare.h"

#include <cmath>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_io.h"
#include "core/status.h"
#include "engine/data/token_file.h"

namespace spillway {
namespace {

absl::Status MakeParentDirectories(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) return absl::OkStatus();
  return Annotate(MakeDirectories(dir), absl::StrCat("write ", path));
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

absl::StatusOr<PrepareReport> PrepareTextFiles(const std::vector<std::string>& inputs,
                                               const std::string& output,
                                               const std::string& val_output, double val_fraction) {
  if (inputs.empty()) return absl::InvalidArgumentError("prepare: no input files");
  if (output.empty()) return absl::InvalidArgumentError("prepare: no output path");
  const bool split = !val_output.empty();
  if (split && !(val_fraction > 0 && val_fraction < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: val_fraction ", val_fraction, " must be in (0, 1)"));
  }
  if (split && val_output == output) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: output and val output are the same file ", output));
  }
  std::string text;
  for (const std::string& input : inputs) {
    SPW_ASSIGN_OR_RETURN(std::string contents, ReadFileToString(input));
    text += contents;
  }
  if (text.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("prepare: the inputs are empty: ", absl::StrJoin(inputs, ", ")));
  }
  PrepareReport report;
  report.input_files = inputs.size();
  report.input_bytes = text.size();
  report.output = output;
  report.val_output = val_output;
  if (split) {
    report.val_tokens =
        static_cast<uint64_t>(std::llround(static_cast<double>(text.size()) * val_fraction));
    if (report.val_tokens == 0 || report.val_tokens == text.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "prepare: val_fraction ", val_fraction, " of ", text.size(), " tokens leaves ",
          report.val_tokens == 0 ? "the validation" : "the training", " split empty"));
    }
  }
  report.train_tokens = text.size() - report.val_tokens;
  const absl::string_view all(text);
  SPW_RETURN_IF_ERROR(MakeParentDirectories(output));
  SPW_RETURN_IF_ERROR(WriteByteTokenFile(output, all.substr(0, report.train_tokens)));
  if (split) {
    SPW_RETURN_IF_ERROR(MakeParentDirectories(val_output));
    SPW_RETURN_IF_ERROR(WriteByteTokenFile(val_output, all.substr(report.train_tokens)));
  }
  return report;
}

}  // namespace spillway
