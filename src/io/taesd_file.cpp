// Opening a TAESD (io/taesd_file.h): the file forms mapped to one set of canonical names, then the
// architecture walked from the layer sequence, as diffusers' EncoderTiny / DecoderTiny build it.
#include "io/taesd_file.h"

#include <cctype>
#include <filesystem>
#include <map>
#include <optional>

#include "io/model_config_load.h"
#include "io/safetensors.h"
#include "io/torch_checkpoint.h"
#include "sdgen/error.h"

namespace sdgen {

namespace fs = std::filesystem;

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// The tensors of one or two files under canonical names.
class TaesdCheckpoint : public Checkpoint {
 public:
  explicit TaesdCheckpoint(std::string path) : path_(std::move(path)) {}
  const SafetensorsFile* keep(std::unique_ptr<SafetensorsFile> f) {
    files_.push_back(std::move(f));
    return files_.back().get();
  }
  void add(const std::string& canonical, const StTensorInfo* t, const SafetensorsFile* f) {
    entries_[canonical] = {t, f};
  }

  const ModelConfig& config() const override { return config_; }
  std::string name() const override { return fs::path(path_).filename().string(); }
  bool has(const std::string& n) const override { return entries_.count(n) != 0; }
  std::optional<Shape> stored_shape(const std::string& n) const override {
    auto it = entries_.find(n);
    return it == entries_.end() ? std::nullopt : std::optional<Shape>(it->second.info->shape);
  }
  std::vector<std::string> names() const override {
    std::vector<std::string> out;
    for (const auto& kv : entries_) out.push_back(kv.first);
    return out;
  }
  Tensor get(const std::string& n, const Shape& expected) const override {
    const Entry& e = entry(n, expected);
    Tensor out = Tensor::empty(expected);
    e.file->to_floats(*e.info, out.f32());
    return out;
  }
  Tensor get_stored(const std::string& n, const Shape& expected, DType dtype) const override {
    const Entry& e = entry(n, expected);
    const StDType want = dtype == DType::F16 ? StDType::F16 : dtype == DType::BF16 ? StDType::BF16 : StDType::F32;
    if (e.info->dtype != want) return get(n, expected);
    Tensor out = Tensor::empty(expected, dtype);
    e.file->copy_bytes(*e.info, out.data());
    return out;
  }

