// Checkpoint loading. The expected LDM <-> diffusers pairs come from diffusers' own converters
// (tests/data/checkpoint_name_map.json, made by tests/reference/make_name_map.py), never from our
// table. Each test model is written here twice, as an LDM single file and as a diffusers folder,
// with values that encode each tensor's identity; both must serve every canonical name alike.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <set>

#include "io/checkpoint.h"
#include "io/checkpoint_names.h"
#include "io/model_config_load.h"
#include "io/safetensors.h"
#include "sdgen/error.h"
#include "sdgen/ops.h"
#include "test_helpers.h"
#include "text/clip.h"

using namespace sdgen;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Row {
  std::string ldm, canon;
  Shape shape, ldm_shape;
};

struct RefModel {
  std::string name;
  json unet, vae, clip;
  std::vector<Row> rows;
};

const json& reference() {
  static json doc = [] {
    std::ifstream in(std::string(SDGEN_TEST_DATA) + "/checkpoint_name_map.json");
    return json::parse(in);
  }();
  return doc;
}

RefModel ref_model(const std::string& name) {
  for (const auto& m : reference()["models"]) {
    if (m["name"] != name) continue;
    RefModel r{name, m["unet_config"], m["vae_config"], m["text_encoder_config"], {}};
    for (const auto& t : m["tensors"]) {
      Row row{t[0], t[1], t[2].get<Shape>(), t[2].get<Shape>()};
      if (t.size() > 3) row.ldm_shape = t[3].get<Shape>();
      r.rows.push_back(row);
    }
    return r;
  }
  throw std::runtime_error("no reference model " + name);
}

ModelConfig config_of(const RefModel& m) {
  ModelConfig c;
  apply_unet_json(m.unet, c.unet, "unet");
  apply_vae_json(m.vae, c.vae, "vae");
  apply_clip_json(m.clip, c.clip, "clip");
  return c;
}

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// Values m/64 with |m| <= 127 are exact in F32, F16 and BF16; the sequence is seeded by the name.
std::vector<float> identity_fill(const std::string& name, int64_t n) {
  uint64_t h = 1469598103934665603ull;
  for (char c : name) h = (h ^ (unsigned char)c) * 1099511628211ull;
  std::vector<float> v((size_t)n);
  for (auto& x : v) {
    h = h * 6364136223846793005ull + 1442695040888963407ull;
    x = (float)((int)((h >> 33) % 255) - 127) / 64.0f;
  }
  return v;
}

