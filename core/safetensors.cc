#include "core/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "core/safetensors_stream.h"
#include "core/status.h"
#include "nlohmann/json.hpp"

namespace spillway {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this code copies it as is");

namespace {

struct DtypeEntry {
  SafetensorsDtype dtype;
  const char* name;
  size_t size;
};

// In the order of SafetensorsDtype (and of Hugging Face's Dtype enum).
constexpr DtypeEntry kDtypes[] = {
    {SafetensorsDtype::kBool, "BOOL", 1},      {SafetensorsDtype::kU8, "U8", 1},
    {SafetensorsDtype::kI8, "I8", 1},          {SafetensorsDtype::kF8E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::kF8E4M3, "F8_E4M3", 1}, {SafetensorsDtype::kI16, "I16", 2},
    {SafetensorsDtype::kU16, "U16", 2},        {SafetensorsDtype::kF16, "F16", 2},
    {SafetensorsDtype::kBF16, "BF16", 2},      {SafetensorsDtype::kI32, "I32", 4},
    {SafetensorsDtype::kU32, "U32", 4},        {SafetensorsDtype::kF32, "F32", 4},
    {SafetensorsDtype::kF64, "F64", 8},        {SafetensorsDtype::kI64, "I64", 8},
    {SafetensorsDtype::kU64, "U64", 8},
};

constexpr absl::string_view kMetadataKey = "__metadata__";

const DtypeEntry& Entry(SafetensorsDtype dtype) { return kDtypes[static_cast<int>(dtype)]; }

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&s, i ? ", " : "", shape[i]);
  return s + "]";
}

// A JSON number that is a non-negative integer, or false.
bool GetUnsigned(const nlohmann::json& j, uint64_t* out) {
  if (j.is_number_unsigned()) {
    *out = j.get<uint64_t>();
    return true;
  }
  if (j.is_number_integer() && j.get<int64_t>() >= 0) {
    *out = static_cast<uint64_t>(j.get<int64_t>());
    return true;
  }
  return false;
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int extra;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + extra >= s.size()) return false;  // truncated sequence
    for (int k = 1; k <= extra; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[extra] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += extra + 1;
  }
  return true;
}

template <typename T>
T LoadLE(const std::byte* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

}  // namespace

absl::string_view SafetensorsDtypeName(SafetensorsDtype dtype) { return Entry(dtype).name; }

absl::StatusOr<SafetensorsDtype> ParseSafetensorsDtype(absl::string_view name) {
  for (const DtypeEntry& e : kDtypes) {
    if (name == e.name) return e.dtype;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown safetensors dtype \"", name, "\""));
}

size_t SafetensorsDtypeSize(SafetensorsDtype dtype) { return Entry(dtype).size; }

// ---------------------------------------------------------------------------------------------
// 16-bit floats.

float Bf16ToFloat(uint16_t bits) { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }

