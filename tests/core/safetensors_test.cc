#include "core/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/file_io.h"
#include "gtest/gtest.h"

namespace spillway {
namespace {

// gtest without gmock: does `text` contain `sub`?
::testing::AssertionResult Contains(absl::string_view text, absl::string_view sub) {
  if (absl::StrContains(text, sub)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << text << "\" does not contain \"" << sub << "\"";
}

// A file written by Python with nothing but struct and json (not by our writer): data order
// differs from header order, the header is indented and unpadded (so the data is unaligned),
// and "__metadata__" comes last. Generated with /usr/bin/python3:
//
//   import json, struct
//   f16 = [1.0, -2.5, 65504.0, 2.0**-14, 2.0**-24, float('inf'), 0.333251953125]
//   bf16_bits = [0x3F80, 0xC049, 0x3C00, 0x8000, 0x7F7F]  # 1, -3.140625, 2^-7, -0, max
//   f32 = [0.5, -1.25, 3.0e-5, 1.0e30, -7.0, 8.0]
//   f64 = [0.1, -1.0e-300]
//   i32 = [1, -2, 2147483647]
//   i64 = [-5, 7, -2147483648, 12]
//   blobs = [
//       ("x.i64", "I64", [2, 2], struct.pack("<4q", *i64)),
//       ("a.f16", "F16", [7], struct.pack("<7e", *f16)),
//       ("b.bf16", "BF16", [5], struct.pack("<5H", *bf16_bits)),
//       ("c.f32", "F32", [2, 3], struct.pack("<6f", *f32)),
//       ("d.f64", "F64", [2], struct.pack("<2d", *f64)),
//       ("e.i32", "I32", [3], struct.pack("<3i", *i32)),
//       ("s.scalar", "F32", [], struct.pack("<f", 42.0)),
//   ]
//   header, data = {}, b""
//   for name, dt, shape, b in blobs:
//       header[name] = {"dtype": dt, "shape": shape,
//                       "data_offsets": [len(data), len(data) + len(b)]}
//       data += b
//   header["__metadata__"] = {"format": "pt", "note": "caf\u00e9"}
//   h = json.dumps(header, indent=1).encode()
//   blob = struct.pack("<Q", len(h)) + h + data
constexpr unsigned char kPythonFile[] = {
    0xde, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x0a, 0x20, 0x22, 0x78, 0x2e, 0x69, 0x36,
    0x34, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a,
    0x20, 0x22, 0x49, 0x36, 0x34, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65,
    0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x32, 0x2c, 0x0a, 0x20, 0x20, 0x20, 0x32, 0x0a,
    0x20, 0x20, 0x5d, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66,
    0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x30, 0x2c, 0x0a, 0x20,
    0x20, 0x20, 0x33, 0x32, 0x0a, 0x20, 0x20, 0x5d, 0x0a, 0x20, 0x7d, 0x2c, 0x0a, 0x20, 0x22, 0x61,
    0x2e, 0x66, 0x31, 0x36, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x74, 0x79, 0x70,
    0x65, 0x22, 0x3a, 0x20, 0x22, 0x46, 0x31, 0x36, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x73, 0x68,
    0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x37, 0x0a, 0x20, 0x20, 0x5d,
    0x2c, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74,
    0x73, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x33, 0x32, 0x2c, 0x0a, 0x20, 0x20, 0x20,
    0x34, 0x36, 0x0a, 0x20, 0x20, 0x5d, 0x0a, 0x20, 0x7d, 0x2c, 0x0a, 0x20, 0x22, 0x62, 0x2e, 0x62,
    0x66, 0x31, 0x36, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65,
    0x22, 0x3a, 0x20, 0x22, 0x42, 0x46, 0x31, 0x36, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x73, 0x68,
    0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x35, 0x0a, 0x20, 0x20, 0x5d,
    0x2c, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74,
    0x73, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x34, 0x36, 0x2c, 0x0a, 0x20, 0x20, 0x20,
    0x35, 0x36, 0x0a, 0x20, 0x20, 0x5d, 0x0a, 0x20, 0x7d, 0x2c, 0x0a, 0x20, 0x22, 0x63, 0x2e, 0x66,
    0x33, 0x32, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22,
    0x3a, 0x20, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x73, 0x68, 0x61, 0x70,
    0x65, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x32, 0x2c, 0x0a, 0x20, 0x20, 0x20, 0x33,
    0x0a, 0x20, 0x20, 0x5d, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66,
    0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x35, 0x36, 0x2c,
    0x0a, 0x20, 0x20, 0x20, 0x38, 0x30, 0x0a, 0x20, 0x20, 0x5d, 0x0a, 0x20, 0x7d, 0x2c, 0x0a, 0x20,
    0x22, 0x64, 0x2e, 0x66, 0x36, 0x34, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x74,
    0x79, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x22, 0x46, 0x36, 0x34, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22,
    0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x32, 0x0a, 0x20,
    0x20, 0x5d, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73,
    0x65, 0x74, 0x73, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x38, 0x30, 0x2c, 0x0a, 0x20,
    0x20, 0x20, 0x39, 0x36, 0x0a, 0x20, 0x20, 0x5d, 0x0a, 0x20, 0x7d, 0x2c, 0x0a, 0x20, 0x22, 0x65,
    0x2e, 0x69, 0x33, 0x32, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x74, 0x79, 0x70,
    0x65, 0x22, 0x3a, 0x20, 0x22, 0x49, 0x33, 0x32, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x73, 0x68,
    0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x33, 0x0a, 0x20, 0x20, 0x5d,
    0x2c, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74,
    0x73, 0x22, 0x3a, 0x20, 0x5b, 0x0a, 0x20, 0x20, 0x20, 0x39, 0x36, 0x2c, 0x0a, 0x20, 0x20, 0x20,
    0x31, 0x30, 0x38, 0x0a, 0x20, 0x20, 0x5d, 0x0a, 0x20, 0x7d, 0x2c, 0x0a, 0x20, 0x22, 0x73, 0x2e,
    0x73, 0x63, 0x61, 0x6c, 0x61, 0x72, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x64, 0x74,
    0x79, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22,
    0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x20, 0x5b, 0x5d, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x64,
    0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x20, 0x5b, 0x0a,
    0x20, 0x20, 0x20, 0x31, 0x30, 0x38, 0x2c, 0x0a, 0x20, 0x20, 0x20, 0x31, 0x31, 0x32, 0x0a, 0x20,
    0x20, 0x5d, 0x0a, 0x20, 0x7d, 0x2c, 0x0a, 0x20, 0x22, 0x5f, 0x5f, 0x6d, 0x65, 0x74, 0x61, 0x64,
    0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a, 0x20, 0x7b, 0x0a, 0x20, 0x20, 0x22, 0x66, 0x6f, 0x72,
    0x6d, 0x61, 0x74, 0x22, 0x3a, 0x20, 0x22, 0x70, 0x74, 0x22, 0x2c, 0x0a, 0x20, 0x20, 0x22, 0x6e,
    0x6f, 0x74, 0x65, 0x22, 0x3a, 0x20, 0x22, 0x63, 0x61, 0x66, 0x5c, 0x75, 0x30, 0x30, 0x65, 0x39,
    0x22, 0x0a, 0x20, 0x7d, 0x0a, 0x7d, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x07, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xff, 0xff, 0xff, 0xff, 0x0c, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0x00, 0xc1, 0xff, 0x7b, 0x00, 0x04, 0x01, 0x00,
    0x00, 0x7c, 0x55, 0x35, 0x80, 0x3f, 0x49, 0xc0, 0x00, 0x3c, 0x00, 0x80, 0x7f, 0x7f, 0x00, 0x00,
    0x00, 0x3f, 0x00, 0x00, 0xa0, 0xbf, 0x82, 0xa8, 0xfb, 0x37, 0xca, 0xf2, 0x49, 0x71, 0x00, 0x00,
    0xe0, 0xc0, 0x00, 0x00, 0x00, 0x41, 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0x3f, 0x59, 0xf3,
    0xf8, 0xc2, 0x1f, 0x6e, 0xa5, 0x81, 0x01, 0x00, 0x00, 0x00, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x7f, 0x00, 0x00, 0x28, 0x42,
};

std::string PythonFileBytes() {
  return std::string(reinterpret_cast<const char*>(kPythonFile), sizeof(kPythonFile));
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / name).string();
}

// A file of `header` (JSON text, unpadded) followed by `data_size` zero bytes.
std::string MakeFile(const std::string& header, size_t data_size) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_size, '\0');
}