std::string temp_dir(const std::string& tag) {
  std::string d = ::testing::TempDir() + "sdgen_ckpt_" + tag + "_" + std::to_string((long)getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

void write_json(const std::string& path, const json& j) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << j.dump(1);
}

// The LDM single file, with the extras real files carry (EMA copies, an I64 position_ids buffer).
// Drops "text_model." after `root`, as transformers 5 saves CLIPTextModel (written out by hand).
std::string flatten_clip(const std::string& name, const std::string& root) {
  const std::string with = root + "text_model.";
  return name.compare(0, with.size(), with) == 0 ? root + name.substr(with.size()) : name;
}

// flat_clip: the text encoder without "text_model." (cond_stage_model.transformer.embeddings.*).
std::string write_ldm(const RefModel& m, const std::string& dir, StDType dt,
                      const std::map<std::string, std::string>& meta = {}, const std::string& skip = "",
                      bool flat_clip = false) {
  auto stored = [&](const std::string& n) { return flat_clip ? flatten_clip(n, "cond_stage_model.transformer.") : n; };
  std::vector<StWriteTensor> ts;
  for (const Row& r : m.rows)
    if (r.ldm != skip)
      ts.push_back(st_tensor_from_floats(stored(r.ldm), dt, r.ldm_shape, identity_fill(r.canon, numel(r.shape))));
  ts.push_back(st_tensor_from_floats("model_ema.decay", StDType::F32, {}, {0.9999f}));
  ts.push_back(st_tensor_from_floats("model_ema.diffusion_modelout0weight", StDType::F32, {2}, {1, 2}));
  StWriteTensor ids{stored("cond_stage_model.transformer.text_model.embeddings.position_ids"), StDType::I64, {1, 4},
                    std::vector<uint8_t>(32, 0)};
  ts.push_back(ids);
  std::string p = dir + "/" + m.name + ".safetensors";
  write_safetensors(p, ts, meta);
  return p;
}

// The diffusers folder: unet F32, vae as the fp16 variant file, text encoder BF16.
// flat_clip: text_encoder/model.safetensors as transformers 5 writes it (no "text_model."), one
// tensor left out when `skip` names it (canonical).
std::string write_diffusers(const RefModel& m, const std::string& dir, bool legacy_vae_names = false,
                            bool flat_clip = false, const std::string& skip = "") {
  const std::string root = dir + "/" + m.name + "_diffusers";
  write_json(root + "/model_index.json", {{"_class_name", "StableDiffusionPipeline"}});
  write_json(root + "/unet/config.json", m.unet);
  write_json(root + "/vae/config.json", m.vae);
  write_json(root + "/text_encoder/config.json", m.clip);
  write_json(root + "/scheduler/scheduler_config.json", reference()["scheduler_config"]);
  std::map<std::string, std::vector<StWriteTensor>> comps;
  for (const Row& r : m.rows) {
    size_t dot = r.canon.find('.');
    std::string comp = r.canon.substr(0, dot), name = r.canon.substr(dot + 1);
    StDType dt = comp == "unet" ? StDType::F32 : comp == "vae" ? StDType::F16 : StDType::BF16;
    if (legacy_vae_names) {  // diffusers < 0.14 names, written out by hand
      for (auto [now, old] : {std::pair{".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."},
                              {".to_out.0.", ".proj_attn."}})
        if (comp == "vae" && name.find("mid_block.attentions.0") != std::string::npos && name.find(now) != std::string::npos)
          name.replace(name.find(now), strlen(now), old);
    }
    if (flat_clip && comp == "text_encoder") name = flatten_clip(name, "");
    if (r.canon != skip)
      comps[comp].push_back(st_tensor_from_floats(name, dt, r.shape, identity_fill(r.canon, numel(r.shape))));
  }
  write_safetensors(root + "/unet/diffusion_pytorch_model.safetensors", comps["unet"]);
  write_safetensors(root + "/vae/diffusion_pytorch_model.fp16.safetensors", comps["vae"]);
  write_safetensors(root + "/text_encoder/model.safetensors", comps["text_encoder"]);
  fs::create_directories(root + "/tokenizer");
  std::ofstream(root + "/tokenizer/vocab.json") << "{}";
  std::ofstream(root + "/tokenizer/merges.txt") << "#version: 0.2\n";
  return root;
}

// The sidecar: what the shapes cannot tell, in diffusers field names.
json sidecar_of(const RefModel& m) {
  return {{"unet", {{"attention_head_dim", m.unet["attention_head_dim"]}, {"norm_num_groups", m.unet["norm_num_groups"]},
                    {"norm_eps", m.unet["norm_eps"]}}},
          {"vae", {{"norm_num_groups", m.vae["norm_num_groups"]}, {"scaling_factor", m.vae["scaling_factor"]}}},
          {"text_encoder", {{"num_attention_heads", m.clip["num_attention_heads"]}, {"hidden_act", m.clip["hidden_act"]},
                            {"layer_norm_eps", m.clip["layer_norm_eps"]}}}};
}

using test_helpers::error_of;

#define EXPECT_HAS(msg, part) EXPECT_NE((msg).find(part), std::string::npos) << "'" << (part) << "' not in: " << (msg)

// The config fields shapes can tell, against the reference config.json values.
void expect_shape_fields(const ModelConfig& c, const RefModel& m) {
  EXPECT_EQ(c.unet.block_channels, m.unet["block_out_channels"].get<std::vector<int>>());
  std::vector<bool> attn;
  for (const auto& t : m.unet["down_block_types"]) attn.push_back(t == "CrossAttnDownBlock2D");
  EXPECT_EQ(c.unet.down_attention, attn);
  EXPECT_EQ(c.unet.layers_per_block, m.unet["layers_per_block"]);
  EXPECT_EQ(c.unet.cross_attention_dim, m.unet["cross_attention_dim"]);
  EXPECT_EQ(c.unet.in_channels, m.unet["in_channels"]);
  EXPECT_EQ(c.unet.out_channels, m.unet["out_channels"]);
  EXPECT_EQ(c.vae.block_channels, m.vae["block_out_channels"].get<std::vector<int>>());
  EXPECT_EQ(c.vae.layers_per_block, m.vae["layers_per_block"]);
  EXPECT_EQ(c.vae.latent_channels, m.vae["latent_channels"]);
  EXPECT_EQ(c.vae.in_channels, m.vae["in_channels"]);
  EXPECT_EQ(c.vae.out_channels, m.vae["out_channels"]);
  EXPECT_EQ(c.clip.hidden, m.clip["hidden_size"]);
  EXPECT_EQ(c.clip.layers, m.clip["num_hidden_layers"]);
  EXPECT_EQ(c.clip.intermediate, m.clip["intermediate_size"]);
  EXPECT_EQ(c.clip.vocab_size, m.clip["vocab_size"]);
  EXPECT_EQ(c.clip.max_positions, m.clip["max_position_embeddings"]);
}

void expect_all_fields(const ModelConfig& c, const RefModel& m) {
  expect_shape_fields(c, m);
  const json& h = m.unet["attention_head_dim"];
  EXPECT_EQ(c.unet.heads, h.is_array() ? h[0].get<int>() : h.get<int>());
  EXPECT_EQ(c.unet.norm_groups, m.unet["norm_num_groups"]);
  EXPECT_FLOAT_EQ(c.unet.norm_eps, m.unet["norm_eps"].get<float>());
  EXPECT_EQ(c.vae.norm_groups, m.vae["norm_num_groups"]);
  EXPECT_FLOAT_EQ(c.vae.scaling_factor, m.vae["scaling_factor"].get<float>());
  EXPECT_EQ(c.clip.heads, m.clip["num_attention_heads"]);
  EXPECT_EQ(c.clip.act, m.clip["hidden_act"]);
  EXPECT_FLOAT_EQ(c.clip.eps, m.clip["layer_norm_eps"].get<float>());
}

}  // namespace

class CheckpointNameRef : public ::testing::TestWithParam<std::string> {};
class CheckpointRef : public ::testing::TestWithParam<std::string> {};

TEST_P(CheckpointNameRef, NameTableMatchesDiffusersConverter) {
  RefModel m = ref_model(GetParam());
  CheckpointNames names(config_of(m));
  std::set<std::string> canon;
  for (const Row& r : m.rows) {
    EXPECT_EQ(names.to_canonical(r.ldm).value_or("<none>"), r.canon) << r.ldm;
    EXPECT_EQ(names.to_ldm(r.canon).value_or("<none>"), r.ldm) << r.canon;
    canon.insert(r.canon);
  }
  EXPECT_EQ(canon.size(), m.rows.size());
  // Names outside the inference model do not map.
  EXPECT_FALSE(names.to_canonical("model_ema.decay"));
  EXPECT_FALSE(names.to_canonical("model.diffusion_model.input_blocks.1.0.in_layers.1.weight"));
  EXPECT_FALSE(names.to_ldm("unet.down_blocks.0.resnets.0.norm7.weight"));
}