float F16ToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F;
  const uint32_t mant = h & 0x3FF;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t FloatToBf16(float value) {
  const uint32_t x = std::bit_cast<uint32_t>(value);
  if ((x & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // NaN
  return static_cast<uint16_t>((x + 0x7FFFu + ((x >> 16) & 1)) >> 16);
}

uint16_t FloatToF16(float value) {
  uint32_t x = std::bit_cast<uint32_t>(value);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  x &= 0x7FFFFFFFu;
  if (x > 0x7F800000u) return sign | 0x7E00 | static_cast<uint16_t>((x >> 13) & 0x3FF);  // NaN
  if (x >= 0x477FF000u) return sign | 0x7C00;  // >= 65520 rounds to infinity (and infinity)
  const uint32_t e = x >> 23;
  if (e < 113) {               // below 2^-14: a subnormal half, in units of 2^-24
    if (e < 102) return sign;  // below 2^-25: rounds to zero
    const uint32_t m = (x & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return sign | static_cast<uint16_t>(r);
  }
  uint32_t h = ((e - 112) << 10) | ((x >> 13) & 0x3FF);
  const uint32_t rem = x & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return sign | static_cast<uint16_t>(h);
}

std::vector<std::byte> EncodeBf16(std::span<const float> values) {
  std::vector<std::byte> out(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t b = FloatToBf16(values[i]);
    std::memcpy(out.data() + 2 * i, &b, 2);
  }
  return out;
}

std::vector<std::byte> EncodeF16(std::span<const float> values) {
  std::vector<std::byte> out(values.size() * 2);
  for (size_t i = 0; i < values.size(); ++i) {
    const uint16_t b = FloatToF16(values[i]);
    std::memcpy(out.data() + 2 * i, &b, 2);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Reader.

struct SafetensorsFile::Storage {
  std::string owned;    // the file's bytes, when read rather than mapped
  void* map = nullptr;  // the mapping, when mapped
  size_t map_size = 0;
  const std::byte* data = nullptr;
  size_t size = 0;

  ~Storage() {
    if (map != nullptr) munmap(map, map_size);
  }
};

SafetensorsFile::SafetensorsFile(std::string path, std::unique_ptr<Storage> storage)
    : path_(std::move(path)), storage_(std::move(storage)) {}
SafetensorsFile::SafetensorsFile(SafetensorsFile&&) noexcept = default;
SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&&) noexcept = default;
SafetensorsFile::~SafetensorsFile() = default;

absl::StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  auto storage = std::make_unique<Storage>();
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return PosixError(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    close(fd);
    return PosixError(err, absl::StrCat("stat ", path));
  }
  if (S_ISDIR(st.st_mode)) {
    close(fd);
    return absl::InvalidArgumentError(absl::StrCat(path, " is a directory"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  if (size > 0) {
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map != MAP_FAILED) {
      storage->map = map;
      storage->map_size = size;
      storage->data = static_cast<const std::byte*>(map);
      storage->size = size;
    }
  }
  close(fd);
  if (storage->map == nullptr) {  // empty, or a file system that cannot map: read it
    SPW_ASSIGN_OR_RETURN(storage->owned, ReadFileToString(path));
    storage->data = reinterpret_cast<const std::byte*>(storage->owned.data());
    storage->size = storage->owned.size();
  }
  SafetensorsFile file(path, std::move(storage));
  SPW_RETURN_IF_ERROR(file.Parse());
  return file;
}

absl::StatusOr<SafetensorsFile> SafetensorsFile::FromBytes(std::string contents,
                                                           std::string source) {
  auto storage = std::make_unique<Storage>();
  storage->owned = std::move(contents);
  storage->data = reinterpret_cast<const std::byte*>(storage->owned.data());
  storage->size = storage->owned.size();
  SafetensorsFile file(std::move(source), std::move(storage));
  SPW_RETURN_IF_ERROR(file.Parse());
  return file;
}

absl::Status SafetensorsFile::Error(absl::string_view tensor, absl::string_view what) const {
  if (tensor.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors file ", path_, ": ", what));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("safetensors file ", path_, ": tensor \"", tensor, "\": ", what));
}

absl::Status SafetensorsFile::Parse() {
  const std::byte* bytes = storage_->data;
  const size_t size = storage_->size;
  if (size < 8) {
    return Error("", absl::StrCat("file is ", size,
                                  " bytes, too short for the 8-byte header "
                                  "length"));
  }
  const uint64_t header_len = LoadLE<uint64_t>(bytes);
  if (header_len > size - 8) {
    return Error("", absl::StrCat("header length ", header_len, " runs past the end of the ", size,
                                  "-byte file"));
  }
  const char* header_begin = reinterpret_cast<const char*>(bytes + 8);
  const char* header_end = header_begin + header_len;
  const std::byte* data = bytes + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;

  // Parse without exceptions; reject duplicate keys in the top-level object, which would make
  // the file ambiguous (nlohmann keeps the last).
  std::string duplicate;
  std::vector<std::string> top_keys;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      top_keys.push_back(parsed.get<std::string>());
    }
    return true;
  };
  const nlohmann::json header =
      nlohmann::json::parse(header_begin, header_end, callback, /*allow_exceptions=*/false);
  if (header.is_discarded()) return Error("", "header is not valid JSON");
  if (!header.is_object()) return Error("", "header is not a JSON object");
  std::sort(top_keys.begin(), top_keys.end());
  for (size_t i = 1; i < top_keys.size(); ++i) {
    if (top_keys[i] == top_keys[i - 1]) {
      return Error(top_keys[i], "appears more than once in the header");
    }
  }

  std::vector<SafetensorsTensorInfo*> order;
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  for (const auto& [name, value] : header.items()) {
    if (name == kMetadataKey) {
      if (!value.is_object()) return Error("", "__metadata__ is not a JSON object");
      for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) {
          return Error("", absl::StrCat("__metadata__ value of \"", key, "\" is not a string"));
        }
        metadata_[key] = v.get<std::string>();
      }
      continue;
    }
    if (!value.is_object()) return Error(name, "header entry is not a JSON object");
    SafetensorsTensorInfo info;
    info.name = name;
    const auto dtype_it = value.find("dtype");
    if (dtype_it == value.end() || !dtype_it->is_string()) {
      return Error(name, "missing or non-string \"dtype\"");
    }
    absl::StatusOr<SafetensorsDtype> dtype = ParseSafetensorsDtype(dtype_it->get<std::string>());
    if (!dtype.ok()) return Error(name, dtype.status().message());
    info.dtype = *dtype;

    const auto shape_it = value.find("shape");
    if (shape_it == value.end() || !shape_it->is_array()) {
      return Error(name, "missing or non-array \"shape\"");
    }
    uint64_t numel = 1;
    bool overflow = false;
    for (const nlohmann::json& d : *shape_it) {
      uint64_t dim;
      if (!GetUnsigned(d, &dim) ||
          dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Error(name, absl::StrCat("shape ", shape_it->dump(),
                                        " has an entry that is not a non-negative integer"));
      }
      info.shape.push_back(static_cast<int64_t>(dim));
      overflow = overflow || __builtin_mul_overflow(numel, dim, &numel);
    }
    const size_t elem = SafetensorsDtypeSize(info.dtype);
    uint64_t nbytes = 0;
    overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(elem), &nbytes) ||
               numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

    const auto off_it = value.find("data_offsets");
    uint64_t begin = 0, end = 0;
    if (off_it == value.end() || !off_it->is_array() || off_it->size() != 2 ||
        !GetUnsigned((*off_it)[0], &begin) || !GetUnsigned((*off_it)[1], &end)) {
      return Error(name, "\"data_offsets\" is not a pair of non-negative integers");
    }
    if (begin > end || end > data_size) {
      return Error(name,
                   absl::StrCat("data_offsets [", begin, ", ", end, "] are out of range of the ",
                                data_size, "-byte data buffer"));
    }
    if (overflow || nbytes != end - begin) {
      return Error(
          name,
          absl::StrCat("shape ", ShapeString(info.shape), " of ", SafetensorsDtypeName(info.dtype),
                       " needs ", overflow ? std::string("more than 2^64") : absl::StrCat(nbytes),
                       " bytes but data_offsets [", begin, ", ", end, "] hold ", end - begin));
    }
    info.numel = static_cast<int64_t>(numel);
    info.data = std::span<const std::byte>(data + begin, end - begin);
    auto [it, inserted] = tensors_.emplace(name, std::move(info));
    order.push_back(&it->second);
    offsets.emplace_back(begin, end);
  }

  // Sort by offset and check that no two tensors share bytes.
  std::vector<size_t> idx(order.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    if (offsets[a] != offsets[b]) return offsets[a] < offsets[b];
    return order[a]->name < order[b]->name;
  });
  for (size_t k = 1; k < idx.size(); ++k) {
    const auto& prev = offsets[idx[k - 1]];
    const auto& cur = offsets[idx[k]];
    if (cur.first < prev.second) {
      return Error(order[idx[k]]->name,
                   absl::StrCat("data_offsets [", cur.first, ", ", cur.second,
                                "] overlap those of tensor \"", order[idx[k - 1]]->name, "\" [",
                                prev.first, ", ", prev.second, "]"));
    }
  }
  names_.reserve(idx.size());
  for (size_t i : idx) names_.push_back(order[i]->name);
  return absl::OkStatus();
}

