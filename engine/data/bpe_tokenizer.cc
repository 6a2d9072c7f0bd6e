#include "engine/data/bpe_tokenizer.h"

#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "core/status.h"
#include "engine/data/byte_level.h"
#include "engine/data/utf8.h"

namespace spillway {

absl::StatusOr<BpeTokenizer> BpeTokenizer::Load(const std::string& path) {
  SPW_ASSIGN_OR_RETURN(std::string json, ReadFileToString(path));
  return FromJson(json, path);
}

absl::StatusOr<std::vector<uint32_t>> BpeTokenizer::Encode(absl::string_view text) const {
  const size_t valid = utf8::ValidPrefixLength(text);
  if (valid != text.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the text is not valid UTF-8 at byte ", valid, " (", name_,
                     " encodes UTF-8 text; convert the input to UTF-8)"));
  }
  std::vector<uint32_t> ids;
  auto encode_piece = [&](absl::string_view piece) {
    model_.Encode(piece, &ids);
    return absl::OkStatus();
  };
  SPW_RETURN_IF_ERROR(added_.Split(
      text, [&](absl::string_view stretch) { return pre_tokenizer_.Run(stretch, encode_piece); },
      [&](uint32_t id) {
        ids.push_back(id);
        return absl::OkStatus();
      }));
  return ids;
}

absl::StatusOr<std::vector<uint32_t>> BpeTokenizer::EncodeWithTemplate(
    absl::string_view text) const {
  SPW_ASSIGN_OR_RETURN(std::vector<uint32_t> body, Encode(text));
  std::vector<uint32_t> ids = template_prefix_;
  ids.insert(ids.end(), body.begin(), body.end());
  ids.insert(ids.end(), template_suffix_.begin(), template_suffix_.end());
  return ids;
}

std::string BpeTokenizer::Decode(std::span<const uint32_t> ids) const {
  std::string text;
  for (uint32_t id : ids) {
    if (const std::string* token = IdToToken(id)) byte_level::AppendDecoded(*token, &text);
  }
  return text;
}

std::optional<uint32_t> BpeTokenizer::TokenToId(absl::string_view token) const {
  if (const AddedTokens::Token* added = added_.Find(token)) return added->id;
  return model_.TokenToId(token);
}

const std::string* BpeTokenizer::IdToToken(uint32_t id) const {
  if (const AddedTokens::Token* added = added_.FindId(id)) return &added->content;
  return model_.IdToToken(id);
}

std::optional<uint32_t> BpeTokenizer::DefaultEos() const {
  for (absl::string_view candidate : kEosCandidates) {
    const AddedTokens::Token* token = added_.Find(candidate);
    if (token != nullptr && token->special) return token->id;
  }
  return std::nullopt;
}

}  // namespace spillway