TEST_P(CheckpointRef, LdmFileAndDiffusersFolderServeTheSameTensors) {
  RefModel m = ref_model(GetParam());
  std::string dir = temp_dir("forms_" + m.name);
  // One model carries its sidecar in the file's metadata, the other next to it.
  std::map<std::string, std::string> meta;
  if (m.name == "sd_v1_tiny") meta["sdgen_config"] = sidecar_of(m).dump();
  std::string ldm_path = write_ldm(m, dir, StDType::F32, meta);
  if (meta.empty()) write_json(ldm_path + ".json", sidecar_of(m));
  std::string folder = write_diffusers(m, dir);

  auto ldm = Checkpoint::open(ldm_path);
  auto dif = Checkpoint::open(folder);
  EXPECT_EQ(ldm->name(), m.name);
  EXPECT_EQ(dif->name(), m.name + "_diffusers");
  expect_all_fields(ldm->config(), m);
  expect_all_fields(dif->config(), m);

  std::set<std::string> expected;
  for (const Row& r : m.rows) expected.insert(r.canon);
  auto ln = ldm->names(), dn = dif->names();
  EXPECT_EQ(std::set<std::string>(ln.begin(), ln.end()), expected);
  EXPECT_EQ(std::set<std::string>(dn.begin(), dn.end()), expected);
  for (const Row& r : m.rows) {
    ASSERT_TRUE(ldm->has(r.canon) && dif->has(r.canon)) << r.canon;
    EXPECT_EQ(ldm->stored_shape(r.canon).value_or(Shape{-1}), r.ldm_shape) << r.canon;
    EXPECT_EQ(dif->stored_shape(r.canon).value_or(Shape{-1}), r.shape) << r.canon;
    Tensor a = ldm->get(r.canon, r.shape), b = dif->get(r.canon, r.shape);
    ASSERT_EQ(a.shape(), r.shape);
    EXPECT_EQ(a.to_floats(), identity_fill(r.canon, numel(r.shape))) << r.canon << " (LDM " << r.ldm << ")";
    EXPECT_EQ(b.to_floats(), identity_fill(r.canon, numel(r.shape))) << r.canon;
  }
  EXPECT_FALSE(ldm->has("text_encoder.text_model.embeddings.position_ids"));  // I64 buffer, not a weight
  EXPECT_FALSE(ldm->stored_shape("text_encoder.text_model.embeddings.position_ids"));
  EXPECT_FALSE(ldm->tokenizer_vocab_json());
  EXPECT_EQ(dif->tokenizer_vocab_json().value_or(""), folder + "/tokenizer/vocab.json");
  EXPECT_EQ(dif->tokenizer_merges_txt().value_or(""), folder + "/tokenizer/merges.txt");
  fs::remove_all(dir);
}

TEST_P(CheckpointRef, ConfigFromShapesAlone) {
  // Without a sidecar, the fields shapes can tell are right and the rest are SD v1 defaults; a toy
  // width then fails validation with a pointer to the sidecar.
  RefModel m = ref_model(GetParam());
  std::string dir = temp_dir("shapes_" + m.name);
  std::string p = write_ldm(m, dir, StDType::F16);
  auto f = SafetensorsFile::open(p);
  std::vector<std::string> names;
  for (const auto& t : f->tensors()) names.push_back(t.name);
  ModelConfig c = infer_ldm_config(
      names, [&](const std::string& n) -> std::optional<Shape> {
        auto* t = f->find(n);
        return t ? std::optional<Shape>(t->shape) : std::nullopt;
      },
      p);
  expect_shape_fields(c, m);
  EXPECT_EQ(c.unet.heads, 8);
  EXPECT_EQ(c.unet.norm_groups, 32);
  EXPECT_EQ(c.clip.heads, 1);  // hidden / 64, at least 1
  std::string msg = error_of([&] { Checkpoint::open(p); });
  EXPECT_HAS(msg, "norm_num_groups 32");
  EXPECT_HAS(msg, "sidecar");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Models, CheckpointNameRef, ::testing::Values("sd_v1_tiny", "odd_layout", "sd_v1_full"));
INSTANTIATE_TEST_SUITE_P(Models, CheckpointRef, ::testing::Values("sd_v1_tiny", "odd_layout"));

TEST_P(CheckpointNameRef, ConfigFromLdmAndDiffusersShapes) {
  // Shapes alone (no files needed, so the real SD v1 sizes too): what shapes can tell is right,
  // the rest is the SD v1 default; at the real sizes that is every field.
  RefModel m = ref_model(GetParam());
  std::vector<std::string> ldm_names, canon_names;
  std::map<std::string, Shape> shapes;
  for (const Row& r : m.rows) {
    ldm_names.push_back(r.ldm), shapes[r.ldm] = r.ldm_shape;
    canon_names.push_back(r.canon), shapes[r.canon] = r.shape;
  }
  ShapeOf shape_of = [&](const std::string& n) -> std::optional<Shape> {
    auto it = shapes.find(n);
    return it == shapes.end() ? std::nullopt : std::optional<Shape>(it->second);
  };
  for (const ModelConfig& c : {infer_ldm_config(ldm_names, shape_of, m.name),
                               infer_diffusers_config(canon_names, shape_of, m.name)}) {
    expect_shape_fields(c, m);
    EXPECT_EQ(c.unet.heads, 8);
    EXPECT_EQ(c.unet.norm_groups, 32);
    EXPECT_EQ(c.clip.heads, std::max(1, m.clip["hidden_size"].get<int>() / 64));
    if (m.name == "sd_v1_full") {
      expect_all_fields(c, m);
      EXPECT_NO_THROW(validate_model_config(c, m.name));
      ModelConfig d;  // and the defaults of config.h are these sizes
      EXPECT_EQ(c.unet.block_channels, d.unet.block_channels);
      EXPECT_EQ(c.unet.down_attention, d.unet.down_attention);
      EXPECT_EQ(c.vae.block_channels, d.vae.block_channels);
      EXPECT_EQ(c.clip.intermediate, d.clip.intermediate);
      EXPECT_EQ(c.clip.vocab_size, d.clip.vocab_size);
    }
  }
}

