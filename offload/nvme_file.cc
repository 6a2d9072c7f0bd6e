#include "offload/nvme_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "core/status.h"

namespace spillway {
namespace {

std::string GiB(uint64_t bytes) { return absl::StrFormat("%.2f GiB", bytes / double(1 << 30)); }

// The errors of a directory that exists but where we cannot create a file.
absl::Status NotWritable(const std::string& dir, const std::string& path, int err) {
  return absl::PermissionDeniedError(
      absl::StrCat("nvme_path ", dir, " is not writable (creating ", path, ": ", std::strerror(err),
                   "): set nvme_path to a writable directory on an NVMe disk"));
}

absl::Status CheckDirectory(const std::string& dir) {
  if (dir.empty()) {
    return absl::InvalidArgumentError("nvme_path is empty: set it to a directory on an NVMe disk");
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat("nvme_path ", dir, " does not exist (",
                                              std::strerror(err), "): create it (mkdir -p ", dir,
                                              ") or set nvme_path to a directory that exists"));
    }
    return PosixError(err, absl::StrCat("nvme_path ", dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::NotFoundError(
        absl::StrCat("nvme_path ", dir, " is not a directory: set nvme_path to a directory"));
  }
  struct statvfs vfs;
  if (statvfs(dir.c_str(), &vfs) != 0) {
    return PosixError(errno, absl::StrCat("nvme_path ", dir, ": statvfs"));
  }
  if (vfs.f_flag & ST_RDONLY) {
    return absl::PermissionDeniedError(absl::StrCat(
        "nvme_path ", dir,
        " is on a read-only filesystem: set nvme_path to a writable directory on an NVMe disk"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> FreeBytes(const std::string& dir) {
  struct statvfs vfs;
  if (statvfs(dir.c_str(), &vfs) != 0) {
    return PosixError(errno, absl::StrCat("nvme_path ", dir, ": statvfs"));
  }
  return uint64_t{vfs.f_bavail} * vfs.f_frsize;
}

absl::Status NoSpace(const std::string& dir, const std::string& path, uint64_t needed,
                     uint64_t free) {
  return absl::ResourceExhaustedError(
      absl::StrCat("nvme_path ", dir, ": preallocating ", path, " needs ", needed, " bytes (",
                   GiB(needed), ") but the filesystem has ", free, " bytes (", GiB(free),
                   ") free: free space there or set nvme_path to a larger disk"));
}

// Reads one aligned block with O_DIRECT; false if the filesystem refuses direct I/O (EINVAL).
absl::StatusOr<bool> DirectReadWorks(int fd, const std::string& path) {
  void* block = std::aligned_alloc(kNvmeAlignment, kNvmeAlignment);
  if (block == nullptr) return absl::ResourceExhaustedError("cannot allocate 4 KiB");
  ssize_t n;
  do {
    n = pread(fd, block, kNvmeAlignment, 0);
  } while (n < 0 && errno == EINTR);
  const int err = errno;
  std::free(block);
  if (n >= 0) return true;
  if (err == EINVAL) return false;
  return PosixError(err, absl::StrCat("reading ", path, " with O_DIRECT"));
}

// Closes and removes the file unless released.
class FileGuard {
 public:
  FileGuard(int fd, const std::string& path) : fd_(fd), path_(path) {}
  ~FileGuard() {
    if (fd_ < 0) return;
    close(fd_);
    unlink(path_.c_str());
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
  const std::string& path_;
};

}  // namespace

absl::Status CheckNvmePath(const std::string& nvme_path) {
  SPW_RETURN_IF_ERROR(CheckDirectory(nvme_path));
  const std::string probe = absl::StrCat(nvme_path, "/.spillway_probe.", getpid());
  const int fd = open(probe.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return NotWritable(nvme_path, probe, errno);
  close(fd);
  if (unlink(probe.c_str()) != 0) return PosixError(errno, absl::StrCat("removing ", probe));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NvmeFile>> NvmeFile::Create(const std::string& nvme_path,
                                                           absl::string_view name, uint64_t bytes,
                                                           const WarningSink& warn) {
  SPW_RETURN_IF_ERROR(CheckDirectory(nvme_path));
  if (bytes == 0) {
    return absl::InvalidArgumentError(absl::StrCat("NVMe file ", name, " of 0 bytes"));
  }
  const std::string path = absl::StrCat(nvme_path, "/spillway.", getpid(), ".", name);
  const uint64_t size = RoundUpToNvmeAlignment(bytes);

  bool direct = true;
  const int flags = O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC;
  int fd = open(path.c_str(), flags | O_DIRECT, 0600);
  if (fd < 0 && errno == EINVAL) {
    direct = false;
    fd = open(path.c_str(), flags, 0600);
  }
  if (fd < 0) {
    const int err = errno;
    if (err == EACCES || err == EPERM || err == EROFS || err == ENOENT) {
      return NotWritable(nvme_path, path, err);
    }
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat(path, " exists already: remove it (a stale file of an earlier run)"));
    }
    return PosixError(err, absl::StrCat("creating ", path));
  }
  FileGuard guard(fd, path);

  SPW_ASSIGN_OR_RETURN(const uint64_t free, FreeBytes(nvme_path));
  if (size > free) return NoSpace(nvme_path, path, size, free);
  if (fallocate(fd, 0, 0, static_cast<off_t>(size)) != 0) {
    const int err = errno;
    if (err == ENOSPC || err == EDQUOT) {
      SPW_ASSIGN_OR_RETURN(const uint64_t now_free, FreeBytes(nvme_path));
      return NoSpace(nvme_path, path, size, now_free);
    }
    if (err != EOPNOTSUPP) {
      return PosixError(err, absl::StrCat("preallocating ", size, " bytes for ", path));
    }
    if (ftruncate(fd, static_cast<off_t>(size)) != 0) {
      return PosixError(errno, absl::StrCat("sizing ", path, " to ", size, " bytes"));
    }
    warn(absl::StrCat("nvme_path ", nvme_path, " does not support fallocate: ", path,
                      " is sparse and may run out of space later"));
  }

  if (direct) {
    SPW_ASSIGN_OR_RETURN(direct, DirectReadWorks(fd, path));
    if (!direct && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_DIRECT) != 0) {
      return PosixError(errno, absl::StrCat("clearing O_DIRECT on ", path));
    }
  }
  if (!direct) {
    warn(absl::StrCat("nvme_path ", nvme_path, " does not support O_DIRECT (tmpfs?): ", path,
                      " uses buffered I/O through the page cache"));
  }
  return std::unique_ptr<NvmeFile>(new NvmeFile(guard.release(), path, size, direct));
}

NvmeFile::~NvmeFile() {
  close(fd_);
  unlink(path_.c_str());
}

}  // namespace spillway
