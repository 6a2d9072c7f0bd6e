#include "engine/data/instructions.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/config/json_parse.h"
#include "engine/config/json_reader.h"

namespace spillway {

absl::StatusOr<std::vector<InstructionExample>> ParseInstructions(absl::string_view text,
                                                                  absl::string_view path) {
  constexpr absl::string_view kFormat =
      "each line is one example, {\"prompt\": \"...\", \"response\": \"...\"}";
  std::vector<InstructionExample> examples;
  size_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    const std::string where = absl::StrCat(path, ":", line_number);
    absl::StatusOr<config_internal::Json> json = config_internal::ParseJsonStrict(line);
    if (!json.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": ", json.status().message(), "; ", kFormat));
    }
    if (!json->is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": the line is ", config_internal::Describe(*json), ", not an object; ", kFormat));
    }
    InstructionExample example;
    example.line = line_number;
    for (auto [key, out] : {std::pair<const char*, std::string*>{"prompt", &example.prompt},
                            {"response", &example.response}}) {
      auto it = json->find(key);
      if (it == json->end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": \"", key, "\" is missing; ", kFormat));
      }
      if (!it->is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(where, ": \"", key, "\" is ",
                                                       config_internal::Describe(*it),
                                                       ", not a string; ", kFormat));
      }
      *out = it->get<std::string>();
    }
    examples.push_back(std::move(example));
  }
  if (examples.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": no examples (the file is empty or blank); ", kFormat));
  }
  return examples;
}

}  // namespace spillway