TEST(Checkpoint, DiffusersFolderWithoutConfigFiles) {
  // Without config.json the shapes decide; a toy width then needs its config back.
  RefModel m = ref_model("sd_v1_tiny");
  std::string dir = temp_dir("nocfg");
  std::string folder = write_diffusers(m, dir);
  fs::remove(folder + "/unet/config.json");
  fs::remove(folder + "/text_encoder/config.json");
  std::string msg = error_of([&] { Checkpoint::open(folder); });
  EXPECT_HAS(msg, "unet width 8 is not a multiple of norm_num_groups 32");
  write_json(folder + "/unet/config.json", {{"norm_num_groups", 4}, {"attention_head_dim", 2}});
  auto ck = Checkpoint::open(folder);
  expect_shape_fields(ck->config(), m);
  EXPECT_EQ(ck->config().vae.norm_groups, 4);  // from vae/config.json, still there
  EXPECT_EQ(ck->config().clip.heads, 1);       // inferred: 16 / 64, at least 1
  // What was inferred is said, one note per missing file (the log prints them).
  const std::vector<std::string> notes = ck->notes();
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_HAS(notes[0], "no text_encoder/config.json; its architecture is inferred from the tensor shapes");
  fs::remove(folder + "/scheduler/scheduler_config.json");
  const std::vector<std::string> more = Checkpoint::open(folder)->notes();
  ASSERT_EQ(more.size(), 2u);
  EXPECT_HAS(more[1], "no scheduler/scheduler_config.json; sampling with SD v1's training schedule");
  fs::remove_all(dir);
}

TEST(Checkpoint, SdV1TableSpotChecks) {
  // The examples of DESIGN.md section 2 ("Checkpoint names"), at the real SD v1 config.
  CheckpointNames n{ModelConfig{}};
  const std::pair<const char*, const char*> cases[] = {
      {"model.diffusion_model.input_blocks.1.0.in_layers.0.weight", "unet.down_blocks.0.resnets.0.norm1.weight"},
      {"model.diffusion_model.input_blocks.3.0.op.bias", "unet.down_blocks.0.downsamplers.0.conv.bias"},
      {"model.diffusion_model.middle_block.1.proj_in.weight", "unet.mid_block.attentions.0.proj_in.weight"},
      {"model.diffusion_model.output_blocks.2.1.conv.weight", "unet.up_blocks.0.upsamplers.0.conv.weight"},
      {"model.diffusion_model.output_blocks.5.2.conv.weight", "unet.up_blocks.1.upsamplers.0.conv.weight"},
      {"model.diffusion_model.output_blocks.11.1.transformer_blocks.0.attn2.to_k.weight",
       "unet.up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight"},
      {"model.diffusion_model.input_blocks.11.0.emb_layers.1.weight", "unet.down_blocks.3.resnets.1.time_emb_proj.weight"},
      {"model.diffusion_model.out.0.weight", "unet.conv_norm_out.weight"},
      {"model.diffusion_model.out.2.bias", "unet.conv_out.bias"},
      {"model.diffusion_model.time_embed.2.weight", "unet.time_embedding.linear_2.weight"},
      {"first_stage_model.decoder.up.3.block.0.conv1.weight", "vae.decoder.up_blocks.0.resnets.0.conv1.weight"},
      {"first_stage_model.decoder.up.1.block.0.nin_shortcut.weight", "vae.decoder.up_blocks.2.resnets.0.conv_shortcut.weight"},
      {"first_stage_model.decoder.up.3.upsample.conv.weight", "vae.decoder.up_blocks.0.upsamplers.0.conv.weight"},
      {"first_stage_model.decoder.mid.attn_1.proj_out.weight", "vae.decoder.mid_block.attentions.0.to_out.0.weight"},
      {"first_stage_model.decoder.norm_out.bias", "vae.decoder.conv_norm_out.bias"},
      {"first_stage_model.post_quant_conv.weight", "vae.post_quant_conv.weight"},
      {"cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.bias",
       "text_encoder.text_model.encoder.layers.11.mlp.fc2.bias"},
  };
  for (auto [ldm, canon] : cases) {
    EXPECT_EQ(n.to_canonical(ldm).value_or("<none>"), canon);
    EXPECT_EQ(n.to_ldm(canon).value_or("<none>"), ldm);
  }
  EXPECT_FALSE(n.to_canonical("model.diffusion_model.output_blocks.11.2.conv.weight"));  // last level: no upsampler
  EXPECT_FALSE(n.to_canonical("first_stage_model.decoder.up.0.upsample.conv.weight"));
  EXPECT_EQ(CheckpointNames::legacy_diffusers_name("vae.decoder.mid_block.attentions.0.to_out.0.weight").value_or(""),
            "vae.decoder.mid_block.attentions.0.proj_attn.weight");
  EXPECT_FALSE(CheckpointNames::legacy_diffusers_name("vae.decoder.mid_block.attentions.0.group_norm.weight"));
}