 private:
  struct Entry {
    const StTensorInfo* info;
    const SafetensorsFile* file;
  };
  const Entry& entry(const std::string& n, const Shape& expected) const {
    auto it = entries_.find(n);
    if (it == entries_.end()) throw_model("--vae-tiny " + path_ + ": tensor '" + n + "' not found");
    if (it->second.info->shape != expected)
      throw_model("--vae-tiny " + path_ + ": tensor '" + printable_tensor_name(it->second.info->name) + "' has shape " +
                  shape_str(it->second.info->shape) + ", expected " + shape_str(expected) + " (not a TAESD?)");
    return it->second;
  }
  std::string path_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Entry> entries_;
};

std::unique_ptr<SafetensorsFile> open_st(const std::string& shown, const std::string& path) {
  try {
    return open_weights_file(path);
  } catch (const Error& err) {
    throw_model("--vae-tiny " + shown + ": " + err.what());
  }
}

// "12.conv.0.weight" -> (12, "conv.0.weight"); nullopt for a name that does not start with an index.
std::optional<std::pair<int, std::string>> split_index(const std::string& n) {
  size_t i = 0;
  while (i < n.size() && i < 4 && std::isdigit((unsigned char)n[i])) ++i;
  if (i == 0 || i >= n.size() || n[i] != '.') return std::nullopt;
  return std::make_pair(std::stoi(n.substr(0, i)), n.substr(i + 1));
}

// Adds a file's float tensors: diffusers names as they are, original names with their half and
// index offset. Returns which halves it held (bit 1 decoder, bit 2 encoder).
int add_file(TaesdCheckpoint& ck, const SafetensorsFile* f) {
  bool original_decoder = f->find("1.weight") && !f->find("0.weight");
  int halves = 0;
  for (const StTensorInfo& t : f->tensors()) {
    if (!st_dtype_is_float(t.dtype)) continue;
    if (starts_with(t.name, "decoder.layers.") || starts_with(t.name, "encoder.layers.")) {
      ck.add("taesd." + t.name, &t, f);
      halves |= t.name[0] == 'd' ? 1 : 2;
    } else if (auto idx = split_index(t.name)) {
      const int k = original_decoder ? idx->first - 1 : idx->first;  // the decoder's 0 is its Clamp
      if (k < 0) continue;
      ck.add(std::string("taesd.") + (original_decoder ? "decoder" : "encoder") + ".layers." + std::to_string(k) +
                 "." + idx->second,
             &t, f);
      halves |= original_decoder ? 1 : 2;
    }
  }
  return halves;
}

// The dims of a stored tensor, or an empty shape when absent.
Shape shape_of(const Checkpoint& ck, const std::string& n) { return ck.stored_shape(n).value_or(Shape{}); }

// Walks DecoderTiny's layers: conv, ReLU, then per level its blocks, an Upsample and a conv (bias
// only in the last level's, which gives the image channels).
void read_decoder(const Checkpoint& ck, TaesdConfig& c, const std::string& path) {
  auto fail = [&](const std::string& why) { throw_model("--vae-tiny " + path + ": not a TAESD decoder: " + why); };
  const std::string p = "taesd.decoder.layers.";
  const Shape in = shape_of(ck, p + "0.weight");
  if (in.size() != 4 || in[2] != 3 || in[3] != 3) fail("no 3x3 input convolution (layer 0)");
  c.latent_channels = (int)in[1];
  c.decoder_block_channels.clear(), c.decoder_blocks.clear();
  int k = 2;
  for (;;) {
    int blocks = 0;
    const Shape b = shape_of(ck, p + std::to_string(k) + ".conv.0.weight");
    if (b.size() != 4) fail("layer " + std::to_string(k) + " is not a block");
    for (; ck.has(p + std::to_string(k) + ".conv.0.weight"); ++k) ++blocks;
    c.decoder_block_channels.push_back((int)b[0]);
    c.decoder_blocks.push_back(blocks);
    if (ck.has(p + std::to_string(k) + ".bias")) {  // the last level's conv: the image
      const Shape out = shape_of(ck, p + std::to_string(k) + ".weight");
      if (out.size() != 4) fail("layer " + std::to_string(k) + " is not a convolution");
      c.out_channels = (int)out[0];
      return;
    }
    if (ck.has(p + std::to_string(k) + ".weight") || !ck.has(p + std::to_string(k + 1) + ".weight"))
      fail("no upsampling and convolution after layer " + std::to_string(k - 1));
    k += 2;
    if (c.decoder_blocks.size() > 8) fail("more than 8 levels");
  }
}

// Walks EncoderTiny's layers: per level a conv (the first with bias from the image; the others
// stride 2 without), its blocks; then a conv with bias to the latent channels.
void read_encoder(const Checkpoint& ck, TaesdConfig& c, const std::string& path) {
  auto fail = [&](const std::string& why) { throw_model("--vae-tiny " + path + ": not a TAESD encoder: " + why); };
  const std::string p = "taesd.encoder.layers.";
  const Shape in = shape_of(ck, p + "0.weight");
  if (in.size() != 4 || in[2] != 3 || !ck.has(p + "0.bias")) fail("no 3x3 input convolution (layer 0)");
  c.in_channels = (int)in[1];
  c.encoder_block_channels.clear(), c.encoder_blocks.clear();
  int k = 0;
  for (;;) {
    const Shape conv = shape_of(ck, p + std::to_string(k) + ".weight");
    if (conv.size() != 4) fail("layer " + std::to_string(k) + " is not a convolution");
    if (k > 0 && ck.has(p + std::to_string(k) + ".bias")) {  // the output conv
      c.latent_channels = (int)conv[0];
      return;
    }
    int blocks = 0;
    for (++k; ck.has(p + std::to_string(k) + ".conv.0.weight"); ++k) ++blocks;
    c.encoder_block_channels.push_back((int)conv[0]);
    c.encoder_blocks.push_back(blocks);
    if (c.encoder_blocks.size() > 8) fail("more than 8 levels");
  }
}

// The other file of an original pair: taesd_decoder.safetensors <-> taesd_encoder.safetensors.
std::string partner(const std::string& path) {
  const fs::path p(path);
  std::string stem = p.filename().string();
  for (auto [a, b] : {std::pair<const char*, const char*>{"decoder", "encoder"}, {"encoder", "decoder"}}) {
    const size_t at = stem.rfind(a);
    if (at != std::string::npos) {
      const fs::path other = p.parent_path() / stem.replace(at, 7, b);
      std::error_code ec;
      if (fs::is_regular_file(other, ec)) return other.string();
      return "";
    }
  }
  return "";
}

}  // namespace

