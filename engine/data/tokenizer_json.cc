// BpeTokenizer::FromJson: reads the parts of a Hugging Face tokenizer.json that byte-level BPE
// uses, refusing everything else with the field's path.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "core/status.h"
#include "engine/config/json_parse.h"
#include "engine/config/json_reader.h"
#include "engine/data/bpe_tokenizer.h"

namespace spillway {

using config_internal::Describe;
using config_internal::Json;
using config_internal::KeyError;

constexpr absl::string_view kByteLevelBpeOnly = "spillway reads byte-level BPE tokenizers only";

class TokenizerJsonReader {
 public:
  explicit TokenizerJsonReader(BpeTokenizer* tokenizer) : t_(*tokenizer) {}

  absl::Status Read(const Json& root) {
    if (!root.is_object()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the top level is ", Describe(root), ", not an object"));
    }
    SPW_RETURN_IF_ERROR(ReadModel(root));
    SPW_RETURN_IF_ERROR(ReadAddedTokens(root));
    SPW_RETURN_IF_ERROR(ReadNormalizer(root));
    const Json* pre = Find(root, "pre_tokenizer");
    if (pre == nullptr || pre->is_null()) {
      return KeyError("pre_tokenizer", absl::StrCat("is missing or null; ", kByteLevelBpeOnly,
                                                    " (a ByteLevel pre-tokenizer)"));
    }
    SPW_RETURN_IF_ERROR(ReadPreTokenizer(*pre, "pre_tokenizer"));
    if (!t_.pre_tokenizer_.has_byte_level()) {
      return KeyError("pre_tokenizer", absl::StrCat("has no ByteLevel step; ", kByteLevelBpeOnly));
    }
    SPW_RETURN_IF_ERROR(ReadDecoder(root));
    if (const Json* post = Find(root, "post_processor"); post != nullptr && !post->is_null()) {
      SPW_RETURN_IF_ERROR(ReadPostProcessor(*post, "post_processor"));
    }
    t_.vocab_size_ = t_.model_.id_limit();
    for (const AddedTokens::Token& token : t_.added_.tokens()) {
      t_.vocab_size_ = std::max(t_.vocab_size_, token.id + 1);
    }
    return absl::OkStatus();
  }

 private:
  static const Json* Find(const Json& object, absl::string_view key) {
    auto it = object.find(std::string(key));
    return it == object.end() ? nullptr : &*it;
  }

  static std::string Path(absl::string_view parent, absl::string_view key) {
    return absl::StrCat(parent, ".", key);
  }

  // The object's "type", required to be a string.
  static absl::StatusOr<std::string> Type(const Json& value, absl::string_view path) {
    if (!value.is_object()) return KeyError(path, absl::StrCat("is ", Describe(value)));
    const Json* type = Find(value, "type");
    if (type == nullptr) return KeyError(Path(path, "type"), "is missing");
    return config_internal::ReadString(*type, Path(path, "type"));
  }