const SafetensorsTensorInfo* SafetensorsFile::Find(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

absl::StatusOr<const SafetensorsTensorInfo*> SafetensorsFile::Get(absl::string_view name) const {
  const SafetensorsTensorInfo* info = Find(name);
  if (info == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("safetensors file ", path_, ": no tensor \"", name, "\""));
  }
  return info;
}

absl::StatusOr<std::vector<float>> SafetensorsFile::ReadFloat(absl::string_view name) const {
  SPW_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Get(name));
  const size_t n = static_cast<size_t>(info->numel);
  const std::byte* p = info->data.data();
  std::vector<float> out(n);
  switch (info->dtype) {
    case SafetensorsDtype::kF32:
      if (n > 0) std::memcpy(out.data(), p, n * 4);
      break;
    case SafetensorsDtype::kF64:
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>(LoadLE<double>(p + 8 * i));
      break;
    case SafetensorsDtype::kBF16:
      for (size_t i = 0; i < n; ++i) out[i] = Bf16ToFloat(LoadLE<uint16_t>(p + 2 * i));
      break;
    case SafetensorsDtype::kF16:
      for (size_t i = 0; i < n; ++i) out[i] = F16ToFloat(LoadLE<uint16_t>(p + 2 * i));
      break;
    default:
      return Error(name, absl::StrCat("dtype ", SafetensorsDtypeName(info->dtype),
                                      " cannot be read as float (F32, F64, BF16, F16 can)"));
  }
  return out;
}