TEST(Checkpoint, MissingAndMisshapedTensorsAreNamed) {
  RefModel m = ref_model("sd_v1_tiny");
  std::string dir = temp_dir("missing");
  const std::string ldm_name = "model.diffusion_model.input_blocks.4.0.skip_connection.weight";
  const std::string canon = "unet.down_blocks.1.resnets.0.conv_shortcut.weight";
  std::string p = write_ldm(m, dir, StDType::F32, {{"sdgen_config", sidecar_of(m).dump()}}, ldm_name);
  auto ck = Checkpoint::open(p);
  EXPECT_FALSE(ck->has(canon));
  std::string msg = error_of([&] { ck->get(canon, {16, 8, 1, 1}); });
  EXPECT_HAS(msg, p);
  EXPECT_HAS(msg, "'" + canon + "' not found");
  EXPECT_HAS(msg, "LDM name '" + ldm_name + "'");
  msg = error_of([&] { ck->get("unet.no_such.weight", {1}); });
  EXPECT_HAS(msg, "no LDM name corresponds");

  msg = error_of([&] { ck->get("unet.conv_in.weight", {8, 4, 3, 1}); });
  EXPECT_HAS(msg, "'unet.conv_in.weight' (stored as 'model.diffusion_model.input_blocks.0.0.weight')");
  EXPECT_HAS(msg, "has shape [8, 4, 3, 3], expected [8, 4, 3, 1]");
  // Trailing 1-dims are accepted both ways; anything else is not.
  EXPECT_EQ(ck->get("unet.conv_in.bias", {8, 1}).shape(), (Shape{8, 1}));
  EXPECT_EQ(ck->get("vae.decoder.mid_block.attentions.0.to_q.weight", {16, 16}).shape(), (Shape{16, 16}));
  msg = error_of([&] { ck->get("vae.decoder.mid_block.attentions.0.to_q.weight", {16, 1, 16}); });
  EXPECT_HAS(msg, "has shape [16, 16, 1, 1], expected [16, 1, 16]");

  std::string folder = write_diffusers(m, dir);
  fs::remove(folder + "/text_encoder/model.safetensors");
  msg = error_of([&] { Checkpoint::open(folder); });
  EXPECT_HAS(msg, "text_encoder/model.safetensors");
  fs::remove_all(dir);
}

TEST(Checkpoint, HalfAndBfloatConvertOnLoad) {
  // 0.1 is not representable: fp16 stores 0x2E66 = 1638/16384, bf16 0x3DCD = 205/2048 (hand-derived).
  RefModel m = ref_model("sd_v1_tiny");
  std::string dir = temp_dir("half");
  std::vector<StWriteTensor> ts;
  for (const Row& r : m.rows) {
    std::vector<float> v = identity_fill(r.canon, numel(r.shape));
    StDType dt = StDType::F16;
    if (r.canon == "unet.conv_in.bias") v.assign(v.size(), 0.1f);
    if (r.canon == "unet.conv_out.bias") v.assign(v.size(), 0.1f), dt = StDType::BF16;
    ts.push_back(st_tensor_from_floats(r.ldm, dt, r.ldm_shape, v));
  }
  std::string p = dir + "/half.safetensors";
  write_safetensors(p, ts, {{"sdgen_config", sidecar_of(m).dump()}});
  auto ck = Checkpoint::open(p);
  EXPECT_EQ(ck->get("unet.conv_in.bias", {8}).to_floats(), std::vector<float>(8, 1638.0f / 16384.0f));
  EXPECT_EQ(ck->get("unet.conv_out.bias", {4}).to_floats(), std::vector<float>(4, 205.0f / 2048.0f));
  EXPECT_EQ(ck->get("unet.conv_in.weight", {8, 4, 3, 3}).to_floats(), identity_fill("unet.conv_in.weight", 288));
  // A bf16 run takes bf16 tensors as stored (the file's bits, no round trip through fp32) and fp16
  // ones as fp32 values (exact), which the model's loader then rounds to bf16 once: 0x2E66 is
  // 0x3DCCC000 in fp32, whose low half 0xC000 rounds the bf16 up to 0x3DCD.
  const Tensor b = ck->get_stored("unet.conv_out.bias", {4}, DType::BF16);
  ASSERT_EQ(b.dtype(), DType::BF16);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.data_as<uint16_t>()[i], 0x3DCD) << i;
  const Tensor h = ck->get_stored("unet.conv_in.bias", {8}, DType::BF16);
  ASSERT_EQ(h.dtype(), DType::F32);
  const Tensor hb = ops::cast(h, DType::BF16);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(hb.data_as<uint16_t>()[i], 0x3DCD) << i;
  EXPECT_EQ(ck->get_stored("unet.conv_out.bias", {4}, DType::F32).to_floats(), std::vector<float>(4, 205.0f / 2048.0f));
  fs::remove_all(dir);
}

TEST(Checkpoint, LegacyDiffusersVaeAttentionNames) {
  RefModel m = ref_model("sd_v1_tiny");
  std::string dir = temp_dir("legacy");
  std::string folder = write_diffusers(m, dir, /*legacy_vae_names=*/true);
  auto ck = Checkpoint::open(folder);
  const std::string q = "vae.decoder.mid_block.attentions.0.to_q.weight";
  ASSERT_TRUE(ck->has(q));
  EXPECT_EQ(ck->get(q, {16, 16}).to_floats(), identity_fill(q, 256));
  const std::string o = "vae.encoder.mid_block.attentions.0.to_out.0.bias";
  EXPECT_EQ(ck->get(o, {16}).to_floats(), identity_fill(o, 16));
  fs::remove_all(dir);
}

TEST(Checkpoint, DiffusersConfigFiles) {
  RefModel m = ref_model("odd_layout");
  std::string dir = temp_dir("cfg");
  std::string folder = write_diffusers(m, dir);
  auto ck = Checkpoint::open(folder);
  EXPECT_TRUE(ck->notes().empty());  // every config file is there: nothing assumed
  // Its text encoder has a 10-row position table: fewer than one 77-token prompt chunk, refused as
  // a model error when the encoder is built (at load), not by an internal check at the first prompt.
  const std::string clip_msg = error_of([&] { ClipTextEncoder(*ck, ck->config().clip, DType::F32, Device::CPU); });
  EXPECT_HAS(clip_msg, "position table");
  EXPECT_HAS(clip_msg, "has 10 rows");
  const SchedulerConfig& s = ck->config().scheduler;
  const json& ref = reference()["scheduler_config"];
  EXPECT_FLOAT_EQ(s.beta_start, ref["beta_start"].get<float>());
  EXPECT_FLOAT_EQ(s.beta_end, ref["beta_end"].get<float>());
  EXPECT_EQ(s.beta_schedule, ref["beta_schedule"]);
  EXPECT_EQ(s.steps_offset, ref["steps_offset"]);
  EXPECT_EQ(s.set_alpha_to_one, ref["set_alpha_to_one"]);
  EXPECT_EQ(s.train_timesteps, ref["num_train_timesteps"]);

  // Heads per level (SD 2.x) must be one per level; a broken config.json names its file.
  json u = m.unet;
  u["attention_head_dim"] = {4, 8, 4, 8, 4, 8, 4};
  write_json(folder + "/unet/config.json", u);
  std::string msg = error_of([&] { Checkpoint::open(folder); });
  EXPECT_HAS(msg, folder);
  EXPECT_HAS(msg, "levels but 7 head counts");
  std::ofstream(folder + "/unet/config.json") << "{\"block_out_channels\": [8, 16";
  msg = error_of([&] { Checkpoint::open(folder); });
  EXPECT_HAS(msg, "unet/config.json is not valid JSON");
  fs::remove_all(dir);
}

