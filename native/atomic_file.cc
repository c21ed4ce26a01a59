#include "atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <vector>

#include "errors.h"

namespace bp {
namespace {

// File-internal helpers used before their definitions below.
// "<dir of path>/.tmp-<pid>-<seq>-<basename of path>": a fresh temporary name beside `path`.
std::string temp_sibling(const std::string& path);
// mkdir -p, with coded errors (a file where a directory is needed is E_WRITE_FAILED).
void make_dirs(const std::string& dir);
void fsync_dir(const std::string& dir);
// Removes ".tmp-<pid>-..." entries of `dir` whose process is gone (left by a crash or a kill).
void remove_stale_temps(const std::string& dir);


std::atomic<uint64_t> g_temp_seq{0};

std::string parent_of(const std::string& path) {
  const auto i = path.find_last_of('/');
  if (i == std::string::npos) return ".";
  return i == 0 ? "/" : path.substr(0, i);
}

std::string base_of(const std::string& path) {
  const auto i = path.find_last_of('/');
  return i == std::string::npos ? path : path.substr(i + 1);
}


// A ".tmp-<pid>-" entry whose process no longer exists (EPERM means it exists under another user).
bool is_stale_temp(const std::string& name) {
  if (name.rfind(".tmp-", 0) != 0) return false;
  const char* digits = name.c_str() + 5;
  char* end = nullptr;
  const long pid = std::strtol(digits, &end, 10);
  if (end == digits || *end != '-' || pid <= 0) return false;
  const char* seq = end + 1;
  std::strtoull(seq, &end, 10);
  if (end == seq || *end != '-') return false;  // ".tmp-<pid>-<seq>-<name>" only: not another tool's file
  return ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) return names;
  while (const dirent* e = ::readdir(d.get())) {
    const std::string n = e->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  return names;
}

// Best effort: what is left is a ".tmp-" entry, removed by the next save once this process is gone.
void remove_quietly(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    // Linux writes at most 2 GiB - 4 KiB at once; a shorter write (a full disk) is retried, and its retry
    // reports the error.
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t(1) << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      throw_write_error("cannot write", path, errno);
    }
    if (w == 0) throw_write_error("cannot write", path, ENOSPC);
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Swaps two paths atomically; false (errno set) where the system or file system cannot.
bool swap_paths(const std::string& a, const std::string& b) {
#if defined(__linux__) && defined(RENAME_EXCHANGE)
  return ::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0;
#elif defined(__APPLE__) && defined(RENAME_SWAP)
  return ::renamex_np(a.c_str(), b.c_str(), RENAME_SWAP) == 0;
#else
  (void)a;
  (void)b;
  errno = ENOSYS;
  return false;
#endif
}

// Errors of swap_paths() that mean "not possible here" (fall back to file by file), not "failed".
bool exchange_unsupported(int err) {
  return err == EINVAL || err == ENOSYS || err == ENOTSUP || err == EXDEV || err == EBUSY || err == EPERM;
}

// Recreates `src` at `dst` with hard links (directories are made, their entries linked). False when this
// file system refuses (then the caller falls back); a full disk is an error.
bool link_tree(const std::string& src, const std::string& dst) {
  struct stat st;
  if (::lstat(src.c_str(), &st) != 0) return errno == ENOENT;  // gone meanwhile: nothing to carry
  if (!S_ISDIR(st.st_mode)) {
    // link() does not follow a symbolic link on Linux: the link itself is carried.
    if (::link(src.c_str(), dst.c_str()) == 0) return true;
    if (errno == ENOSPC || errno == EDQUOT) throw_write_error("cannot link", dst, errno);
    return false;
  }
  if (::mkdir(dst.c_str(), st.st_mode & 07777) != 0) {
    if (errno == ENOSPC || errno == EDQUOT) throw_write_error("cannot create directory", dst, errno);
    return false;
  }
  for (const auto& n : list_dir(src))
    if (!link_tree(join_path(src, n), join_path(dst, n))) return false;
  fsync_dir(dst);
  return true;
}

bool holds_cwd(const std::string& dir) {
  std::unique_ptr<char, void (*)(void*)> cwd(::getcwd(nullptr, 0), std::free), real(::realpath(dir.c_str(), nullptr), std::free);
  if (!cwd || !real) return true;  // cannot tell: the cautious answer
  const std::string c = cwd.get(), r = real.get();
  return c.compare(0, r.size(), r) == 0 && (c.size() == r.size() || c[r.size()] == '/' || r == "/");
}

// Renames the staged files into `dir`, weights and tokenizer first, config.json (what a loader reads first)
// last, so that an interrupted run leaves the old config with whole files.
void publish_files(const std::string& staging, const std::string& dir, std::vector<std::string> names) {
  std::stable_partition(names.begin(), names.end(), [](const std::string& n) { return n != "config.json"; });
  for (const auto& n : names)
    if (::rename(join_path(staging, n).c_str(), join_path(dir, n).c_str()) != 0) throw_write_error("cannot move a saved file to", join_path(dir, n), errno);
  fsync_dir(dir);
}

}  // namespace

std::string join_path(const std::string& dir, const std::string& name) {
  return dir.empty() || dir.back() == '/' ? dir + name : dir + "/" + name;
}

void throw_write_error(const std::string& what, const std::string& path, int err) {
  if (err == ENOSPC || err == EDQUOT)
    throw Error("E_NO_SPACE", what + " " + path + ": " + std::strerror(err) + " (the disk or quota is full)");
  throw Error("E_WRITE_FAILED", what + " " + path + ": " + std::strerror(err));
}

namespace {
std::string temp_sibling(const std::string& path) {
  return join_path(parent_of(path), ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(++g_temp_seq) + "-" + base_of(path));
}
}  // namespace

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  for (int attempt = 0;; ++attempt) {
    tmp_ = temp_sibling(path_);
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd_ >= 0) return;
    if (errno != EEXIST || attempt >= 100) {
      const int err = errno;
      tmp_.clear();
      throw_write_error("cannot create a file beside", path_, err);
    }
  }
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicFile::write(const void* data, size_t n) { write_all(fd_, static_cast<const char*>(data), n, path_); }