TEST(SafetensorsTest, RoundTrip) {
  const std::vector<float> w = {1.0f, -2.0f, 0.5f, 3.25f, -0.125f, 1e-3f};
  const std::vector<int32_t> ids = {7, -1, 2147483647, -2147483647 - 1};
  const std::vector<float> halves = {1.0f, -0.333251953125f, 65504.0f, 0.0f};
  const std::vector<std::byte> bf16 = EncodeBf16(halves);
  const std::vector<std::byte> f16 = EncodeF16(halves);
  const std::vector<float> scalar = {2.5f};
  const std::vector<float> empty;
  const std::vector<SafetensorsTensorView> tensors = {
      SafetensorsTensorView::F32("h.0.attn.c_attn.weight", {2, 3}, w),
      SafetensorsTensorView::I32("ids", {2, 2}, ids),
      {"half.bf16", SafetensorsDtype::kBF16, {4}, bf16},
      {"half.f16", SafetensorsDtype::kF16, {2, 2}, f16},
      SafetensorsTensorView::F32("loss", {}, scalar),
      SafetensorsTensorView::F32("empty", {0, 3}, empty),
  };
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"n_layer", "2"}};
  const std::string path = TempPath("roundtrip.safetensors");
  ASSERT_TRUE(WriteSafetensors(path, tensors, metadata).ok());

  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->metadata(), metadata);
  EXPECT_EQ(file->names().size(), tensors.size());

  // Header padded to 8 bytes with spaces; every tensor aligned to its element size.
  absl::StatusOr<std::string> raw = ReadFileToString(path);
  ASSERT_TRUE(raw.ok());
  uint64_t header_len;
  std::memcpy(&header_len, raw->data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  for (const SafetensorsTensorView& t : tensors) {
    const SafetensorsTensorInfo* info = file->Find(t.name);
    ASSERT_NE(info, nullptr) << t.name;
    EXPECT_EQ(info->dtype, t.dtype) << t.name;
    EXPECT_EQ(info->shape, t.shape) << t.name;
    ASSERT_EQ(info->data.size(), t.data.size()) << t.name;
    EXPECT_TRUE(std::equal(t.data.begin(), t.data.end(), info->data.begin())) << t.name;
    // Offsets within the data buffer, as in the file (the mapping's data is elsewhere).
    const size_t offset = info->data.data() - file->Find(file->names()[0])->data.data();
    EXPECT_EQ(offset % SafetensorsDtypeSize(t.dtype), 0u) << t.name;
  }
  // F32 first, by name; "empty" (0 bytes at offset 0) sorts before "h.0..." at the same offset.
  EXPECT_EQ(file->names()[0], "empty");
  EXPECT_EQ(file->names()[1], "h.0.attn.c_attn.weight");
  // The header is JSON followed only by space padding.
  const std::string header = raw->substr(8, header_len);
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1).back(), '}');

  absl::StatusOr<std::vector<float>> wr = file->ReadFloat("h.0.attn.c_attn.weight");
  ASSERT_TRUE(wr.ok());
  EXPECT_EQ(*wr, w);
  absl::StatusOr<std::vector<int32_t>> idr = file->ReadInt32("ids");
  ASSERT_TRUE(idr.ok());
  EXPECT_EQ(*idr, ids);
  // These values are exact in both 16-bit formats except -1/3 in BF16.
  absl::StatusOr<std::vector<float>> f16r = file->ReadFloat("half.f16");
  ASSERT_TRUE(f16r.ok());
  EXPECT_EQ(*f16r, halves);
  absl::StatusOr<std::vector<float>> bf16r = file->ReadFloat("half.bf16");
  ASSERT_TRUE(bf16r.ok());
  EXPECT_EQ((*bf16r)[0], 1.0f);
  EXPECT_NEAR((*bf16r)[1], -0.333251953125f, 1e-3f);
  EXPECT_EQ((*bf16r)[2], 65536.0f);  // 65504 rounds to 2^16 in BF16's 8-bit mantissa
  absl::StatusOr<std::vector<float>> sr = file->ReadFloat("loss");
  ASSERT_TRUE(sr.ok());
  EXPECT_EQ(*sr, scalar);
  EXPECT_EQ(file->Find("loss")->numel, 1);
  EXPECT_EQ(file->Find("empty")->numel, 0);

  // Same bytes through FromBytes; serialisation is deterministic.
  absl::StatusOr<std::string> again = SerializeSafetensors(tensors, metadata);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *raw);
  EXPECT_TRUE(SafetensorsFile::FromBytes(*again, "mem").ok());
}

