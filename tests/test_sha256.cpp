// SHA-256 on the test vectors of FIPS 180-2 (appendix B: "abc", the 448-bit two-block message, one
// million 'a'), and on every length 0..200 against coreutils' sha256sum (padding at 55/56/64 bytes,
// updates split across block boundaries).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/sha256.h"

namespace fs = std::filesystem;
using sdgen::Sha256;
using sdgen::sha256_hex;

TEST(Sha256, Fips180_2Vectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // The million 'a' fed in uneven pieces (1, 63, 64, 65, ... bytes) gives the same digest.
  Sha256 h;
  size_t fed = 0;
  for (size_t piece = 1; fed < 1000000; piece = piece * 3 % 257 + 1) {
    const size_t n = std::min(piece, 1000000 - fed);
    h.update(std::string(n, 'a'));
    fed += n;
  }
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, EveryShortLengthAgreesWithSha256sum) {
  if (std::system("command -v sha256sum >/dev/null 2>&1") != 0) GTEST_SKIP() << "no sha256sum";
  const fs::path dir = fs::temp_directory_path() / ("sdgen_sha_" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string msg;
  for (int len = 0; len <= 200; ++len) {
    const fs::path f = dir / ("m" + std::to_string(len));
    std::ofstream(f, std::ios::binary) << msg;
    const std::string cmd = "sha256sum '" + f.string() + "'";
    FILE* p = popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char want[65] = {};
    ASSERT_EQ(std::fread(want, 1, 64, p), 64u);
    pclose(p);
    EXPECT_EQ(sha256_hex(msg), std::string(want)) << "length " << len;
    EXPECT_EQ(sdgen::sha256_file(f.string()), std::string(want)) << "file of length " << len;
    msg += (char)('A' + len * 7 % 61);
  }
  fs::remove_all(dir);
}