TaesdFile open_taesd_file(const std::string& path) {
  std::error_code ec;
  TaesdFile out;
  std::string trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  out.name = fs::path(trimmed).filename().string();
  auto ck = std::make_unique<TaesdCheckpoint>(path);
  int halves = 0;
  if (fs::is_directory(path, ec)) {
    fs::path dir = path;
    if (!fs::exists(dir / "config.json") && fs::exists(dir / "vae" / "config.json")) dir /= "vae";
    if (!fs::exists(dir / "config.json"))
      throw_model("--vae-tiny " + path + ": a folder without config.json, so not a diffusers AutoencoderTiny folder");
    const nlohmann::json j = read_json_file((dir / "config.json").string());
    if (j.value("act_fn", std::string("relu")) != "relu" || j.value("upsample_fn", std::string("nearest")) != "nearest" ||
        j.value("upsampling_scaling_factor", 2) != 2)
      throw_model("--vae-tiny " + path + ": config.json asks for an activation, upsampling or factor other than "
                  "relu, nearest, 2 (what TAESD uses)");
    if (j.contains("scaling_factor") && j["scaling_factor"].is_number())
      out.config.scaling_factor = j["scaling_factor"].get<float>();
    std::string file;
    for (const char* stem : {"diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors"})
      if (fs::exists(dir / stem)) {
        file = (dir / stem).string();
        break;
      }
    if (file.empty()) throw_model("--vae-tiny " + path + ": no diffusion_pytorch_model.safetensors in " + dir.string());
    halves = add_file(*ck, ck->keep(open_st(path, file)));
  } else if (fs::is_regular_file(path, ec)) {
    halves = add_file(*ck, ck->keep(open_st(path, path)));
    const std::string other = halves == 3 ? "" : partner(path);
    if (!other.empty()) halves |= add_file(*ck, ck->keep(open_st(other, other)));
  } else {
    throw_model("--vae-tiny " + path + ": no such file or folder");
  }
  if (halves == 0)
    throw_model("--vae-tiny " + path + ": no TAESD tensors (diffusers decoder.layers.* / encoder.layers.*, or the "
                "original files' 1.weight, 3.conv.0.weight, ...)");
  out.has_decoder = halves & 1;
  out.has_encoder = halves & 2;
  if (out.has_decoder) read_decoder(*ck, out.config, path);
  if (out.has_encoder) {
    const int latent = out.config.latent_channels;
    read_encoder(*ck, out.config, path);
    if (out.has_decoder && out.config.latent_channels != latent)
      throw_model("--vae-tiny " + path + ": the encoder gives " + std::to_string(out.config.latent_channels) +
                  " latent channels, the decoder takes " + std::to_string(latent));
  }
  out.weights = std::move(ck);
  return out;
}

}  // namespace sdgen
