#include "engine/cli/args.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace spillway {

std::string Args::Get(const std::string& name, const std::string& fallback) const {
  auto it = options.find(name);
  return it == options.end() || it->second.empty() ? fallback : it->second.back();
}

absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv,
                               const std::set<std::string>& known,
                               const std::set<std::string>& multi) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (!arg.starts_with("--")) {
      args.positional.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2);
    std::vector<std::string>& values = args.options[name.substr(0, name.find('='))];
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      values.push_back(name.substr(eq + 1));
      name = name.substr(0, eq);
    } else {
      const bool many = multi.contains(name);
      while (i + 1 < argv.size() && !argv[i + 1].starts_with("--")) {
        values.push_back(argv[++i]);
        if (!many) break;
      }
    }
    if (!known.contains(name)) {
      std::vector<std::string> names;
      for (const std::string& k : known) names.push_back("--" + k);
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown option --", name,
          known.empty() ? "; this command takes none" : "; known: " + absl::StrJoin(names, ", ")));
    }
    if (values.empty())
      return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
  }
  return args;
}

}  // namespace spillway