TEST(Checkpoint, RejectsWhatIsNotACheckpoint) {
  std::string dir = temp_dir("reject");
  std::string msg = error_of([&] { Checkpoint::open(dir + "/nothing.safetensors"); });
  EXPECT_HAS(msg, "model not found");
  msg = error_of([&] { Checkpoint::open(dir); });
  EXPECT_HAS(msg, "without model_index.json");
  // Something that starts like torch.save's zip (PK\3\4) but is not one, and a raw pickle (the
  // format before PyTorch 1.6).
  std::ofstream(dir + "/model.ckpt", std::ios::binary) << "PK\x03\x04 rest of a zip";
  msg = error_of([&] { Checkpoint::open(dir + "/model.ckpt"); });
  EXPECT_HAS(msg, "model.ckpt: too short to be a zip file");
  std::ofstream(dir + "/model.bin", std::ios::binary) << "\x80\x02}q\x00(X\x05\x00\x00\x00";  // protocol-2 pickle
  msg = error_of([&] { Checkpoint::open(dir + "/model.bin"); });
  EXPECT_HAS(msg, "legacy (pre-1.6) format");
  // A single diffusers component file is not a whole model.
  write_safetensors(dir + "/unet.safetensors",
                    {st_tensor_from_floats("down_blocks.0.resnets.0.norm1.weight", StDType::F32, {2}, {1, 2})});
  msg = error_of([&] { Checkpoint::open(dir + "/unet.safetensors"); });
  EXPECT_HAS(msg, "no model.diffusion_model.* tensors");
  EXPECT_HAS(msg, "pass the folder");
  fs::remove_all(dir);
}

TEST(Checkpoint, SidecarOverridesMetadataOverridesShapes) {
  RefModel m = ref_model("sd_v1_tiny");
  std::string dir = temp_dir("sidecar");
  json meta = sidecar_of(m);
  meta["unet"]["attention_head_dim"] = 4;  // the file says 4 heads ...
  std::string p = write_ldm(m, dir, StDType::F32, {{"sdgen_config", meta.dump()}});
  EXPECT_EQ(Checkpoint::open(p)->config().unet.heads, 4);
  write_json(p + ".json", {{"unet", {{"attention_head_dim", 8}}}});  // ... the sidecar 8
  auto ck = Checkpoint::open(p);
  EXPECT_EQ(ck->config().unet.heads, 8);
  EXPECT_EQ(ck->config().unet.norm_groups, 4);  // still from the metadata
  EXPECT_EQ(ck->config().unet.block_channels, (std::vector<int>{8, 16, 16, 16}));  // from shapes

  write_json(p + ".json", {{"unet", {{"attention_head_dim", 3}}}});
  std::string msg = error_of([&] { Checkpoint::open(p); });
  EXPECT_HAS(msg, "not a multiple of the head count 3");
  write_json(p + ".json", {{"decoder", json::object()}});
  msg = error_of([&] { Checkpoint::open(p); });
  EXPECT_HAS(msg, p + ".json");
  EXPECT_HAS(msg, "unknown sdgen_config section 'decoder'");
  write_json(p + ".json", {{"vae", {{"norm_num_groups", "four"}}}});
  msg = error_of([&] { Checkpoint::open(p); });
  EXPECT_HAS(msg, "field 'norm_num_groups' is not an integer");
  fs::remove(p + ".json");
  p = write_ldm(m, dir, StDType::F32, {{"sdgen_config", "{not json"}});
  msg = error_of([&] { Checkpoint::open(p); });
  EXPECT_HAS(msg, "__metadata__ sdgen_config is not valid JSON");
  fs::remove_all(dir);
}

