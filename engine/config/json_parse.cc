#include "engine/config/json_parse.h"

#include <cstddef>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace spillway::config_internal {
namespace {

// A SAX handler that accepts everything and records the first parse error. Used only to
// locate an error after the DOM parse reported one.
class ErrorLocator : public nlohmann::json_sax<Json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    message_ = ex.what();
    // Drop the "[json.exception.parse_error.101] " prefix.
    if (!message_.empty() && message_[0] == '[') {
      const size_t end = message_.find("] ");
      if (end != std::string::npos) message_ = message_.substr(end + 2);
    }
    return false;
  }
  const std::string& message() const { return message_; }

 private:
  std::string message_;
};

// Tracks the key path during a callback parse and records the first repeated key.
class DuplicateKeyFinder {
 public:
  bool OnEvent(Json::parse_event_t event, const Json& parsed) {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        CountElement();
        frames_.push_back({event == Json::parse_event_t::array_start, {}, "", 0});
        break;
      case Json::parse_event_t::object_end:
      case Json::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!frames_.empty() && parsed.is_string()) {
          Frame& top = frames_.back();
          top.current = parsed.get<std::string>();
          if (!top.keys.insert(top.current).second && duplicate_.empty()) duplicate_ = Path();
        }
        break;
      case Json::parse_event_t::value:
        CountElement();
        break;
    }
    return true;
  }
  // The path of the first repeated key, or "" if none.
  const std::string& duplicate() const { return duplicate_; }

 private:
  struct Frame {
    bool is_array;
    std::set<std::string> keys;
    std::string current;  // objects: the latest key
    int64_t count;        // arrays: elements seen so far
  };

  void CountElement() {
    if (!frames_.empty() && frames_.back().is_array) ++frames_.back().count;
  }

  std::string Path() const {
    std::string path;
    for (const Frame& f : frames_) {
      if (f.is_array) {
        absl::StrAppend(&path, "[", f.count - 1, "]");
      } else {
        absl::StrAppend(&path, path.empty() ? "" : ".", f.current);
      }
    }
    return path;
  }

  std::vector<Frame> frames_;
  std::string duplicate_;
};

}  // namespace

absl::StatusOr<Json> ParseJsonStrict(absl::string_view text) {
  DuplicateKeyFinder finder;
  Json::parser_callback_t callback = [&finder](int /*depth*/, Json::parse_event_t event,
                                               Json& parsed) {
    return finder.OnEvent(event, parsed);
  };
  Json json = Json::parse(text.begin(), text.end(), callback, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    ErrorLocator locator;
    Json::sax_parse(text.begin(), text.end(), &locator);
    return absl::InvalidArgumentError(absl::StrCat(
        "not valid JSON: ", locator.message().empty() ? "syntax error" : locator.message()));
  }
  if (!finder.duplicate().empty()) {
    return KeyError(finder.duplicate(),
                    "duplicate key (each key may appear only once in an object)");
  }
  return json;
}

}  // namespace spillway::config_internal
