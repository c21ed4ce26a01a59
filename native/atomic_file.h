// Durable, atomic writes: every file and directory the native core writes goes through here, so that a
// full disk, a failing device or a kill mid-write never leaves a half-written file under its final name,
// never destroys the previous version, and never reports success for a file that was not fully written.
//
// Files: written to a temporary sibling, every write checked (short writes retried, errors thrown), then
// fsync, close, rename over the target, fsync of the directory (so the rename itself survives a power cut).
// Directories (a saved model): staged complete in a temporary sibling and published with one atomic
// exchange, so that a reader, or a process killed at any instant, sees either the old or the new directory.
//
// Temporary names are ".tmp-<pid>-<seq>-<name>" beside their target (lib/atomic.ts uses the same scheme):
// never mistaken for a model or a checkpoint, and removed by the next save once their process is dead.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

namespace bp {

// `dir`/`name` (no doubled slash).
std::string join_path(const std::string& dir, const std::string& name);

// Throws the coded error of a failed write: E_NO_SPACE for ENOSPC/EDQUOT (the disk or quota is full), else
// E_WRITE_FAILED; the message says what was done to which path and why (strerror).
[[noreturn]] void throw_write_error(const std::string& what, const std::string& path, int err);

// One file written atomically: the bytes go to a temporary sibling (created exclusively); commit() makes
// them durable and renames them over `path`. Destroyed without commit() (an exception), the temporary file
// is removed and `path` is untouched.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t n);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

void write_file_atomic(const std::string& path, const std::string& data);
// Copies `src` (E_FILE_NOT_FOUND if it cannot be read) to `dst` atomically.
void copy_file_atomic(const std::string& src, const std::string& dst);

// Writes a directory atomically: `fill(staging)` writes the files into an empty staging directory, which
// then replaces `dir` (created, with its parents, when absent). When `dir` exists, the entries it has and
// the new content lacks (tokenizer files, a README, sub-folders) are carried over as hard links, then one
// renameat2(RENAME_EXCHANGE) (renamex_np(RENAME_SWAP) on macOS) swaps the two: a reader, or a process killed
// at any instant, sees the old or the new directory, never a mix. Where that cannot be done (a file system
// without exchange or hard links, a parent that is not writable, `dir` a mount point or this process's
// working directory), the staged files are renamed into `dir` one by one, config.json last: each file is
// whole and the old ones stay until replaced, but a kill between two renames can pair new weights with the
// old config. A failure while staging (a full disk) changes nothing under `dir`; the staging directory is
// removed and the error names `dir`. Stale temporaries in `dir` and its parent are removed first.
void write_directory_atomic(const std::string& dir, const std::function<void(const std::string& staging)>& fill);

}  // namespace bp