// transformers 5 saves CLIPTextModel without "text_model."; diffusers' conversion script and older
// community files carry that into LDM files (cond_stage_model.transformer.embeddings.*). Both forms
// serve the same canonical names, and a tensor truly missing is named as the file stores it.
TEST(Checkpoint, TextEncoderWithoutTextModelLevel) {
  RefModel m = ref_model("sd_v1_tiny");
  std::string dir = temp_dir("flatclip");
  const std::string meta = sidecar_of(m).dump();
  std::string ldm_path = write_ldm(m, dir, StDType::F16, {{"sdgen_config", meta}}, "", true);
  std::string folder = write_diffusers(m, dir, false, true);
  auto ldm = Checkpoint::open(ldm_path);
  auto dif = Checkpoint::open(folder);
  expect_all_fields(ldm->config(), m);
  expect_all_fields(dif->config(), m);
  std::set<std::string> expected;
  for (const Row& r : m.rows) expected.insert(r.canon);
  auto ln = ldm->names(), dn = dif->names();
  EXPECT_EQ(std::set<std::string>(ln.begin(), ln.end()), expected);
  EXPECT_EQ(std::set<std::string>(dn.begin(), dn.end()), expected);
  int clip_rows = 0;
  for (const Row& r : m.rows) {
    if (r.canon.compare(0, 13, "text_encoder.") != 0) continue;
    ++clip_rows;
    EXPECT_EQ(ldm->get(r.canon, r.shape).to_floats(), identity_fill(r.canon, numel(r.shape))) << r.canon;
    EXPECT_EQ(dif->get(r.canon, r.shape).to_floats(), identity_fill(r.canon, numel(r.shape))) << r.canon;
  }
  EXPECT_GT(clip_rows, 10);

  // Missing: the LDM file names its prefix-less key; the folder names the file and the stored key.
  const std::string canon = "text_encoder.text_model.encoder.layers.1.self_attn.out_proj.weight";
  fs::create_directories(dir + "/skip");
  std::string p = write_ldm(m, dir + "/skip", StDType::F32, {{"sdgen_config", meta}},
                            "cond_stage_model.transformer.text_model.encoder.layers.1.self_attn.out_proj.weight", true);
  std::string msg = error_of([&] { Checkpoint::open(p)->get(canon, {1}); });
  EXPECT_HAS(msg, p + ": tensor '" + canon + "' not found");
  EXPECT_HAS(msg, "LDM name 'cond_stage_model.transformer.encoder.layers.1.self_attn.out_proj.weight'");
  std::string f2 = write_diffusers(m, dir + "/skip", false, true, canon);
  msg = error_of([&] { Checkpoint::open(f2)->get(canon, {1}); });
  EXPECT_HAS(msg, "'" + canon + "' not found (looked for 'encoder.layers.1.self_attn.out_proj.weight' in " + f2 +
                      "/text_encoder/model.safetensors)");
  // A tensor the shape inference needs: named as stored too.
  p = write_ldm(m, dir + "/skip", StDType::F32, {{"sdgen_config", meta}},
                "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", true);
  msg = error_of([&] { Checkpoint::open(p); });
  EXPECT_HAS(msg, "'cond_stage_model.transformer.embeddings.position_embedding.weight'");
  EXPECT_EQ(msg.find("text_model"), std::string::npos) << msg;
  // The transformers 4 form of the folder names the stored key with its level.
  std::string f3 = write_diffusers(m, dir + "/skip4", false, false, canon);
  msg = error_of([&] { Checkpoint::open(f3)->get(canon, {1}); });
  EXPECT_HAS(msg, "(looked for 'text_model.encoder.layers.1.self_attn.out_proj.weight' in " + f3 + "/text_encoder/model.safetensors)");
  fs::remove_all(dir);
}

// Scheduler values the sampler indexes with or takes roots of are refused at load, naming the
// file and the field (a negative steps_offset read before the schedule; betas outside (0, 1) give
// NaN latents and a black image): model errors, exit code 3. In-range values still load.
TEST(Checkpoint, SchedulerValuesOutOfRangeAreModelErrors) {
  const std::string where = "model/scheduler/scheduler_config.json";
  const std::vector<std::pair<json, std::string>> bad = {
      {{{"steps_offset", -5}}, "steps_offset"},
      {{{"steps_offset", 1000}}, "steps_offset"},
      {{{"num_train_timesteps", 300000000}}, "num_train_timesteps"},
      {{{"num_train_timesteps", 1}}, "num_train_timesteps"},
      {{{"beta_start", 0.0}}, "beta_start/beta_end"},
      {{{"beta_start", 0.02}, {"beta_end", 0.01}}, "beta_start/beta_end"},
      {{{"beta_end", 1.5}}, "beta_start/beta_end"},
  };
  for (const auto& [j, field] : bad) {
    SCOPED_TRACE(j.dump());
    SchedulerConfig c;
    const std::string msg = error_of([&] { apply_scheduler_json(j, c, where); });
    EXPECT_NE(msg.find(where), std::string::npos) << msg;
    EXPECT_NE(msg.find(field), std::string::npos) << msg;
  }
  SchedulerConfig ok;
  apply_scheduler_json(json{{"steps_offset", 0}, {"num_train_timesteps", 1000}, {"beta_end", 0.012}}, ok, where);
  EXPECT_EQ(ok.steps_offset, 0);
}

// Config values that are integers or floats of the right JSON type but absurd: out of int's range
// (JSON 4294967360 would wrap to 64), widths of zero, a million layers (the name table and the loops
// over it would grow with the number), epsilons that are not small and positive, a scaling factor
// that divides the latents by zero or flips their sign, a position table shorter than one 77-token
// chunk. Each is a model error naming the source and the field, from the config alone.
TEST(Checkpoint, AbsurdConfigValuesAreModelErrors) {
  const std::string where = "model/x/config.json";
  struct Case {
    const char* part;
    json j;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"unet", {{"in_channels", 4294967360LL}}, "in_channels"},
      {"unet", {{"norm_num_groups", -4294967296LL}}, "norm_num_groups"},
      {"unet", {{"block_out_channels", {320, 4294967616LL}}}, "block_out_channels"},
      {"unet", {{"block_out_channels", {0, 32}}, {"down_block_types", {"DownBlock2D", "DownBlock2D"}}}, "width 0"},
      {"unet", {{"layers_per_block", 1000000}}, "layers_per_block"},
      {"unet", {{"layers_per_block", 2147483647}}, "layers_per_block"},
      {"unet", {{"cross_attention_dim", -768}}, "cross_attention_dim"},
      {"unet", {{"norm_eps", -1e-5}}, "norm_eps"},
      {"unet", {{"norm_eps", 1e300}}, "norm_eps"},
      {"vae", {{"scaling_factor", 0.0}}, "scaling_factor"},
      {"vae", {{"scaling_factor", -0.18215}}, "scaling_factor"},
      {"vae", {{"layers_per_block", 1000000}}, "layers_per_block"},
      {"vae", {{"latent_channels", 0}}, "latent_channels"},
      {"vae", {{"in_channels", 0}}, "in_channels"},
      {"text_encoder", {{"num_hidden_layers", 1000000}}, "num_hidden_layers"},
      {"text_encoder", {{"max_position_embeddings", 0}}, "sizes must be positive"},
      {"text_encoder", {{"layer_norm_eps", 0.0}}, "layer_norm_eps"},
      {"text_encoder", {{"hidden_size", 4294968064LL}}, "hidden_size"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.part) + " " + c.j.dump());
    const std::string msg = error_of([&] {
      ModelConfig cfg;
      apply_sdgen_config_json(json{{c.part, c.j}}, cfg, where);
      validate_model_config(cfg, where);
    });
    EXPECT_HAS(msg, where);
    EXPECT_HAS(msg, c.field);
  }
  ModelConfig sd15;  // the defaults are SD v1.5's and pass
  validate_model_config(sd15, where);
}