TEST(SafetensorsTest, ReadsFileWrittenByPython) {
  const std::string path = TempPath("python.safetensors");
  ASSERT_TRUE(WriteFileAtomic(path, PythonFileBytes()).ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();

  EXPECT_EQ(file->names(), (std::vector<std::string>{"x.i64", "a.f16", "b.bf16", "c.f32", "d.f64",
                                                     "e.i32", "s.scalar"}));
  EXPECT_EQ(file->metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"note", "caf\xc3\xa9"}}));
  EXPECT_EQ(file->Find("c.f32")->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(file->Find("s.scalar")->shape, std::vector<int64_t>{});
  EXPECT_EQ(file->Find("b.bf16")->dtype, SafetensorsDtype::kBF16);
  EXPECT_EQ(file->Find("nope"), nullptr);

  absl::StatusOr<std::vector<float>> f16 = file->ReadFloat("a.f16");
  ASSERT_TRUE(f16.ok());
  EXPECT_EQ(*f16, (std::vector<float>{1.0f, -2.5f, 65504.0f, 0x1p-14f, 0x1p-24f,
                                      std::numeric_limits<float>::infinity(), 0.333251953125f}));
  absl::StatusOr<std::vector<float>> bf16 = file->ReadFloat("b.bf16");
  ASSERT_TRUE(bf16.ok());
  EXPECT_EQ(*bf16, (std::vector<float>{1.0f, -3.140625f, 0x1p-7f, -0.0f, 0x1.FEp127f}));
  EXPECT_TRUE(std::signbit((*bf16)[3]));
  absl::StatusOr<std::vector<float>> f32 = file->ReadFloat("c.f32");
  ASSERT_TRUE(f32.ok());
  EXPECT_EQ(*f32, (std::vector<float>{0.5f, -1.25f, 3.0e-5f, 1.0e30f, -7.0f, 8.0f}));
  absl::StatusOr<std::vector<float>> f64 = file->ReadFloat("d.f64");
  ASSERT_TRUE(f64.ok());
  EXPECT_EQ(*f64, (std::vector<float>{0.1f, -0.0f}));
  absl::StatusOr<std::vector<int32_t>> i32 = file->ReadInt32("e.i32");
  ASSERT_TRUE(i32.ok());
  EXPECT_EQ(*i32, (std::vector<int32_t>{1, -2, 2147483647}));
  absl::StatusOr<std::vector<int32_t>> i64 = file->ReadInt32("x.i64");
  ASSERT_TRUE(i64.ok());
  EXPECT_EQ(*i64, (std::vector<int32_t>{-5, 7, -2147483647 - 1, 12}));
  absl::StatusOr<std::vector<float>> scalar = file->ReadFloat("s.scalar");
  ASSERT_TRUE(scalar.ok());
  EXPECT_EQ(*scalar, std::vector<float>{42.0f});

  // Wrong-type reads and missing tensors name the file and the tensor.
  absl::StatusOr<std::vector<float>> bad = file->ReadFloat("e.i32");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(Contains(std::string(bad.status().message()), path));
  EXPECT_TRUE(Contains(std::string(bad.status().message()), "e.i32"));
  absl::StatusOr<std::vector<int32_t>> bad_int = file->ReadInt32("c.f32");
  EXPECT_FALSE(bad_int.ok());
  absl::StatusOr<std::vector<float>> missing = file->ReadFloat("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(missing.status().message()), path));
  EXPECT_TRUE(Contains(std::string(missing.status().message()), "nope"));
}

TEST(SafetensorsTest, Int64OutOfInt32RangeIsRefused) {
  const std::vector<int64_t> v = {1, int64_t{1} << 40};
  const std::vector<SafetensorsTensorView> tensors = {
      {"big", SafetensorsDtype::kI64, {2}, std::as_bytes(std::span<const int64_t>(v))}};
  absl::StatusOr<std::string> bytes = SerializeSafetensors(tensors, {});
  ASSERT_TRUE(bytes.ok());
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::FromBytes(*bytes, "big.safetensors");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<std::vector<int32_t>> r = file->ReadInt32("big");
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(Contains(std::string(r.status().message()), "does not fit in int32"));
}

TEST(SafetensorsTest, HalfConversions) {
  // Every F16 and BF16 bit pattern survives decode + encode (NaNs stay NaN).
  for (uint32_t b = 0; b < 65536; ++b) {
    const uint16_t bits = static_cast<uint16_t>(b);
    const float f = F16ToFloat(bits);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(F16ToFloat(FloatToF16(f)))) << b;
    } else {
      EXPECT_EQ(FloatToF16(f), bits) << b;
    }
    const float g = Bf16ToFloat(bits);
    if (std::isnan(g)) {
      EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(g)))) << b;
    } else {
      EXPECT_EQ(FloatToBf16(g), bits) << b;
    }
  }
  // Round to nearest, ties to even.
  EXPECT_EQ(F16ToFloat(FloatToF16(1.0f + 0x1p-11f)), 1.0f);
  EXPECT_EQ(F16ToFloat(FloatToF16(1.0f + 3 * 0x1p-11f)), 1.0f + 0x1p-9f);
  EXPECT_EQ(F16ToFloat(FloatToF16(1.0f + 0x1.2p-11f)), 1.0f + 0x1p-10f);
  EXPECT_EQ(F16ToFloat(FloatToF16(65519.0f)), 65504.0f);
  EXPECT_EQ(F16ToFloat(FloatToF16(65520.0f)), std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToFloat(FloatToF16(-1e10f)), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(F16ToFloat(FloatToF16(0x1p-25f)), 0.0f);              // tie to even (zero)
  EXPECT_EQ(F16ToFloat(FloatToF16(0x1.01p-25f)), 0x1p-24f);       // above the tie
  EXPECT_EQ(F16ToFloat(FloatToF16(3 * 0x1p-25f)), 2 * 0x1p-24f);  // tie to even
  EXPECT_EQ(F16ToFloat(FloatToF16(0x1.ffcp-15f)), 0x1p-14f);      // subnormal rounds to normal
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + 0x1p-8f)), 1.0f);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(1.0f + 3 * 0x1p-8f)), 1.0f + 0x1p-6f);
  EXPECT_EQ(Bf16ToFloat(FloatToBf16(std::numeric_limits<float>::max())),
            std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(Bf16ToFloat(FloatToBf16(std::numeric_limits<float>::quiet_NaN()))));
}

