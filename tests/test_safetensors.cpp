// safetensors reader/writer: round trips, and every kind of corrupt file rejected with a message
// that names the problem (and never a crash).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "io/safetensors.h"
#include "sdgen/error.h"

using namespace sdgen;

namespace {

std::string temp_path(const std::string& tag) {
  return ::testing::TempDir() + "sdgen_st_" + tag + "_" + std::to_string((long)getpid()) + ".safetensors";
}

// A file from raw parts: declared header length, header text, data bytes.
std::string write_raw(const std::string& tag, uint64_t hlen, const std::string& header, const std::string& data) {
  std::string p = temp_path(tag);
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  for (int i = 0; i < 8; ++i) out.put((char)(hlen >> (8 * i)));
  out << header << data;
  return p;
}
std::string write_raw(const std::string& tag, const std::string& header, const std::string& data) {
  return write_raw(tag, header.size(), header, data);
}

// Opens and expects an Error(kModel) whose message contains every one of `parts`.
void expect_rejected(const std::string& path, std::initializer_list<const char*> parts) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "opened a corrupt file " << path;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::kModel);
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
  std::remove(path.c_str());
}

}  // namespace

TEST(Safetensors, RoundTripValuesDtypesMetadata) {
  // Values chosen to be exact in every dtype (fp16 and bf16 hold these small dyadic numbers).
  std::vector<float> a = {1.0f, -2.5f, 0.375f, 1024.0f, -0.0f, 3.0f};
  std::vector<float> b = {0.5f, -1.0f, 65504.0f, 6.103515625e-05f};  // fp16 max and min normal
  std::vector<float> c = {1.5f, -3.0f, 256.0f, 0.0078125f, 2.0f, -7.0f, 9.0f, 0.25f};
  std::string p = temp_path("roundtrip");
  write_safetensors(p,
                    {st_tensor_from_floats("a.weight", StDType::F32, {2, 3}, a),
                     st_tensor_from_floats("b", StDType::F16, {4}, b),
                     st_tensor_from_floats("c.bias", StDType::BF16, {2, 2, 2}, c),
                     st_tensor_from_floats("empty", StDType::F32, {0, 3}, {})},
                    {{"format", "pt"}, {"note", "hello"}});
  auto f = SafetensorsFile::open(p);
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "hello");
  const StTensorInfo* ta = f->find("a.weight");
  const StTensorInfo* tb = f->find("b");
  const StTensorInfo* tc = f->find("c.bias");
  ASSERT_TRUE(ta && tb && tc);
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_EQ(ta->dtype, StDType::F32);
  EXPECT_EQ(tb->dtype, StDType::F16);
  EXPECT_EQ(tc->dtype, StDType::BF16);
  EXPECT_EQ(ta->shape, (Shape{2, 3}));
  EXPECT_EQ(tc->shape, (Shape{2, 2, 2}));
  EXPECT_EQ(f->to_floats(*ta), a);
  EXPECT_EQ(f->to_floats(*tb), b);
  EXPECT_EQ(f->to_floats(*tc), c);
  EXPECT_TRUE(f->to_floats(*f->find("empty")).empty());
  // Raw bytes as the format defines them: 1.0f16 = 0x3C00, 1.5bf16 = 0x3FC0, little-endian.
  EXPECT_EQ(f->data(*tb)[1], 0x38);  // 0.5 = 0x3800
  EXPECT_EQ(f->data(*tc)[0], 0xC0);
  EXPECT_EQ(f->data(*tc)[1], 0x3F);
  std::remove(p.c_str());
}

TEST(Safetensors, RoundingToHalfAndBf16) {
  // 1 + 2^-11 is halfway between two fp16 values: ties to even gives 1.0; 1 + 3*2^-11 rounds up.
  // For bf16 the same with 2^-8 steps.
  std::vector<float> v = {1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256};
  std::string p = temp_path("rounding");
  write_safetensors(p, {st_tensor_from_floats("h", StDType::F16, {4}, v),
                        st_tensor_from_floats("b", StDType::BF16, {4}, v)});
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->to_floats(*f->find("h")), (std::vector<float>{1.0f, 1.0f + 2.0f / 1024, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256}));
  EXPECT_EQ(f->to_floats(*f->find("b")), (std::vector<float>{1.0f, 1.0f, 1.0f, 1.0f + 4.0f / 256}));
  std::remove(p.c_str());
}

TEST(Safetensors, NoMetadataAndHandWrittenHeader) {
  // A header written by hand (as another tool would), with an unaligned data section.
  std::string data(8, '\0');
  float x = 2.0f, y = -4.0f;
  std::memcpy(&data[0], &x, 4);
  std::memcpy(&data[4], &y, 4);
  auto p = write_raw("hand", R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data);
  auto f = SafetensorsFile::open(p);
  EXPECT_TRUE(f->metadata().empty());
  EXPECT_EQ(f->to_floats(*f->find("t")), (std::vector<float>{2.0f, -4.0f}));
  std::remove(p.c_str());
}

TEST(Safetensors, HeaderLengthStartingWith0x80Opens) {
  // 384 = 0x180: the file starts with the byte 0x80, like a pickle; it is still safetensors.
  std::string h = R"({"t":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}})";
  h.append(384 - h.size(), ' ');
  auto p = write_raw("h384", h, std::string("\x00\x3c", 2));
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->to_floats(*f->find("t")), std::vector<float>{1.0f});
  std::remove(p.c_str());
}