  static absl::Status Unsupported(absl::string_view path, absl::string_view type,
                                  absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ".type is \"", type, "\"; ", what));
  }

  // An optional boolean member (absent or null: `fallback`).
  static absl::StatusOr<bool> Bool(const Json& object, absl::string_view key,
                                   absl::string_view path, bool fallback) {
    const Json* value = Find(object, key);
    if (value == nullptr || value->is_null()) return fallback;
    return config_internal::ReadBool(*value, Path(path, key));
  }

  // A member that must be absent, null or `allowed`; refused otherwise with `why`.
  static absl::Status RequireDefault(const Json& object, absl::string_view key,
                                     absl::string_view path, const Json& allowed,
                                     absl::string_view why) {
    const Json* value = Find(object, key);
    if (value == nullptr || value->is_null() || *value == allowed) return absl::OkStatus();
    return KeyError(Path(path, key), absl::StrCat("is ", Describe(*value), "; ", why));
  }

  absl::Status ReadModel(const Json& root) {
    const Json* model = Find(root, "model");
    if (model == nullptr) return KeyError("model", "is missing");
    SPW_ASSIGN_OR_RETURN(std::string type, Type(*model, "model"));
    if (type != "BPE") return Unsupported("model", type, kByteLevelBpeOnly);
    SPW_RETURN_IF_ERROR(RequireDefault(*model, "dropout", "model", 0.0,
                                       "spillway encodes without BPE dropout; set it to null"));
    SPW_RETURN_IF_ERROR(RequireDefault(*model, "continuing_subword_prefix", "model", "",
                                       "byte-level BPE has no subword prefix"));
    SPW_RETURN_IF_ERROR(RequireDefault(*model, "end_of_word_suffix", "model", "",
                                       "byte-level BPE has no end-of-word suffix"));
    SPW_RETURN_IF_ERROR(RequireDefault(*model, "byte_fallback", "model", false,
                                       "byte-level BPE needs no byte fallback"));
    BpeModel::Options options;
    SPW_ASSIGN_OR_RETURN(options.ignore_merges, Bool(*model, "ignore_merges", "model", false));
    SPW_ASSIGN_OR_RETURN(options.fuse_unk, Bool(*model, "fuse_unk", "model", false));
    if (const Json* unk = Find(*model, "unk_token"); unk != nullptr && !unk->is_null()) {
      SPW_ASSIGN_OR_RETURN(options.unk_token, config_internal::ReadString(*unk, "model.unk_token"));
    }

    const Json* vocab = Find(*model, "vocab");
    if (vocab == nullptr) return KeyError("model.vocab", "is missing");
    if (!vocab->is_object()) {
      return KeyError("model.vocab",
                      absl::StrCat("is ", Describe(*vocab), ", not an object of token: id"));
    }
    std::vector<std::pair<std::string, uint32_t>> entries;
    entries.reserve(vocab->size());
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
      SPW_ASSIGN_OR_RETURN(
          int64_t id,
          config_internal::ReadInt(it.value(), absl::StrCat("model.vocab[\"", it.key(), "\"]"), 0,
                                   (int64_t{1} << 31) - 1));
      entries.emplace_back(it.key(), static_cast<uint32_t>(id));
    }

    const Json* merges = Find(*model, "merges");
    if (merges == nullptr) {
      return KeyError("model.merges", "is missing (a BPE model needs its merges)");
    }
    if (!merges->is_array()) {
      return KeyError("model.merges", absl::StrCat("is ", Describe(*merges), ", not an array"));
    }
    std::vector<std::pair<std::string, std::string>> pairs;
    pairs.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const Json& m = (*merges)[i];
      const std::string path = absl::StrCat("model.merges[", i, "]");
      if (m.is_string()) {
        std::vector<std::string> parts = absl::StrSplit(m.get_ref<const std::string&>(), ' ');
        if (parts.size() != 2) {
          return KeyError(path, absl::StrCat("is ", Describe(m),
                                             "; a merge string is two tokens with one space"));
        }
        pairs.emplace_back(std::move(parts[0]), std::move(parts[1]));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        pairs.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return KeyError(path,
                        absl::StrCat("is ", Describe(m), "; a merge is \"a b\" or [\"a\", \"b\"]"));
      }
    }
    SPW_ASSIGN_OR_RETURN(t_.model_,
                         BpeModel::Create(std::move(entries), pairs, std::move(options)));
    return absl::OkStatus();
  }

  absl::Status ReadAddedTokens(const Json& root) {
    const Json* added = Find(root, "added_tokens");
    if (added == nullptr || added->is_null()) return absl::OkStatus();
    if (!added->is_array()) {
      return KeyError("added_tokens", absl::StrCat("is ", Describe(*added), ", not an array"));
    }
    for (size_t i = 0; i < added->size(); ++i) {
      const Json& a = (*added)[i];
      const std::string path = absl::StrCat("added_tokens[", i, "]");
      if (!a.is_object()) return KeyError(path, absl::StrCat("is ", Describe(a)));
      AddedTokens::Token token;
      const Json* id = Find(a, "id");
      const Json* content = Find(a, "content");
      if (id == nullptr) return KeyError(Path(path, "id"), "is missing");
      if (content == nullptr) return KeyError(Path(path, "content"), "is missing");
      SPW_ASSIGN_OR_RETURN(int64_t id_value, config_internal::ReadInt(*id, Path(path, "id"), 0,
                                                                      (int64_t{1} << 31) - 1));
      token.id = static_cast<uint32_t>(id_value);
      SPW_ASSIGN_OR_RETURN(token.content,
                           config_internal::ReadString(*content, Path(path, "content")));
      if (token.content.empty()) return KeyError(Path(path, "content"), "is empty");
      for (absl::string_view flag : {"single_word", "lstrip", "rstrip"}) {
        SPW_RETURN_IF_ERROR(RequireDefault(
            a, flag, path, false,
            "spillway matches added tokens exactly (single_word, lstrip and rstrip false)"));
      }
      SPW_ASSIGN_OR_RETURN(token.special, Bool(a, "special", path, false));
      SPW_ASSIGN_OR_RETURN(token.normalized, Bool(a, "normalized", path, !token.special));
      if (const AddedTokens::Token* other = t_.added_.Find(token.content)) {
        return KeyError(Path(path, "content"),
                        absl::StrCat("\"", token.content, "\" is added twice (ids ", other->id,
                                     " and ", token.id, ")"));
      }
      t_.added_.Add(std::move(token));
    }
    return absl::OkStatus();
  }

  static absl::Status ReadNormalizer(const Json& root) {
    const Json* normalizer = Find(root, "normalizer");
    if (normalizer == nullptr || normalizer->is_null()) return absl::OkStatus();
    SPW_ASSIGN_OR_RETURN(std::string type, Type(*normalizer, "normalizer"));
    const Json* steps = Find(*normalizer, "normalizers");
    if (type == "Sequence" && steps != nullptr && steps->is_array() && steps->empty()) {
      return absl::OkStatus();
    }
    return Unsupported("normalizer", type,
                       "spillway reads tokenizers without a normalizer only (set it to null if "
                       "the text needs no normalization)");
  }

  absl::Status ReadPreTokenizer(const Json& value, const std::string& path) {
    SPW_ASSIGN_OR_RETURN(std::string type, Type(value, path));
    if (type == "Sequence") {
      const Json* steps = Find(value, "pretokenizers");
      if (steps == nullptr || !steps->is_array()) {
        return KeyError(Path(path, "pretokenizers"), "is missing or not an array");
      }
      for (size_t i = 0; i < steps->size(); ++i) {
        SPW_RETURN_IF_ERROR(
            ReadPreTokenizer((*steps)[i], absl::StrCat(path, ".pretokenizers[", i, "]")));
      }
      return absl::OkStatus();
    }
    if (type == "ByteLevel") {
      SPW_ASSIGN_OR_RETURN(bool add_prefix_space, Bool(value, "add_prefix_space", path, true));
      SPW_ASSIGN_OR_RETURN(bool use_regex, Bool(value, "use_regex", path, true));
      return t_.pre_tokenizer_.AddByteLevel(add_prefix_space, use_regex);
    }
    if (type == "Split") {
      const std::string pattern_path = Path(path, "pattern");
      const Json* pattern = Find(value, "pattern");
      if (pattern == nullptr) return KeyError(pattern_path, "is missing");
      const Json* regex = pattern->is_object() ? Find(*pattern, "Regex") : nullptr;
      const Json* literal = pattern->is_object() ? Find(*pattern, "String") : nullptr;
      if ((regex == nullptr) == (literal == nullptr) || pattern->size() != 1) {
        return KeyError(pattern_path, absl::StrCat("is ", Describe(*pattern),
                                                   "; expected {\"Regex\": ...} or "
                                                   "{\"String\": ...}"));
      }
      const std::string text_path = Path(pattern_path, regex ? "Regex" : "String");
      SPW_ASSIGN_OR_RETURN(std::string text,
                           config_internal::ReadString(regex ? *regex : *literal, text_path));
      if (text.empty()) return KeyError(text_path, "is empty");
      absl::StatusOr<Regex> compiled = Regex::Compile(text, /*literal=*/regex == nullptr);
      if (!compiled.ok()) return Annotate(compiled.status(), text_path);
      const Json* behavior_json = Find(value, "behavior");
      if (behavior_json == nullptr) return KeyError(Path(path, "behavior"), "is missing");
      SPW_ASSIGN_OR_RETURN(std::string behavior,
                           config_internal::ReadString(*behavior_json, Path(path, "behavior"),
                                                       {"Removed", "Isolated", "MergedWithPrevious",
                                                        "MergedWithNext", "Contiguous"}));
      SPW_ASSIGN_OR_RETURN(bool invert, Bool(value, "invert", path, false));
      const SplitBehavior b = behavior == "Removed"    ? SplitBehavior::kRemoved
                              : behavior == "Isolated" ? SplitBehavior::kIsolated
                              : behavior == "MergedWithPrevious"
                                  ? SplitBehavior::kMergedWithPrevious
                              : behavior == "MergedWithNext" ? SplitBehavior::kMergedWithNext
                                                             : SplitBehavior::kContiguous;
      t_.pre_tokenizer_.AddSplit(std::move(compiled).value(), b, invert);
      return absl::OkStatus();
    }
    return Unsupported(path, type,
                       "spillway reads the pre-tokenizers ByteLevel, Split and Sequence only");
  }

  static absl::Status ReadDecoder(const Json& root) {
    const Json* decoder = Find(root, "decoder");
    if (decoder == nullptr || decoder->is_null()) {
      return KeyError("decoder", absl::StrCat("is missing or null; ", kByteLevelBpeOnly,
                                              " (a ByteLevel decoder)"));
    }
    SPW_ASSIGN_OR_RETURN(std::string type, Type(*decoder, "decoder"));
    if (type != "ByteLevel") {
      return Unsupported("decoder", type,
                         absl::StrCat(kByteLevelBpeOnly, " (a ByteLevel decoder)"));
    }
    return absl::OkStatus();
  }

  absl::Status ReadPostProcessor(const Json& value, const std::string& path) {
    SPW_ASSIGN_OR_RETURN(std::string type, Type(value, path));
    if (type == "ByteLevel") return absl::OkStatus();  // it changes offsets only
    if (type == "Sequence") {
      const Json* steps = Find(value, "processors");
      if (steps == nullptr || !steps->is_array()) {
        return KeyError(Path(path, "processors"), "is missing or not an array");
      }
      for (size_t i = 0; i < steps->size(); ++i) {
        SPW_RETURN_IF_ERROR(
            ReadPostProcessor((*steps)[i], absl::StrCat(path, ".processors[", i, "]")));
      }
      return absl::OkStatus();
    }
    if (type != "TemplateProcessing") {
      return Unsupported(path, type,
                         "spillway reads the post-processors ByteLevel, TemplateProcessing and "
                         "Sequence only");
    }
    if (seen_template_) return KeyError(path, "is a second TemplateProcessing");
    seen_template_ = true;
    const std::string single_path = Path(path, "single");
    const Json* single = Find(value, "single");
    if (single == nullptr || !single->is_array()) {
      return KeyError(single_path, "is missing or not an array");
    }
    const Json* specials = Find(value, "special_tokens");
    bool seen_sequence = false;
    for (size_t i = 0; i < single->size(); ++i) {
      const Json& piece = (*single)[i];
      const std::string piece_path = absl::StrCat(single_path, "[", i, "]");
      if (piece.is_object() && piece.contains("Sequence")) {
        const Json& seq = piece["Sequence"];
        if (!seq.is_object() || !seq.contains("id") || seq["id"] != "A" || seen_sequence) {
          return KeyError(piece_path, absl::StrCat("is ", Describe(piece),
                                                   "; the single template holds sequence A once"));
        }
        seen_sequence = true;
        continue;
      }
      const Json* special = piece.is_object() ? Find(piece, "SpecialToken") : nullptr;
      const Json* name =
          special != nullptr && special->is_object() ? Find(*special, "id") : nullptr;
      if (name == nullptr || !name->is_string()) {
        return KeyError(piece_path, absl::StrCat("is ", Describe(piece),
                                                 "; expected {\"SpecialToken\": {\"id\": ...}} "
                                                 "or {\"Sequence\": {\"id\": \"A\"}}"));
      }
      const std::string& token = name->get_ref<const std::string&>();
      const std::string ids_path = absl::StrCat(path, ".special_tokens[\"", token, "\"].ids");
      const Json* entry =
          specials != nullptr && specials->is_object() ? Find(*specials, token) : nullptr;
      const Json* ids = entry != nullptr && entry->is_object() ? Find(*entry, "ids") : nullptr;
      if (ids == nullptr || !ids->is_array()) return KeyError(ids_path, "is missing");
      std::vector<uint32_t>& out = seen_sequence ? t_.template_suffix_ : t_.template_prefix_;
      for (size_t k = 0; k < ids->size(); ++k) {
        SPW_ASSIGN_OR_RETURN(
            int64_t id, config_internal::ReadInt((*ids)[k], absl::StrCat(ids_path, "[", k, "]"), 0,
                                                 (int64_t{1} << 31) - 1));
        out.push_back(static_cast<uint32_t>(id));
      }
    }
    if (!seen_sequence) return KeyError(single_path, "has no {\"Sequence\": {\"id\": \"A\"}}");
    return absl::OkStatus();
  }

  BpeTokenizer& t_;
  bool seen_template_ = false;
};

absl::StatusOr<BpeTokenizer> BpeTokenizer::FromJson(absl::string_view json,
                                                    absl::string_view name) {
  absl::StatusOr<Json> root = config_internal::ParseJsonStrict(json);
  if (!root.ok()) return Annotate(root.status(), name);
  BpeTokenizer tokenizer;
  tokenizer.name_ = std::string(name);
  SPW_RETURN_IF_ERROR(Annotate(TokenizerJsonReader(&tokenizer).Read(*root), name));
  return tokenizer;
}

}  // namespace spillway