absl::StatusOr<std::vector<int32_t>> SafetensorsFile::ReadInt32(absl::string_view name) const {
  SPW_ASSIGN_OR_RETURN(const SafetensorsTensorInfo* info, Get(name));
  const size_t n = static_cast<size_t>(info->numel);
  const std::byte* p = info->data.data();
  std::vector<int32_t> out(n);
  switch (info->dtype) {
    case SafetensorsDtype::kI32:
      if (n > 0) std::memcpy(out.data(), p, n * 4);
      break;
    case SafetensorsDtype::kI64:
      for (size_t i = 0; i < n; ++i) {
        const int64_t v = LoadLE<int64_t>(p + 8 * i);
        if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
          return Error(name, absl::StrCat("element ", i, " = ", v, " does not fit in int32"));
        }
        out[i] = static_cast<int32_t>(v);
      }
      break;
    default:
      return Error(name, absl::StrCat("dtype ", SafetensorsDtypeName(info->dtype),
                                      " cannot be read as int32 (I32, I64 can)"));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer.

SafetensorsTensorView SafetensorsTensorView::F32(std::string name, std::vector<int64_t> shape,
                                                 std::span<const float> values) {
  return {std::move(name), SafetensorsDtype::kF32, std::move(shape), std::as_bytes(values)};
}

SafetensorsTensorView SafetensorsTensorView::I32(std::string name, std::vector<int64_t> shape,
                                                 std::span<const int32_t> values) {
  return {std::move(name), SafetensorsDtype::kI32, std::move(shape), std::as_bytes(values)};
}

namespace {

// One tensor of a header being written: its data follows the previous tensor's.
struct HeaderEntry {
  const std::string* name;
  SafetensorsDtype dtype;
  const std::vector<int64_t>* shape;
  uint64_t bytes;
};

// The header (JSON padded with spaces to a multiple of 8 bytes) for tensors laid out in
// `entries` order, with `metadata`.
absl::StatusOr<std::string> HeaderText(std::span<const HeaderEntry> entries,
                                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto& [key, value] : metadata) {
      if (!IsValidUtf8(key) || !IsValidUtf8(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("safetensors: metadata \"", key, "\" is not UTF-8"));
      }
      meta[key] = value;
    }
    header[std::string(kMetadataKey)] = std::move(meta);
  }
  uint64_t offset = 0;
  for (const HeaderEntry& e : entries) {
    nlohmann::ordered_json entry = nlohmann::ordered_json::object();
    entry["dtype"] = std::string(SafetensorsDtypeName(e.dtype));
    entry["shape"] = *e.shape;
    entry["data_offsets"] = {offset, offset + e.bytes};
    header[*e.name] = std::move(entry);
    offset += e.bytes;
  }
  std::string header_text = header.dump();
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  return header_text;
}

}  // namespace

absl::StatusOr<std::string> SerializeSafetensors(
    std::span<const SafetensorsTensorView> tensors,
    const std::map<std::string, std::string>& metadata) {
  // Hugging Face's order: larger dtypes first, then by name. With the header padded to 8 bytes
  // this aligns every tensor to its element size.
  std::vector<const SafetensorsTensorView*> order;
  for (const SafetensorsTensorView& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey || !IsValidUtf8(t.name)) {
      return absl::InvalidArgumentError(absl::StrCat("safetensors: invalid tensor name \"", t.name,
                                                     "\" (empty, __metadata__ or not UTF-8)"));
    }
    uint64_t numel = 1;
    bool overflow = false;
    for (int64_t d : t.shape) {
      if (d < 0) {
        return absl::InvalidArgumentError(absl::StrCat("safetensors: tensor \"", t.name,
                                                       "\" has negative dimension in ",
                                                       ShapeString(t.shape)));
      }
      overflow = overflow || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel);
    }
    if (overflow || numel * SafetensorsDtypeSize(t.dtype) != t.data.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "safetensors: tensor \"", t.name, "\": shape ", ShapeString(t.shape), " of ",
          SafetensorsDtypeName(t.dtype), " needs ", numel * SafetensorsDtypeSize(t.dtype),
          " bytes but ", t.data.size(), " were given"));
    }
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    if (a->dtype != b->dtype) return a->dtype > b->dtype;
    return a->name < b->name;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->name == order[i - 1]->name) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: tensor \"", order[i]->name, "\" given twice"));
    }
  }

  std::vector<HeaderEntry> entries;
  uint64_t offset = 0;
  for (const SafetensorsTensorView* t : order) {
    entries.push_back({&t->name, t->dtype, &t->shape, t->data.size()});
    offset += t->data.size();
  }
  SPW_ASSIGN_OR_RETURN(std::string header_text, HeaderText(entries, metadata));

  std::string out;
  out.reserve(8 + header_text.size() + offset);
  const uint64_t header_len = header_text.size();
  out.append(reinterpret_cast<const char*>(&header_len), 8);
  out.append(header_text);
  for (const SafetensorsTensorView* t : order) {
    out.append(reinterpret_cast<const char*>(t->data.data()), t->data.size());
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path,
                              std::span<const SafetensorsTensorView> tensors,
                              const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<std::string> bytes = SerializeSafetensors(tensors, metadata);
  if (!bytes.ok()) return Annotate(bytes.status(), absl::StrCat("write ", path));
  return WriteFileAtomic(path, absl::string_view(*bytes));
}

