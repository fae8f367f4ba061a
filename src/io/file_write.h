// Creating files safely: see file_write.cpp.
#pragma once
#include <cstddef>
#include <string>

namespace sdgen {

// Writes bytes to path atomically (temp file in the same folder + rename). Throws Error(kOutput).
void write_file_atomic(const std::string& path, const void* data, size_t size);

// As write_file_atomic, but never replaces a file: the complete temp file is moved to `path` only
// if nothing is there (renameat2 RENAME_NOREPLACE, or link() where the file system lacks it), so of
// two processes racing for one name exactly one gets it. Returns false (and leaves no temp file)
// when path exists; throws Error(kOutput) on any other failure.
bool write_file_exclusive(const std::string& path, const void* data, size_t size);

// Opens a new file for writing, exclusively: O_CREAT|O_EXCL|O_NOFOLLOW, so an existing file or a
// symbolic link at `path` (even a dangling one) is never opened or written through. Returns the
// descriptor, or -1 with errno set (EEXIST when the name is taken).
int create_exclusive(const std::string& path);

// Removes our own temporaries left in `dir` by processes that are gone (killed during a write):
// only names of the pattern sd-gen makes (".sdgen-<pid>-<n>.tmp", ".sdgen-write-test-<pid>"), only
// regular files (never a link), only when no process of that pid exists on this machine. Returns
// how many were removed.
int clean_stale_temporaries(const std::string& dir);

}  // namespace sdgen