void AtomicFile::commit() {
  // A full disk can surface only here (delayed allocation, NFS): fsync and close are checked too.
  if (::fsync(fd_) != 0) throw_write_error("cannot flush", path_, errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) throw_write_error("cannot close", path_, errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) throw_write_error("cannot rename a temporary file onto", path_, errno);
  tmp_.clear();
  fsync_dir(parent_of(path_));
}

void write_file_atomic(const std::string& path, const std::string& data) {
  AtomicFile f(path);
  f.write(data.data(), data.size());
  f.commit();
}

void copy_file_atomic(const std::string& src, const std::string& dst) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw Error("E_FILE_NOT_FOUND", "cannot read " + src + ": " + std::strerror(errno));
  std::unique_ptr<int, void (*)(int*)> guard(new int(in), [](int* fd) {
    ::close(*fd);
    delete fd;
  });
  AtomicFile out(dst);
  std::vector<char> buf(1 << 20);
  for (;;) {
    const ssize_t r = ::read(in, buf.data(), buf.size());
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) throw Error("E_FILE_NOT_FOUND", "cannot read " + src + ": " + std::strerror(errno));
    if (r == 0) break;
    out.write(buf.data(), static_cast<size_t>(r));
  }
  out.commit();
}

namespace {
void make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw_write_error("cannot create directory", dir, ec.value());
}
}  // namespace

namespace {
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_write_error("cannot open directory", dir, errno);
  // Some file systems cannot sync a directory (EINVAL): their renames are as durable as they get.
  const int rc = ::fsync(fd), err = errno;
  ::close(fd);
  if (rc != 0 && err != EINVAL && err != EROFS) throw_write_error("cannot flush directory", dir, err);
}
}  // namespace

namespace {
void remove_stale_temps(const std::string& dir) {
  for (const auto& n : list_dir(dir))
    if (is_stale_temp(n)) remove_quietly(join_path(dir, n));
}
}  // namespace

void write_directory_atomic(const std::string& dir_arg, const std::function<void(const std::string& staging)>& fill) {
  std::string dir = dir_arg;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  struct stat st;
  bool exists = false;
  if (::lstat(dir.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      // A link to a directory: save where it points, keeping the link.
      std::unique_ptr<char, void (*)(void*)> real(::realpath(dir.c_str(), nullptr), std::free);
      if (!real || ::stat(real.get(), &st) != 0) throw_write_error("cannot follow the link", dir, errno);
      dir = real.get();
    }
    if (!S_ISDIR(st.st_mode)) throw Error("E_WRITE_FAILED", "cannot save into " + dir + ": it exists and is not a directory");
    exists = true;
  } else if (errno != ENOENT) {
    throw_write_error("cannot access", dir, errno);
  }
  const std::string parent = parent_of(dir);
  make_dirs(parent);
  remove_stale_temps(parent);
  if (exists) remove_stale_temps(dir);

  // Staged beside the target, on its file system (the swap is a rename); inside it when the parent is not
  // writable, the target is a mount point, or it holds this process's working directory (swapped away, the
  // process would be left in the deleted old one).
  struct stat pst;
  bool whole = !exists || (::stat(parent.c_str(), &pst) == 0 && pst.st_dev == st.st_dev && !holds_cwd(dir));
  std::string staging = temp_sibling(dir);
  if (!whole || ::mkdir(staging.c_str(), 0777) != 0) {
    // Name the user's directory: the staging name means nothing to them.
    if (whole && (!exists || (errno != EACCES && errno != EPERM))) throw_write_error("cannot save into", dir, errno);
    whole = false;
    staging = temp_sibling(join_path(dir, base_of(dir)));
    if (::mkdir(staging.c_str(), 0777) != 0) throw_write_error("cannot save into", dir, errno);
  }
  try {
    fill(staging);
    const std::vector<std::string> written = list_dir(staging);
    if (whole && !exists) {
      fsync_dir(staging);
      if (::rename(staging.c_str(), dir.c_str()) != 0) throw_write_error("cannot rename a temporary directory onto", dir, errno);
      fsync_dir(parent);
      return;
    }
    if (whole) {
      bool carried = true;
      for (const auto& n : list_dir(dir))
        if (n.rfind(".tmp-", 0) != 0 && std::find(written.begin(), written.end(), n) == written.end() && !link_tree(join_path(dir, n), join_path(staging, n))) {
          carried = false;
          break;
        }
      if (carried) {
        ::chmod(staging.c_str(), st.st_mode & 07777);  // the new directory keeps the old one's mode
        fsync_dir(staging);
        if (swap_paths(staging, dir)) {
          fsync_dir(parent);
          remove_quietly(staging);  // now the old directory
          return;
        }
        if (!exchange_unsupported(errno)) throw_write_error("cannot swap in the new directory at", dir, errno);
      }
    }
    publish_files(staging, dir, written);
    remove_quietly(staging);
  } catch (const Error& e) {
    remove_quietly(staging);
    // Name the user's directory, not the staging one the failing file was in.
    std::string msg = e.what();
    for (size_t at; (at = msg.find(staging)) != std::string::npos;) msg.replace(at, staging.size(), dir);
    throw Error(e.code(), msg);
  } catch (...) {
    remove_quietly(staging);
    throw;
  }
}

}  // namespace bp