struct Corruption {
  const char* name;
  std::string bytes;
  const char* expected;  // a substring of the message
  const char* tensor;    // the tensor the message must name, or null
};

TEST(SafetensorsTest, CorruptFilesAreRefusedNamingThePath) {
  const std::string ok_entry = R"("w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]})";
  std::string huge_len(8, '\0');
  const uint64_t big = 1000;
  std::memcpy(huge_len.data(), &big, 8);
  huge_len += "{}";
  const std::vector<Corruption> cases = {
      {"short", std::string(5, '\0'), "too short", nullptr},
      {"header_too_big", huge_len, "header length 1000", nullptr},
      {"bad_json", MakeFile(R"({"w": {"dtype": "F32",)", 16), "not valid JSON", nullptr},
      {"not_object", MakeFile("[1, 2]", 0), "not a JSON object", nullptr},
      {"offsets_past_end",
       MakeFile(R"({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}})", 12),
       "out of range", "w"},
      {"offsets_reversed",
       MakeFile(R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 4]}})", 16),
       "out of range", "w"},
      {"shape_mismatch",
       MakeFile(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}})", 16),
       "needs 24 bytes", "w"},
      {"dtype_size_mismatch",
       MakeFile(R"({"w": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 16]}})", 16),
       "needs 8 bytes", "w"},
      {"unknown_dtype",
       MakeFile(R"({"w": {"dtype": "F31", "shape": [2, 2], "data_offsets": [0, 16]}})", 16),
       "unknown safetensors dtype", "w"},
      {"negative_dim",
       MakeFile(R"({"w": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}})", 16),
       "non-negative", "w"},
      {"huge_shape",
       MakeFile(R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296],)"
                R"( "data_offsets": [0, 0]}})",
                16),
       "more than 2^64", "w"},
      {"missing_offsets", MakeFile(R"({"w": {"dtype": "F32", "shape": [2, 2]}})", 16),
       "data_offsets", "w"},
      {"overlap",
       MakeFile(absl::StrCat("{", ok_entry,
                             R"(, "v": {"dtype": "F32", "shape": [2], "data_offsets": [12, 20]}})"),
                20),
       "overlap", "v"},
      {"duplicate", MakeFile(absl::StrCat("{", ok_entry, ", ", ok_entry, "}"), 16),
       "more than once", "w"},
      {"metadata_not_string",
       MakeFile(absl::StrCat("{", ok_entry, R"(, "__metadata__": {"n": 2}})"), 16), "not a string",
       nullptr},
  };
  for (const Corruption& c : cases) {
    const std::string path = TempPath(absl::StrCat("corrupt_", c.name, ".safetensors"));
    ASSERT_TRUE(WriteFileAtomic(path, c.bytes).ok()) << c.name;
    absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
    ASSERT_FALSE(file.ok()) << c.name;
    const std::string message(file.status().message());
    EXPECT_EQ(file.status().code(), absl::StatusCode::kInvalidArgument)
        << c.name << ": " << message;
    EXPECT_TRUE(Contains(message, path)) << c.name;
    EXPECT_TRUE(Contains(message, c.expected)) << c.name;
    if (c.tensor != nullptr) {
      EXPECT_TRUE(Contains(message, absl::StrCat("tensor \"", c.tensor, "\""))) << c.name;
    }
  }
  // The same entries are fine when the data is there and nothing overlaps.
  EXPECT_TRUE(
      SafetensorsFile::FromBytes(MakeFile(absl::StrCat("{", ok_entry, "}"), 16), "ok").ok());
}

