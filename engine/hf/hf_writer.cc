#include "engine/hf/hf_writer.h"

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/file_io.h"
#include "core/safetensors_stream.h"
#include "core/status.h"
#include "engine/hf/hf_config.h"
#include "engine/hf/hf_names.h"
#include "nlohmann/json.hpp"

namespace spillway {
namespace {

namespace fs = std::filesystem;

// One HF tensor to write, in file order.
struct Planned {
  int unit = 0;
  const TensorSpec* spec = nullptr;
  const HfTensorRule* rule = nullptr;
  std::string hf;
  std::vector<int64_t> shape;
  size_t numel = 0;
  int shard = 0;
};

absl::StatusOr<std::vector<Planned>> Plan(const ModelConfig& model,
                                          const std::vector<UnitLayout>& units,
                                          const HfWriteOptions& options, int* shards) {
  SPW_ASSIGN_OR_RETURN(const HfArchitecture* arch, FindHfArchitecture(model.type, "model.type"));
  std::vector<Planned> plan;
  uint64_t shard_bytes = 0;
  *shards = 1;
  for (int u = 0; u < static_cast<int>(units.size()); ++u) {
    for (const TensorSpec& t : units[u].tensors()) {
      SPW_ASSIGN_OR_RETURN(const HfTensorName name, ToHfName(*arch, t.name));
      Planned p{u, &t, name.rule, name.hf, HfShape(*name.rule, t.shape, model.vocab_size)};
      p.numel = 1;
      for (int64_t d : p.shape) p.numel *= static_cast<size_t>(d);
      const uint64_t bytes = p.numel * SafetensorsDtypeSize(options.dtype);
      if (shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
        ++*shards;
        shard_bytes = 0;
      }
      shard_bytes += bytes;
      p.shard = *shards - 1;
      plan.push_back(std::move(p));
    }
  }
  return plan;
}

std::string ShardName(int shard, int shards) {
  if (shards == 1) return "model.safetensors";
  return absl::StrFormat("model-%05d-of-%05d.safetensors", shard + 1, shards);
}

// The tensor's values in HF's layout and dtype.
std::vector<std::byte> Encode(const Planned& p, const float* params, SafetensorsDtype dtype,
                              std::vector<float>& scratch) {
  const float* src = params + p.spec->offset;
  std::span<const float> values(src, p.numel);
  if (p.rule->layout == HfLayout::kTranspose) {
    const int64_t in = p.shape[0], out = p.shape[1];  // ours (out, in)
    scratch.resize(p.numel);
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t i = 0; i < in; ++i) scratch[i * out + o] = src[o * in + i];
    }
    values = scratch;
  }
  if (dtype == SafetensorsDtype::kBF16) return EncodeBf16(values);
  const auto bytes = std::as_bytes(values);
  return std::vector<std::byte>(bytes.begin(), bytes.end());
}

absl::Status WriteFiles(const ModelConfig& model, const std::vector<UnitLayout>& units,
                        const HfUnitSource& source, const std::string& tmp,
                        const HfWriteOptions& options, HfWriteReport& report) {
  int shards = 0;
  SPW_ASSIGN_OR_RETURN(const std::vector<Planned> plan, Plan(model, units, options, &shards));
  std::map<std::string, std::string> metadata = options.metadata;
  metadata["format"] = "pt";
  nlohmann::json weight_map = nlohmann::json::object();
  std::optional<SafetensorsStreamWriter> writer;
  int open_shard = -1;
  std::vector<float> params, scratch;
  size_t next = 0;
  for (int u = 0; u < static_cast<int>(units.size()); ++u) {
    params.assign(units[u].numel(), 0.0f);
    SPW_RETURN_IF_ERROR(source(u, std::span<float>(params)));
    for (; next < plan.size() && plan[next].unit == u; ++next) {
      const Planned& p = plan[next];
      if (p.shard != open_shard) {
        if (writer.has_value()) SPW_RETURN_IF_ERROR(writer->Finish());
        writer.reset();
        open_shard = p.shard;
        std::vector<SafetensorsStreamWriter::Tensor> tensors;
        for (const Planned& q : plan) {
          if (q.shard == open_shard) tensors.push_back({q.hf, options.dtype, q.shape});
        }
        SPW_ASSIGN_OR_RETURN(
            SafetensorsStreamWriter w,
            SafetensorsStreamWriter::Create(tmp + "/" + ShardName(open_shard, shards),
                                            std::move(tensors), metadata));
        writer.emplace(std::move(w));
      }
      const std::vector<std::byte> bytes = Encode(p, params.data(), options.dtype, scratch);
      SPW_RETURN_IF_ERROR(writer->Append(bytes));
      weight_map[p.hf] = ShardName(p.shard, shards);
      ++report.tensors;
      report.parameters += p.numel;
      report.bytes += bytes.size();
    }
  }
  if (writer.has_value()) SPW_RETURN_IF_ERROR(writer->Finish());
  report.shards = shards;
  if (shards > 1) {
    const nlohmann::json index = {{"metadata", {{"total_size", report.bytes}}},
                                  {"weight_map", weight_map}};
    SPW_RETURN_IF_ERROR(WriteFileAtomic(tmp + "/model.safetensors.index.json", index.dump(2)));
  }
  const char* dtype = options.dtype == SafetensorsDtype::kBF16 ? "bfloat16" : "float32";
  SPW_ASSIGN_OR_RETURN(const nlohmann::json config, HfConfigJson(model, dtype));
  return WriteFileAtomic(tmp + "/config.json", config.dump(2) + "\n");
}

}  // namespace

absl::StatusOr<HfWriteReport> WriteHfFolder(const ModelConfig& model,
                                            const std::vector<UnitLayout>& units,
                                            const HfUnitSource& source, const std::string& dir_arg,
                                            const HfWriteOptions& options) {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (options.dtype != SafetensorsDtype::kF32 && options.dtype != SafetensorsDtype::kBF16) {
    return absl::InvalidArgumentError(absl::StrCat("cannot write ", dir, " as ",
                                                   SafetensorsDtypeName(options.dtype),
                                                   ": Hugging Face export writes F32 or BF16"));
  }
  std::error_code ec;
  if (fs::exists(dir, ec) && !(fs::is_directory(dir, ec) && fs::is_empty(dir, ec))) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, " exists and is not an empty folder; choose a new output folder or remove it"));
  }
  const std::string tmp = dir + ".tmp";
  fs::remove_all(tmp, ec);
  if (ec) return PosixError(ec.value(), absl::StrCat("remove stale ", tmp));
  SPW_RETURN_IF_ERROR(MakeDirectories(tmp));
  HfWriteReport report;
  absl::Status status = WriteFiles(model, units, source, tmp, options, report);
  if (status.ok() && fs::exists(dir, ec)) {
    fs::remove(dir, ec);  // empty, checked above
    if (ec) status = PosixError(ec.value(), absl::StrCat("remove empty ", dir));
  }
  if (status.ok() && std::rename(tmp.c_str(), dir.c_str()) != 0) {
    status = PosixError(errno, absl::StrCat("rename ", tmp, " to ", dir));
  }
  if (!status.ok()) {
    fs::remove_all(tmp, ec);
    return status;
  }
  const fs::path parent = fs::path(dir).parent_path();
  SPW_RETURN_IF_ERROR(FsyncDirectory(parent.empty() ? "." : parent.string()));
  return report;
}

}  // namespace spillway
