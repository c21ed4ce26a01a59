// Checked command-line numbers for the native tools: a bad value prints one line naming the flag and exits 2
// (a usage error), instead of std::stoll's exception ending in std::terminate or atoi's silent 0 (which a
// tool then passes to libtorch as a shape). The TypeScript side checks the same flags before spawning a tool;
// this is for a tool run by hand. No libtorch here, so the header compiles and is tested on its own.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace tools {

// The integer `text` of `flag` when it is one (all of it, no overflow) within [lo, hi]; otherwise exit(2).
inline int64_t int_arg(const char* flag, const char* text, int64_t lo, int64_t hi) {
  char* end = nullptr;
  errno = 0;
  const long long v = text != nullptr ? std::strtoll(text, &end, 10) : 0;
  if (text == nullptr || end == text || *end != '\0' || errno == ERANGE || v < lo || v > hi) {
    std::fprintf(stderr, "%s: expected an integer in [%lld, %lld], got \"%s\"\n", flag, static_cast<long long>(lo), static_cast<long long>(hi),
                 text != nullptr ? text : "");
    std::exit(2);
  }
  return v;
}

// The value after flag argv[*i] (advancing *i), or a usage error: exit(2).
inline const char* next_value(int argc, char** argv, int* i) {
  if (*i + 1 >= argc) {
    std::fprintf(stderr, "missing value for %s\n", argv[*i]);
    std::exit(2);
  }
  return argv[++*i];
}

// A comma-separated list of such integers (`--batch 1,8`), at least one.
inline std::vector<int64_t> int_list_arg(const char* flag, const char* text, int64_t lo, int64_t hi) {
  std::vector<int64_t> out;
  std::stringstream ss(text != nullptr ? text : "");
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(int_arg(flag, item.c_str(), lo, hi));
  if (out.empty()) int_arg(flag, "", lo, hi);  // exits with the message
  return out;
}

}  // namespace tools
