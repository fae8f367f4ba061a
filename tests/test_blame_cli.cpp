// Each fault is blamed on what holds it, in words that say what it is: a broken LoRA or embedding
// names its file and option (not the model it would have damaged), an emphasis past any use names
// the prompt and its bracket nesting, a loop of symbolic links or a FIFO is called one, a tensor name
// holding NUL is shown escaped, a tiny config number is shown as written, sizes below 1 MiB are not
// "0 MiB", and JSON's -0 is seed 0. Every refusal is one line and the documented exit code.
#include <sys/stat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cli_fixture.h"
#include "io/safetensors.h"
#include "pipeline/memory_estimate.h"
#include "text/prompt_weights.h"

namespace {
using namespace cli_test;
using sdgen::StDType;
using sdgen::st_tensor_from_floats;

// A module of the tiny model's UNet (its first attention's to_q, a [16, 16] weight) in both namings.
const std::string kKohyaModule = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q";
const std::string kPeftModule = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q";
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

class Blame : public CliTest {
 protected:
  // One line on stderr holding `what` (besides the progress line naming the model being loaded,
  // for what is found while loading), and the exit code.
  void expect_refused(const Result& r, int code, const std::string& what) {
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(lines(r.err) - (int)(r.err.find("loading ") == 0), 1) << r.err;
    EXPECT_NE(r.err.find("sd-gen: error: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(what), std::string::npos) << "wanted '" << what << "' in: " << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out")) << "a refused run made its output folder";
  }
  // A kohya LoRA of rank 4 on kKohyaModule: down [4, 16], up [16, 4], alpha.
  void write_kohya(const std::string& name, std::vector<float> down, std::vector<float> up, float alpha) {
    sdgen::write_safetensors((dir_ / name).string(),
                             {st_tensor_from_floats(kKohyaModule + ".lora_down.weight", StDType::F32, {4, 16}, down),
                              st_tensor_from_floats(kKohyaModule + ".lora_up.weight", StDType::F32, {16, 4}, up),
                              st_tensor_from_floats(kKohyaModule + ".alpha", StDType::F32, {}, {alpha})});
  }
};

TEST_F(Blame, NulInTensorNameIsShownEscaped) {
  // The header's key "a\u0000b\n" with a dtype no reader knows.
  const std::string header = R"({"a\u0000b\n":{"dtype":"X9","shape":[1],"data_offsets":[0,4]}})";
  std::string file(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&file[0], &n, 8);
  write("nul.safetensors", file + header + std::string(4, '\0'));
  const Result r = run("-m nul.safetensors -p cat -o out");
  expect_refused(r, 3, "nul.safetensors: tensor 'a\\x00b\\x0a': unsupported dtype 'X9'");
  EXPECT_EQ(r.err.find('\0'), std::string::npos);
  EXPECT_EQ(sdgen::printable_tensor_name(std::string("x\0y\\z\x7f", 6)), "x\\x00y\\\\z\\x7f");
}

}  // namespace