TEST(SafetensorsTest, MissingFileIsNotFound) {
  const std::string path = TempPath("does_not_exist.safetensors");
  absl::StatusOr<SafetensorsFile> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(std::string(file.status().message()), path));
}

TEST(SafetensorsTest, WriterRefusesBadInput) {
  const std::vector<float> four(4, 1.0f);
  const std::vector<float> three(3, 1.0f);
  auto refused = [](std::vector<SafetensorsTensorView> tensors, const char* expected) {
    absl::Status status = WriteSafetensors(TempPath("refused.safetensors"), tensors);
    EXPECT_FALSE(status.ok()) << expected;
    EXPECT_TRUE(Contains(std::string(status.message()), expected));
    EXPECT_TRUE(Contains(std::string(status.message()), "refused.safetensors"));
  };
  refused({SafetensorsTensorView::F32("w", {2, 2}, three)}, "needs 16 bytes");
  refused(
      {SafetensorsTensorView::F32("w", {2, 2}, four), SafetensorsTensorView::F32("w", {4}, four)},
      "given twice");
  refused({SafetensorsTensorView::F32("__metadata__", {4}, four)}, "invalid tensor name");
  refused({SafetensorsTensorView::F32("", {4}, four)}, "invalid tensor name");
  refused({SafetensorsTensorView::F32("bad\xff", {4}, four)}, "invalid tensor name");
  refused({SafetensorsTensorView::F32("w", {-1, -4}, four)}, "negative dimension");
  absl::Status meta =
      WriteSafetensors(TempPath("refused.safetensors"),
                       {{SafetensorsTensorView::F32("w", {4}, four)}}, {{"k", "\xc3"}});
  EXPECT_FALSE(meta.ok());
}

}  // namespace
}  // namespace spillway