// Block indices in tensor names drive the inferred config: an index no SD v1 model has (2^31 - 1
// overflowed a signed count; 10^9 spun for minutes building a name table; past INT_MAX the digit
// parse threw a non-model error) is refused naming the tensor. The tiny model's own names pass.
TEST(Checkpoint, BlockIndicesNoSdV1HasAreModelErrors) {
  auto f = SafetensorsFile::open(std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors");
  std::vector<std::string> names;
  std::map<std::string, Shape> shapes;
  for (const StTensorInfo& t : f->tensors()) {
    names.push_back(t.name);
    shapes[t.name] = t.shape;
  }
  auto infer = [&](const std::vector<std::string>& extra) {
    std::vector<std::string> all = names;
    all.insert(all.end(), extra.begin(), extra.end());
    const ShapeOf shape_of = [&](const std::string& n) -> std::optional<Shape> {
      auto it = shapes.find(n);
      if (it != shapes.end()) return it->second;
      if (std::find(extra.begin(), extra.end(), n) != extra.end()) return Shape{4, 4, 3, 3};
      return std::nullopt;
    };
    return infer_ldm_config(all, shape_of, "x.safetensors");
  };
  infer({});  // (the tiny model's group counts come from its sidecar: not validated here)
  for (const std::string& bad :
       {std::string("model.diffusion_model.input_blocks.2147483647.0.weight"),
        std::string("model.diffusion_model.input_blocks.1000000000.0.op.weight"),
        std::string("first_stage_model.decoder.up.99999999999.block.0.conv2.weight"),
        std::string("first_stage_model.decoder.up.0.block.1000.conv2.weight"),
        std::string("cond_stage_model.transformer.text_model.encoder.layers.2147483648.mlp.fc1.weight")}) {
    SCOPED_TRACE(bad);
    const std::string msg = error_of([&] { infer({bad}); });
    EXPECT_HAS(msg, "x.safetensors");
    EXPECT_HAS(msg, bad);
    EXPECT_HAS(msg, "block index");
  }
}

// --ema: the UNet from LitEma's copies (model_ema.<name without dots>). The tiny model with EMA
// copies of every UNet tensor set to twice the weights: with --ema each UNet tensor reads doubled,
// the VAE and text encoder as stored; without, everything as stored. A file with only some copies
// (the tiny file's single model_ema tensor) names the first missing one; a folder refuses --ema.
TEST(Checkpoint, EmaChoosesLitEmaCopiesOfTheUnet) {
  const std::string dir = temp_dir("ema");
  const std::string src = std::string(SDGEN_TEST_DATA) + "/tiny_sd/tiny_sd.safetensors";
  auto f = SafetensorsFile::open(src);
  std::vector<StWriteTensor> ts, no_ema;
  for (const StTensorInfo& t : f->tensors()) {
    if (!st_dtype_is_float(t.dtype) || t.name.rfind("model_ema.", 0) == 0) continue;  // its own partial copy
    std::vector<float> v = f->to_floats(t);
    ts.push_back(st_tensor_from_floats(t.name, StDType::F32, t.shape, v));
    no_ema.push_back(ts.back());
    if (t.name.rfind("model.diffusion_model.", 0) == 0) {
      std::string ema = "model_ema.";
      for (char c : t.name.substr(6)) if (c != '.') ema += c;
      for (float& x : v) x *= 2;
      ts.push_back(st_tensor_from_floats(ema, StDType::F32, t.shape, v));
    }
  }
  const std::string file = dir + "/ema.safetensors";
  write_safetensors(file, ts);
  fs::copy_file(src + ".json", file + ".json");
  auto plain = Checkpoint::open(file);
  auto ema = Checkpoint::open(file, OpenOptions{true});
  for (const char* n : {"unet.conv_in.weight", "unet.down_blocks.0.resnets.0.norm1.weight", "unet.conv_out.bias"}) {
    const Shape s = *plain->stored_shape(n);
    const std::vector<float> a = plain->get(n, s).to_floats(), b = ema->get(n, s).to_floats();
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(b[i], 2 * a[i]) << n << " [" << i << "]";
  }
  const char* vae = "vae.decoder.conv_in.weight";
  EXPECT_EQ(plain->get(vae, *plain->stored_shape(vae)).to_floats(), ema->get(vae, *ema->stored_shape(vae)).to_floats());
  // The tiny file itself carries one EMA tensor (model_ema.diffusion_modeltime_embed0weight).
  std::string msg = error_of([&] { Checkpoint::open(src, OpenOptions{true}); });
  EXPECT_HAS(msg, "--ema: the EMA copy of 'model.diffusion_model.");
  const std::string bare = dir + "/bare.safetensors";
  write_safetensors(bare, no_ema);
  fs::copy_file(src + ".json", bare + ".json");
  msg = error_of([&] { Checkpoint::open(bare, OpenOptions{true}); });
  EXPECT_HAS(msg, "has no EMA weights");
  msg = error_of([&] { Checkpoint::open(std::string(SDGEN_TEST_DATA) + "/tiny_sd/diffusers", OpenOptions{true}); });
  EXPECT_HAS(msg, "--ema applies to single files");
  fs::remove_all(dir);
}