TEST(Safetensors, IntegerBufferOpensButDoesNotConvert) {
  // SD checkpoints carry CLIP's position_ids as I64: the file must open, the tensor must not load.
  auto p = write_raw("i64", R"({"ids":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", std::string(16, '\0'));
  auto f = SafetensorsFile::open(p);
  try {
    f->to_floats(*f->find("ids"));
    ADD_FAILURE() << "converted an I64 tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'ids' has dtype I64"), std::string::npos) << e.what();
  }
  std::remove(p.c_str());
}

TEST(Safetensors, RejectsZeroLengthHeader) {
  expect_rejected(write_raw("empty0", 0, "", ""), {"header is not valid JSON"});
}

TEST(Safetensors, RejectsFileShorterThanLength) {
  std::string p = temp_path("short");
  std::ofstream(p, std::ios::binary) << "abc";
  expect_rejected(p, {"3 bytes, too short"});
}

TEST(Safetensors, RejectsEmptyFile) {
  std::string p = temp_path("zero");
  std::ofstream(p, std::ios::binary).close();
  expect_rejected(p, {"0 bytes, too short"});
}

TEST(Safetensors, RejectsHeaderLengthPastEnd) {
  expect_rejected(write_raw("hlen", 1000, R"({"t":{}})", ""), {"header length 1000 runs past the end"});
  // A huge length must not overflow the bounds check.
  expect_rejected(write_raw("hlen2", UINT64_MAX, "{}", ""), {"runs past the end"});
}

TEST(Safetensors, RejectsBadJson) {
  expect_rejected(write_raw("json", R"({"t":{"dtype":"F32",)", ""), {"header is not valid JSON"});
  expect_rejected(write_raw("json2", R"([1,2,3])", ""), {"not an object"});
}

TEST(Safetensors, RejectsUnknownDtype) {
  expect_rejected(write_raw("dtype", R"({"w":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,2]}})", "xx"),
                  {"tensor 'w'", "unsupported dtype 'Q4_K'"});
}

TEST(Safetensors, RejectsTruncatedData) {
  // The header promises 16 bytes of data; only 8 are there.
  expect_rejected(write_raw("trunc", R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0')),
                  {"tensor 'w'", "outside the data section (8 bytes", "truncated"});
}

TEST(Safetensors, RejectsRangeOutsideDataAndReversed) {
  expect_rejected(write_raw("range", R"({"w":{"dtype":"F16","shape":[2],"data_offsets":[12,16]}})", std::string(8, '\0')),
                  {"tensor 'w'", "[12, 16] lie outside the data section"});
  expect_rejected(write_raw("rev", R"({"w":{"dtype":"F16","shape":[0],"data_offsets":[6,2]}})", std::string(8, '\0')),
                  {"tensor 'w'", "begin 6 > end 2"});
}

TEST(Safetensors, RejectsOverlappingRanges) {
  expect_rejected(write_raw("overlap",
                            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                            R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                            std::string(12, '\0')),
                  {"tensors 'a' [0, 8] and 'b' [4, 12] overlap"});
}

TEST(Safetensors, RejectsShapeLengthMismatch) {
  expect_rejected(write_raw("shape", R"({"w":{"dtype":"F32","shape":[3,2],"data_offsets":[0,16]}})", std::string(16, '\0')),
                  {"tensor 'w'", "shape [3, 2] of F32 needs 24 bytes but data_offsets span 16"});
  // A shape whose byte count overflows 64 bits.
  expect_rejected(write_raw("shape2",
                            R"({"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,16]}})",
                            std::string(16, '\0')),
                  {"tensor 'w'", "too many"});
  // A dimension past 2^31 - 1, also in a tensor of 0 elements (whose 0 bytes would match), and one
  // of 2^63 that an int64 would take as negative.
  expect_rejected(write_raw("shape3", R"({"w":{"dtype":"F32","shape":[4294967296,1],"data_offsets":[0,0]}})", ""),
                  {"tensor 'w'", "shape entry 4294967296 is beyond 2^31 - 1"});
  expect_rejected(write_raw("shape4", R"({"w":{"dtype":"F32","shape":[0,9223372036854775808],"data_offsets":[0,0]}})", ""),
                  {"tensor 'w'", "shape entry 9223372036854775808 is beyond"});
}

TEST(Safetensors, RejectsMalformedFields) {
  expect_rejected(write_raw("f1", R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", ""),
                  {"tensor 'w'", "shape entry"});
  expect_rejected(write_raw("f2", R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", ""),
                  {"tensor 'w'", "data_offsets must be two"});
  expect_rejected(write_raw("f3", R"({"w":{"shape":[1],"data_offsets":[0,4]}})", "abcd"),
                  {"tensor 'w'", "dtype"});
  expect_rejected(write_raw("f4", R"({"__metadata__":{"a":1}})", ""), {"__metadata__", "'a'"});
}

TEST(Safetensors, MissingFileNamesPath) {
  expect_rejected("/nonexistent/dir/x.safetensors", {"cannot open"});
}
