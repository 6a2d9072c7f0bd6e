#include "engine/hf/hf_folder.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/file_io.h"
#include "core/status.h"
#include "nlohmann/json.hpp"

namespace spillway {
namespace {

constexpr char kSingleFile[] = "model.safetensors";
constexpr char kIndexFile[] = "model.safetensors.index.json";

bool Exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_regular_file(path, ec);
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace

absl::StatusOr<HfFolder> HfFolder::Open(const std::string& dir) {
  HfFolder folder;
  folder.dir_ = dir;
  const std::string config_path = dir + "/config.json";
  if (!Exists(config_path)) {
    return absl::NotFoundError(absl::StrCat(
        dir,
        " has no config.json: expected a Hugging Face model folder (as save_pretrained "
        "writes it)"));
  }
  SPW_ASSIGN_OR_RETURN(const std::string config_text, ReadFileToString(config_path));
  SPW_ASSIGN_OR_RETURN(folder.info_, ParseHfConfig(config_text, config_path));

  if (Exists(dir + "/" + kSingleFile)) {
    SPW_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(dir + "/" + kSingleFile));
    folder.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
    for (const std::string& name : folder.files_.back()->names()) {
      folder.where_[name] = folder.files_.back().get();
    }
    return folder;
  }
  const std::string index_path = dir + "/" + kIndexFile;
  if (!Exists(index_path)) {
    return absl::NotFoundError(absl::StrCat(
        dir, " has neither ", kSingleFile, " nor ", kIndexFile,
        ": spillway reads safetensors weights (save_pretrained(..., safe_serialization=True))"));
  }
  SPW_ASSIGN_OR_RETURN(const std::string index_text, ReadFileToString(index_path));
  const nlohmann::json index = nlohmann::json::parse(index_text, nullptr, false);
  if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") ||
      !index["weight_map"].is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(index_path,
                     " is not a safetensors index: expected a JSON object with a "
                     "\"weight_map\" object {tensor: shard file}"));
  }
  std::map<std::string, const SafetensorsFile*> by_shard;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    if (!shard.is_string() || shard.get<std::string>().find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map[\"", name, "\"] must be a file name in ", dir));
    }
    const std::string shard_name = shard.get<std::string>();
    auto it = by_shard.find(shard_name);
    if (it == by_shard.end()) {
      const std::string path = dir + "/" + shard_name;
      if (!Exists(path)) {
        return absl::NotFoundError(absl::StrCat(index_path, " names shard ", shard_name,
                                                " (for tensor ", name, ") but ", path,
                                                " does not exist; copy the whole model folder"));
      }
      SPW_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(path));
      folder.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
      it = by_shard.emplace(shard_name, folder.files_.back().get()).first;
    }
    if (it->second->Find(name) == nullptr) {
      return absl::NotFoundError(absl::StrCat(index_path, " puts tensor ", name, " in ", shard_name,
                                              " but that file does not hold it"));
    }
    folder.where_[name] = it->second;
  }
  return folder;
}

std::vector<std::string> HfFolder::files() const {
  std::vector<std::string> out;
  for (const auto& f : files_) out.push_back(f->path());
  return out;
}

const SafetensorsFile* HfFolder::Lookup(const std::string& name, std::string* found) const {
  auto it = where_.find(name);
  const absl::string_view prefix = info_.arch->base_prefix;
  if (it == where_.end() && absl::StartsWith(name, prefix)) {
    it = where_.find(name.substr(prefix.size()));
  }
  if (it == where_.end()) return nullptr;
  *found = it->first;
  return it->second;
}

absl::Status HfFolder::LoadUnit(const UnitLayout& layout, const ModelConfig& model,
                                std::span<float> dst) const {
  if (dst.size() != layout.numel()) {
    return absl::InvalidArgumentError(absl::StrCat("unit ", layout.name(), " has ", layout.numel(),
                                                   " elements, not ", dst.size()));
  }
  std::fill(dst.begin(), dst.end(), 0.0f);
  for (const TensorSpec& t : layout.tensors()) {
    SPW_ASSIGN_OR_RETURN(const HfTensorName name, ToHfName(*info_.arch, t.name));
    std::string stored;
    const SafetensorsFile* file = Lookup(name.hf, &stored);
    if (file == nullptr && !name.tied_to.empty() && info_.tie_word_embeddings) {
      file = Lookup(name.tied_to, &stored);
    }
    if (file == nullptr) {
      return absl::NotFoundError(absl::StrCat(dir_, ": tensor ", name.hf, " (spillway's ", t.name,
                                              ") is missing from ", absl::StrJoin(files(), ", ")));
    }
    const SafetensorsTensorInfo& info = *file->Find(stored);
    if (info.dtype != SafetensorsDtype::kF32 && info.dtype != SafetensorsDtype::kBF16 &&
        info.dtype != SafetensorsDtype::kF16 && info.dtype != SafetensorsDtype::kF64) {
      return absl::InvalidArgumentError(absl::StrCat(
          file->path(), ": tensor ", stored, " has dtype ", SafetensorsDtypeName(info.dtype),
          "; spillway converts F32, F16, BF16 and F64 weights"));
    }
    const HfTensorRule& rule = *name.rule;
    const std::vector<int64_t> want = HfShape(rule, t.shape, model.vocab_size);
    const bool prefix_ok = rule.position_rows && info.shape.size() == 2 && want.size() == 2 &&
                           info.shape[1] == want[1] && info.shape[0] >= want[0];
    if (info.shape != want && !prefix_ok) {
      return absl::InvalidArgumentError(
          absl::StrCat(file->path(), ": tensor ", stored, " has shape ", ShapeString(info.shape),
                       " but spillway's ", t.name, " needs ", ShapeString(want),
                       " (from the model's sizes); the file and config.json disagree"));
    }
    SPW_ASSIGN_OR_RETURN(const std::vector<float> values, file->ReadFloat(stored));
    float* out = dst.data() + t.offset;
    if (rule.layout == HfLayout::kTranspose) {
      const int64_t rows = want[0], cols = want[1];  // HF (in, out); ours (out, in)
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = values[r * cols + c];
      }
    } else {
      size_t n = 1;
      for (int64_t d : want) n *= static_cast<size_t>(d);
      std::copy(values.begin(), values.begin() + n, out);
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> HfFolder::UnusedTensors(const std::vector<UnitLayout>& layouts) const {
  std::set<std::string> used;
  for (const UnitLayout& layout : layouts) {
    for (const TensorSpec& t : layout.tensors()) {
      absl::StatusOr<HfTensorName> name = ToHfName(*info_.arch, t.name);
      if (!name.ok()) continue;
      std::string stored;
      if (Lookup(name->hf, &stored) != nullptr) used.insert(stored);
      if (!name->tied_to.empty() && Lookup(name->tied_to, &stored) != nullptr) {
        used.insert(stored);
      }
    }
  }
  std::vector<std::string> unused;
  for (const auto& [name, file] : where_) {
    if (used.contains(name) || IsSkippedHfTensor(*info_.arch, name)) continue;
    const absl::string_view prefix = info_.arch->base_prefix;
    if (IsSkippedHfTensor(*info_.arch, absl::StrCat(prefix, name))) continue;
    unused.push_back(name);
  }
  return unused;
}

}  // namespace spillway
