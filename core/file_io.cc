#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "core/status.h"

namespace spillway {
namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports the error close() returned (delayed write errors surface here).
  absl::Status Close(const std::string& path) {
    int fd = fd_;
    fd_ = -1;
    if (close(fd) != 0) return PosixError(errno, absl::StrCat("close ", path));
    return absl::OkStatus();
  }

 private:
  int fd_;
};

}  // namespace

absl::StatusOr<std::string> ReadFileToString(const std::string& path) {
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return PosixError(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return PosixError(errno, absl::StrCat("stat ", path));
  if (S_ISDIR(st.st_mode)) return absl::InvalidArgumentError(absl::StrCat(path, " is a directory"));
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = read(fd.get(), data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return PosixError(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  data.resize(done);
  return data;
}

absl::Status WriteFileAtomic(const std::string& path, std::span<const std::byte> data) {
  const std::string tmp = path + ".tmp";
  {
    Fd fd(open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return PosixError(errno, absl::StrCat("create ", tmp));
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = write(fd.get(), data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        absl::Status status = PosixError(errno, absl::StrCat("write ", tmp));
        unlink(tmp.c_str());
        return status;
      }
      done += static_cast<size_t>(n);
    }
    if (fsync(fd.get()) != 0) {
      absl::Status status = PosixError(errno, absl::StrCat("fsync ", tmp));
      unlink(tmp.c_str());
      return status;
    }
    absl::Status closed = fd.Close(tmp);
    if (!closed.ok()) {
      unlink(tmp.c_str());
      return closed;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    absl::Status status = PosixError(errno, absl::StrCat("rename ", tmp, " to ", path));
    unlink(tmp.c_str());
    return status;
  }
  std::string dir = std::filesystem::path(path).parent_path().string();
  return FsyncDirectory(dir.empty() ? "." : dir);
}

absl::Status WriteFileAtomic(const std::string& path, absl::string_view data) {
  return WriteFileAtomic(path, std::as_bytes(std::span(data.data(), data.size())));
}

absl::Status FsyncDirectory(const std::string& dir) {
  Fd fd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return PosixError(errno, absl::StrCat("open directory ", dir));
  if (fsync(fd.get()) != 0) return PosixError(errno, absl::StrCat("fsync directory ", dir));
  return absl::OkStatus();
}

absl::Status MakeDirectories(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return PosixError(ec.value(), absl::StrCat("create directory ", dir));
  return absl::OkStatus();
}

uint32_t Crc32(std::span<const std::byte> data, uint32_t crc) {
  // zlib takes a uInt length; feed it in chunks so buffers over 4 GiB are handled.
  constexpr size_t kChunk = size_t{1} << 30;
  uLong value = crc;
  for (size_t off = 0; off < data.size(); off += kChunk) {
    size_t n = std::min(kChunk, data.size() - off);
    value = crc32(value, reinterpret_cast<const Bytef*>(data.data() + off), static_cast<uInt>(n));
  }
  return static_cast<uint32_t>(value);
}

}  // namespace spillway