SafetensorsStreamWriter::SafetensorsStreamWriter(SafetensorsStreamWriter&& other) noexcept
    : path_(std::move(other.path_)),
      fd_(std::exchange(other.fd_, -1)),
      tensors_(std::move(other.tensors_)),
      bytes_(std::move(other.bytes_)),
      next_(other.next_),
      finished_(std::exchange(other.finished_, true)) {}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  if (fd_ >= 0) close(fd_);
  if (!finished_) unlink((path_ + ".tmp").c_str());
}

absl::StatusOr<SafetensorsStreamWriter> SafetensorsStreamWriter::Create(
    const std::string& path, std::vector<Tensor> tensors,
    const std::map<std::string, std::string>& metadata) {
  std::vector<HeaderEntry> entries;
  std::vector<uint64_t> bytes;
  std::set<std::string> names;
  for (const Tensor& t : tensors) {
    if (t.name.empty() || t.name == kMetadataKey || !IsValidUtf8(t.name) ||
        !names.insert(t.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("safetensors: invalid tensor name \"", t.name,
                       "\" (empty, repeated, __metadata__ or not UTF-8)"));
    }
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0 || __builtin_mul_overflow(numel, static_cast<uint64_t>(d), &numel)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "safetensors: tensor \"", t.name, "\" has an invalid shape ", ShapeString(t.shape)));
      }
    }
    bytes.push_back(numel * SafetensorsDtypeSize(t.dtype));
    entries.push_back({&t.name, t.dtype, &t.shape, bytes.back()});
  }
  SPW_ASSIGN_OR_RETURN(std::string header, HeaderText(entries, metadata));
  const std::string tmp = path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return PosixError(errno, absl::StrCat("create ", tmp));
  SafetensorsStreamWriter writer(path, fd, std::move(tensors), std::move(bytes));
  const uint64_t header_len = header.size();
  SPW_RETURN_IF_ERROR(writer.WriteAll(&header_len, 8));
  SPW_RETURN_IF_ERROR(writer.WriteAll(header.data(), header.size()));
  return writer;
}

absl::Status SafetensorsStreamWriter::WriteAll(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = write(fd_, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, absl::StrCat("write ", path_, ".tmp"));
    p += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SafetensorsStreamWriter::Append(std::span<const std::byte> data) {
  if (next_ >= tensors_.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("safetensors ", path_, ": more tensors appended than declared"));
  }
  if (data.size() != bytes_[next_]) {
    return absl::InvalidArgumentError(absl::StrCat("safetensors ", path_, ": tensor \"",
                                                   tensors_[next_].name, "\" needs ", bytes_[next_],
                                                   " bytes, got ", data.size()));
  }
  SPW_RETURN_IF_ERROR(WriteAll(data.data(), data.size()));
  ++next_;
  return absl::OkStatus();
}

absl::Status SafetensorsStreamWriter::Finish() {
  if (next_ != tensors_.size()) {
    return absl::FailedPreconditionError(absl::StrCat("safetensors ", path_, ": ",
                                                      tensors_.size() - next_,
                                                      " declared tensors were not written"));
  }
  const std::string tmp = path_ + ".tmp";
  if (fsync(fd_) != 0) return PosixError(errno, absl::StrCat("fsync ", tmp));
  const int fd = std::exchange(fd_, -1);
  if (close(fd) != 0) return PosixError(errno, absl::StrCat("close ", tmp));
  if (rename(tmp.c_str(), path_.c_str()) != 0) {
    return PosixError(errno, absl::StrCat("rename ", tmp, " to ", path_));
  }
  finished_ = true;
  const std::string dir = std::filesystem::path(path_).parent_path().string();
  return FsyncDirectory(dir.empty() ? "." : dir);
}

}  // namespace spillway
