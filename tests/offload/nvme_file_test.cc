#include "offload/nvme_file.h"

#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/offload/offload_test_util.h"

namespace spillway::testing {
namespace {

using ::testing::HasSubstr;

bool Exists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

TEST(NvmeFileTest, PreallocatesRoundedSizeAndRemovesOnClose) {
  ScratchDir dir;
  std::string path;
  {
    auto file = NvmeFile::Create(dir.path(), "params", 5000);
    ASSERT_TRUE(file.ok()) << file.status();
    path = (*file)->path();
    EXPECT_EQ((*file)->size(), 8192u);
    EXPECT_EQ(path.rfind(dir.path() + "/spillway.", 0), 0u) << path;
    struct stat st;
    ASSERT_EQ(stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_size, 8192);
    EXPECT_GE(st.st_blocks * 512, 8192) << "fallocate reserves the blocks";
  }
  EXPECT_FALSE(Exists(path)) << "removed when closed";
}

TEST(NvmeFileTest, MissingDirectoryIsNotFound) {
  ScratchDir dir;
  const std::string missing = dir.path() + "/no/such/dir";
  auto file = NvmeFile::Create(missing, "m", 4096);
  ASSERT_EQ(file.status().code(), absl::StatusCode::kNotFound) << file.status();
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(missing));
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("mkdir -p"));
  EXPECT_EQ(CheckNvmePath(missing).code(), absl::StatusCode::kNotFound);
}

TEST(NvmeFileTest, PathThroughARegularFileIsNotFound) {
  ScratchDir dir;
  const std::string regular = dir.path() + "/regular";
  std::ofstream(regular) << "x";
  const std::string under = regular + "/sub";
  auto file = NvmeFile::Create(under, "m", 4096);
  ASSERT_EQ(file.status().code(), absl::StatusCode::kNotFound) << file.status();
  EXPECT_THAT(std::string(file.status().message()), HasSubstr(under));

  auto not_dir = NvmeFile::Create(regular, "m", 4096);
  ASSERT_FALSE(not_dir.ok());
  EXPECT_THAT(std::string(not_dir.status().message()), HasSubstr("is not a directory"));
}

// Tests run as root, which chmod does not stop; nothing can be created in /proc.
TEST(NvmeFileTest, UnwritableDirectoryIsPermissionDenied) {
  auto file = NvmeFile::Create("/proc", "m", 4096);
  ASSERT_EQ(file.status().code(), absl::StatusCode::kPermissionDenied) << file.status();
  EXPECT_THAT(std::string(file.status().message()), HasSubstr("nvme_path /proc is not writable"));
  const absl::Status check = CheckNvmePath("/proc");
  EXPECT_EQ(check.code(), absl::StatusCode::kPermissionDenied) << check;
}

TEST(NvmeFileTest, EmptyPathIsInvalid) {
  EXPECT_EQ(NvmeFile::Create("", "m", 4096).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NvmeFile::Create("/tmp", "m", 0).status().code(), absl::StatusCode::kInvalidArgument);
}

// More than the free space is refused from statvfs, before fallocate touches the disk.
TEST(NvmeFileTest, NotEnoughSpaceSaysNeededAndFree) {
  ScratchDir dir;
  struct statvfs vfs;
  ASSERT_EQ(statvfs(dir.path().c_str(), &vfs), 0);
  const uint64_t free = uint64_t{vfs.f_bavail} * vfs.f_frsize;
  const uint64_t needed = free + (uint64_t{1} << 40);
  auto file = NvmeFile::Create(dir.path(), "huge", needed);
  ASSERT_EQ(file.status().code(), absl::StatusCode::kResourceExhausted) << file.status();
  const std::string message(file.status().message());
  EXPECT_THAT(message, HasSubstr(dir.path()));
  EXPECT_THAT(message, HasSubstr("needs " + std::to_string(needed) + " bytes"));
  EXPECT_THAT(message, HasSubstr(") free"));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the file is removed again";
}

// tmpfs accepts O_DIRECT on recent kernels and refuses it on older ones: either way the file
// works, and buffered I/O comes with one warning.
TEST(NvmeFileTest, TmpfsWorksDirectOrWithAWarning) {
  struct statfs fs;
  if (statfs("/dev/shm", &fs) != 0 || fs.f_type != 0x01021994 /* TMPFS_MAGIC */) {
    GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  }
  WarningLog log;
  auto file = NvmeFile::Create("/dev/shm", "tmpfs_test", 4096, log.sink());
  ASSERT_TRUE(file.ok()) << file.status();
  if ((*file)->direct()) {
    EXPECT_TRUE(log.lines.empty());
  } else {
    ASSERT_EQ(log.lines.size(), 1u);
    EXPECT_THAT(log.lines[0], HasSubstr("does not support O_DIRECT"));
  }
}

}  // namespace
}  // namespace spillway::testing
