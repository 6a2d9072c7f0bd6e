// A small command-line parser for the spillway subcommands: positional arguments and
// "--name value" / "--name=value" options, with repeatable options collecting every value.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace spillway {

struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> options;  // name without "--"

  bool Has(const std::string& name) const { return options.contains(name); }
  // The option's last value, or `fallback`.
  std::string Get(const std::string& name, const std::string& fallback = "") const;
};

// `known` lists the accepted option names; `multi` those that take several values
// ("--input a b c" runs until the next option). Unknown options are errors naming the
// option and listing the known ones; an option without a value is an error.
absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv,
                               const std::set<std::string>& known,
                               const std::set<std::string>& multi = {});

}  // namespace spillway
