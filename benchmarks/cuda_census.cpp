// cuda_census: what the CUDA path asks of a GPU for one whole generation, counted without a GPU.
// It runs the real CUDA backend host code (src/backend/cuda/, the kernels' launchers) through the
// SIMT emulator in dry mode: every allocation, copy, synchronization, kernel launch, graph launch
// and cuBLAS/cuDNN call is recorded with its arguments, nothing is executed, and the weights stay
// virtual, so the full-size SD v1.5 graph is counted in seconds. Per phase (weight load, text
// encoder, one UNet step, the whole sampling loop, VAE decode, whole run) it reports the counts,
// the FLOPs and bytes, the largest buffer and the peak device memory, and a roofline estimate of
// the time on three GPUs (tests/simt/simt_census.h states the fixed assumptions). Beside the FLOPs
// counted from the recorded calls it reports the analytic count of the same work
// (src/pipeline/flops.h, the one sd-gen bench takes MFU from), so the two cross-check.
//
//   cuda_census --model random:sd15|random:sd21 --batch 3 --steps 25 --width 512 --height 512
//               --precision fp16|bf16|fp32 [--guidance G] [--guidance-rescale PHI]
//               [--prediction-type epsilon|v_prediction] [--cuda-graphs on|off] [--vae-batch N]
//               [--keep-step-graph] [--encode] [--strength S [--inpaint]] [--preview-every N] [--vae-tiny]
//               [--controlnets N [--guess-mode]] [--json]
//               [--hires-scale F [--hires-steps N] [--hires-denoise S] [--hires-upscaler U]]
// --controlnets N: N ControlNets of SD's architecture (random weights, kRandomControlNet) with a
// control image each, run in every unit; their hint encoders run once, in sampling_setup (not in the
// analytic count). --guess-mode: they see the conditional rows only (the analytic count assumes all).
// --vae-tiny: SD's TAESD (TaesdConfig's defaults; a zero-valued decoder file written to the temp
// folder, the census computing no values) decodes instead of the full VAE decoder.
// --encode: the pipeline loads the VAE encoder too (ModelOptions::need_encoder), and after the
// generation encodes a batch of `--batch` images of the same size (phase vae_encode), as images in
// will; weight_load and run then include the encoder. --strength S: an img2img generation instead
// (a grey picture of the run's size, encoded once in phase vae_encode of the run, then the steps
// that strength S leaves); with --inpaint, an inpainting one (its left half masked: the blend after
// every unit; with --model random:sd15-inpainting, the 9-channel UNet's input instead, and the
// masked picture encoded too). Without either every figure is text-to-image's.
// --preview-every N: live previews (GenerateParams::preview): the denoised estimate in the recorded
// step, and its asynchronous download after every N units, waited for once the next unit is queued
// (the PNG itself is the CLI's, on the host).
// --hires-scale F: a hires-fix generation (pipeline/hires.h): the first pass at the run's size, the
// upscale, the second pass at int(side·F); each phase row sums both passes (the loop rows: the
// steady steps of both), the analytic count of the run adds the second pass's text encode, units,
// decode and (lanczos) encode.
// One generation, as `sd-gen --prompt` makes it: the recorded step is dropped before the VAE
// (--keep-step-graph keeps it, as for a next prompt with the same settings).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <unistd.h>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/trace.h"
#include "io/checkpoint.h"
#include "io/controlnet_file.h"
#include "io/safetensors.h"
#include "pipeline/dry_run.h"
#include "pipeline/flops.h"
#include "pipeline/pipeline.h"
#include "vae/vae_encoder.h"
#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "simt_census.h"

using namespace sdgen;
namespace census = simt::census;

namespace {

void on_phase(const char* name, int step) {
  census::set_phase(step >= 0 ? std::string(name) + "." + std::to_string(step) : std::string(name));
}

// a += b, for phases that are reported together (the sampling loop is its setup and its steps).
void merge(census::Phase& a, const census::Phase& b) {
  a.allocs += b.allocs, a.frees += b.frees, a.alloc_bytes += b.alloc_bytes, a.free_bytes += b.free_bytes;
  a.h2d += b.h2d, a.d2h += b.d2h, a.d2d += b.d2d;
  a.h2d_bytes += b.h2d_bytes, a.d2h_bytes += b.d2h_bytes, a.d2d_bytes += b.d2d_bytes;
  a.syncs += b.syncs;
  for (auto& [k, v] : b.sync_calls) a.sync_calls[k] += v;
  a.launches += b.launches, a.graph_launches += b.graph_launches, a.graph_kernels += b.graph_kernels;
  a.captures += b.captures;
  for (auto& [k, v] : b.setup_in_capture) a.setup_in_capture[k] += v;
  for (auto& [k, v] : b.kernels) {
    a.kernels[k].launches += v.launches;
    a.kernels[k].bytes += v.bytes;
    a.kernels[k].flops += v.flops;
  }
  for (auto& [k, v] : b.library_calls) a.library_calls[k] += v;
  a.flops_gemm += b.flops_gemm, a.flops_conv += b.flops_conv, a.flops_attention += b.flops_attention;
  a.flops_other += b.flops_other, a.bytes += b.bytes;
  a.largest_buffer_bytes = std::max(a.largest_buffer_bytes, b.largest_buffer_bytes);
  a.peak_device_bytes = std::max(a.peak_device_bytes, b.peak_device_bytes);
  a.estimate_s.resize(census::gpus().size(), 0.0);
  for (size_t g = 0; g < b.estimate_s.size(); ++g) a.estimate_s[g] += b.estimate_s[g];
}

nlohmann::json to_json(const census::Phase& p) {
  nlohmann::json j;
  j["allocs"] = p.allocs;
  j["alloc_bytes"] = p.alloc_bytes;
  j["frees"] = p.frees;
  j["free_bytes"] = p.free_bytes;
  j["h2d"] = p.h2d;
  j["h2d_bytes"] = p.h2d_bytes;
  j["d2h"] = p.d2h;
  j["d2h_bytes"] = p.d2h_bytes;
  j["d2d"] = p.d2d;
  j["d2d_bytes"] = p.d2d_bytes;
  j["syncs"] = p.syncs;
  j["sync_calls"] = p.sync_calls;
  j["launches"] = p.launches;
  j["graph_launches"] = p.graph_launches;
  j["graph_kernels"] = p.graph_kernels;
  j["captures"] = p.captures;
  j["setup_in_capture"] = p.setup_in_capture;
  nlohmann::json k = nlohmann::json::object();
  for (auto& [name, v] : p.kernels) k[name] = {{"launches", v.launches}, {"bytes", v.bytes}, {"flops", v.flops}};
  j["kernels"] = k;
  j["library_calls"] = p.library_calls;
  j["flops"] = {{"gemm", p.flops_gemm}, {"conv", p.flops_conv}, {"attention", p.flops_attention},
                {"other", p.flops_other}, {"total", p.flops()}};
  j["bytes"] = p.bytes;
  j["largest_buffer_bytes"] = p.largest_buffer_bytes;
  j["peak_device_bytes"] = p.peak_device_bytes;
  nlohmann::json e = nlohmann::json::object();
  for (size_t g = 0; g < census::gpus().size(); ++g) e[census::gpus()[g].name] = p.estimate_s.at(g);
  j["estimate_s"] = e;
  return j;
}

uint64_t sum_calls(const std::map<std::string, uint64_t>& m) {
  uint64_t n = 0;
  for (auto& kv : m) n += kv.second;
  return n;
}

void print_table(const std::vector<std::pair<std::string, census::Phase>>& rows,
                 const std::map<std::string, double>& analytic) {
  std::printf("%-22s", "");
  for (auto& [name, p] : rows) std::printf("%16s", name.c_str());
  std::printf("\n");
  auto line = [&](const char* label, auto get) {
    std::printf("%-22s", label);
    for (auto& [name, p] : rows) std::printf("%16s", get(p).c_str());
    std::printf("\n");
  };
  auto num = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.0f", v);
    return std::string(b);
  };
  auto sci = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3g", v);
    return std::string(b);
  };
  auto mib = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f MiB", v / 1048576.0);
    return std::string(b);
  };
  line("allocs", [&](auto& p) { return num((double)p.allocs); });
  line("alloc bytes", [&](auto& p) { return mib(p.alloc_bytes); });
  line("frees", [&](auto& p) { return num((double)p.frees); });
  line("h2d copies", [&](auto& p) { return num((double)p.h2d); });
  line("h2d bytes", [&](auto& p) { return mib(p.h2d_bytes); });
  line("d2h copies", [&](auto& p) { return num((double)p.d2h); });
  line("syncs", [&](auto& p) { return num((double)p.syncs); });
  line("kernel launches", [&](auto& p) { return num((double)p.launches); });
  line("graph launches", [&](auto& p) { return num((double)p.graph_launches); });
  line("kernels in graphs", [&](auto& p) { return num((double)p.graph_kernels); });
  line("stream captures", [&](auto& p) { return num((double)p.captures); });
  line("set-up in capture", [&](auto& p) { return num((double)sum_calls(p.setup_in_capture)); });
  line("library calls", [&](auto& p) { return num((double)sum_calls(p.library_calls)); });
  line("FLOP gemm", [&](auto& p) { return sci(p.flops_gemm); });
  line("FLOP conv", [&](auto& p) { return sci(p.flops_conv); });
  line("FLOP attention", [&](auto& p) { return sci(p.flops_attention); });
  line("FLOP total", [&](auto& p) { return sci(p.flops()); });
  std::printf("%-22s", "FLOP analytic");
  for (auto& [name, p] : rows) std::printf("%16s", sci(analytic.at(name)).c_str());
  std::printf("\n");
  line("bytes moved", [&](auto& p) { return sci(p.bytes); });
  line("largest buffer", [&](auto& p) { return mib(p.largest_buffer_bytes); });
  line("peak device memory", [&](auto& p) { return mib(p.peak_device_bytes); });
  for (size_t g = 0; g < census::gpus().size(); ++g)
    line((std::string("est. s ") + census::gpus()[g].name).c_str(),
         [&](auto& p) { return sci(p.estimate_s.at(g)); });
}

int usage(const char* msg) {
  std::fprintf(stderr, "cuda_census: %s\nusage: cuda_census --model random:sd15 --batch 3 --steps 25 --width 512 "
                       "--height 512 --precision fp16|bf16|fp32 [--guidance G] [--guidance-rescale PHI] [--prediction-type T] [--cuda-graphs on|off] [--sampler NAME] "
                       "[--schedule default|karras] [--encode] [--strength S [--inpaint]] [--vae-tiny] [--json]\n", msg);
  return 2;
}

}  // namespace

// SD's TAESD decoder (TaesdConfig's defaults) under diffusers' names, every value 0, fp16: what
// --vae-tiny opens (the census runs no values). Returns its path.
std::string write_sd_taesd_decoder() {
  const TaesdConfig c;
  std::vector<StWriteTensor> t;
  auto conv = [&](const std::string& name, int64_t out, int64_t in, int k, bool bias) {
    t.push_back(st_tensor_from_floats(name + ".weight", StDType::F16, {out, in, k, k}, std::vector<float>(out * in * k * k)));
    if (bias) t.push_back(st_tensor_from_floats(name + ".bias", StDType::F16, {out}, std::vector<float>(out)));
  };
  const std::string p = "decoder.layers.";
  conv(p + "0", c.decoder_block_channels[0], c.latent_channels, 3, true);
  int k = 2;
  for (size_t i = 0; i < c.decoder_blocks.size(); ++i) {
    const int64_t ch = c.decoder_block_channels[i];
    for (int b = 0; b < c.decoder_blocks[i]; ++b, ++k)
      for (int j : {0, 2, 4}) conv(p + std::to_string(k) + ".conv." + std::to_string(j), ch, ch, 3, true);
    const bool last = i + 1 == c.decoder_blocks.size();
    if (!last) ++k;
    conv(p + std::to_string(k++), last ? c.out_channels : ch, ch, 3, last);
  }
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("cuda_census_taesd_" + std::to_string(getpid()) + ".safetensors")).string();
  write_safetensors(path, t);
  return path;
}

int main(int argc, char** argv) {
  std::string model = kRandomSd15, precision = "fp16", sampler = "ddim", schedule = "default";
  GenerateParams gp;
  gp.keep_step_graph = false;
  gp.check_finite = false;  // a dry run computes no values: nothing to check, no fp32 retry to count
  gp.prompt = "a lighthouse at dusk, oil painting";
  gp.batch = 3;
  gp.steps = 25;
  gp.seed = 42;
  bool json = false, encode = false, vae_tiny = false;
  int controlnets = 0;
  double strength = -1;  // img2img's, when given
  bool inpaint = false;
  double hires_scale = 0;
  std::string hires_upscaler = "latent";
  double encode_flops = 0;
  for (int i = 1; i < argc; ++i) {
    auto val = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) {
        std::exit(usage((std::string(flag) + " needs a value").c_str()));
      }
      return argv[++i];
    };
    const std::string a = argv[i];
    if (a == "--model") model = val("--model");
    else if (a == "--batch") gp.batch = std::atoi(val("--batch"));
    else if (a == "--steps") gp.steps = std::atoi(val("--steps"));
    else if (a == "--width") gp.width = std::atoi(val("--width"));
    else if (a == "--height") gp.height = std::atoi(val("--height"));
    else if (a == "--guidance") gp.guidance = (float)std::atof(val("--guidance"));
    else if (a == "--guidance-rescale") gp.guidance_rescale = (float)std::atof(val("--guidance-rescale"));
    else if (a == "--prediction-type") gp.prediction_type = val("--prediction-type");
    else if (a == "--precision") precision = val("--precision");
    else if (a == "--vae-batch") gp.vae_batch = std::atoi(val("--vae-batch"));
    else if (a == "--sampler") sampler = val("--sampler");
    else if (a == "--schedule") schedule = val("--schedule");
    else if (a == "--keep-step-graph") gp.keep_step_graph = true;
    else if (a == "--json") json = true;
    else if (a == "--encode") encode = true;
    else if (a == "--vae-tiny") vae_tiny = true;
    else if (a == "--controlnets") controlnets = std::atoi(val("--controlnets"));
    else if (a == "--guess-mode") gp.guess_mode = true;
    else if (a == "--strength") strength = std::atof(val("--strength"));
    else if (a == "--inpaint") inpaint = true;
    else if (a == "--preview-every") {
      gp.preview_every = std::atoi(val("--preview-every"));
      gp.preview = [](int, int, const std::vector<float>&, int, int, int) {};
    }
    else if (a == "--hires-scale") hires_scale = std::atof(val("--hires-scale"));
    else if (a == "--hires-steps") gp.hires.steps = std::atoi(val("--hires-steps"));
    else if (a == "--hires-denoise") gp.hires.denoise = std::atof(val("--hires-denoise"));
    else if (a == "--hires-upscaler") hires_upscaler = val("--hires-upscaler");
    else if (a == "--cuda-graphs") {
      const std::string v = val("--cuda-graphs");
      if (v != "on" && v != "off") return usage("--cuda-graphs must be on or off");
      gp.cuda_graphs = v == "on";
    }
    else if (a == "--help" || a == "-h") return usage("counts the CUDA path of one generation") == 2 ? 0 : 0;
    else return usage(("unknown argument " + a).c_str());
  }
  if (precision != "fp16" && precision != "fp32" && precision != "bf16") return usage("--precision must be fp16, bf16 or fp32");
  if (gp.batch < 1 || gp.steps < 1 || gp.width % 64 || gp.height % 64 || gp.width < 64 || gp.height < 64)
    return usage("batch and steps must be >= 1, width and height multiples of 64");
  const DType dt = precision == "fp16" ? DType::F16 : precision == "bf16" ? DType::BF16 : DType::F32;
  if (strength >= 0) {
    if (strength > 1) return usage("--strength must be between 0 and 1");
    auto grey = std::make_shared<RgbImage>();
    grey->width = gp.width, grey->height = gp.height;
    grey->pixels.assign((size_t)gp.width * gp.height * 3, 128);
    gp.init_image = grey;
    gp.strength = strength;
    if (inpaint) {
      auto mask = std::make_shared<RgbImage>(*grey);
      for (int y = 0; y < gp.height; ++y)
        for (int x = 0; x < gp.width; ++x)
          for (int c = 0; c < 3; ++c) mask->pixels[((size_t)y * gp.width + x) * 3 + c] = x < gp.width / 2 ? 255 : 0;
      gp.mask = mask;
    }
  } else if (inpaint) {
    return usage("--inpaint needs --strength");
  }
  if (hires_scale > 0) {
    if (strength >= 0) return usage("--hires-scale starts from text to image, not with --strength");
    gp.hires.width = hires_side(gp.width, hires_scale);
    gp.hires.height = hires_side(gp.height, hires_scale);
    if (gp.hires.width % 64 || gp.hires.height % 64) return usage("the hires size must be multiples of 64");
    bool known = false;
    for (HiresUpscaler u : {HiresUpscaler::Latent, HiresUpscaler::LatentNearest, HiresUpscaler::LatentBicubic,
                            HiresUpscaler::Lanczos})
      if (hires_upscaler == hires_upscaler_name(u)) gp.hires.upscaler = u, known = true;
    if (!known) return usage("--hires-upscaler must be latent, latent-nearest, latent-bicubic or lanczos");
  }
  try {
    gp.sampler = parse_sampler_options(sampler, schedule);
  } catch (const Error& e) {
    return usage(e.what());
  }

  set_cuda_backend_factory(&make_cuda_backend);
  census::set_dry(true);
  census::enable(true);
  trace::set_phase_hook(on_phase);
  WorkloadFlops analytic;
  try {
    ModelOptions options;
    if (vae_tiny) options.vae_tiny = write_sd_taesd_decoder();
    struct Remove {  // the temporary TAESD file, whatever the run's outcome
      std::string path;
      ~Remove() {
        std::error_code ec;
        if (!path.empty()) std::filesystem::remove(path, ec);
      }
    } remove_taesd{options.vae_tiny};
    // ControlNets: SD's architecture with random weights, one control image each (values unused).
    if (controlnets < 0 || controlnets > 4) return usage("--controlnets must be 0..4");
    auto control_image = std::make_shared<RgbImage>();
    control_image->width = gp.width, control_image->height = gp.height;
    control_image->pixels.assign((size_t)gp.width * gp.height * 3, 0);
    for (int k = 0; k < controlnets; ++k) {
      const std::string path = std::string(kRandomControlNet) + "-" + std::to_string(k);
      options.controlnets.push_back(path);
      gp.controls.push_back({path, control_image, 1.0f});
    }
    options.need_encoder = encode || gp.init_image || (gp.hires.enabled() && !is_latent_upscaler(gp.hires.upscaler));
    Pipeline pipe(model, dt, Device::CUDA, nullptr, options);
    pipe.generate(gp);
    analytic = workload_flops(pipe.checkpoint().config(), gp.batch, gp.width, gp.height, gp.steps, gp.guidance);
    if (controlnets > 0) {  // the nets run in every unit beside the UNet (their hint encoders once, in setup)
      const ModelConfig& m = pipe.checkpoint().config();
      const double with = unet_pass(m.unet, analytic.unet_batch, gp.height / 8, gp.width / 8, m.clip.max_positions,
                                    DType::F32, controlnets).flops;
      analytic.total += gp.steps * (with - analytic.unet_per_step);
      analytic.unet_per_step = with;
    }
    if (vae_tiny) {
      analytic.total -= analytic.vae;
      analytic.vae = taesd_decoder_pass(TaesdConfig(), gp.batch, gp.height, gp.width).flops;
      analytic.total += analytic.vae;
    }
    if (gp.init_image) {  // one picture encoded inside the run; an inpainting model's masked one too
      const bool nine = pipe.checkpoint().config().unet.in_channels == 9;
      const int pictures = nine ? (gp.strength < 1.0 ? 2 : 1) : 1;
      encode_flops = pictures * vae_encoder_flops(pipe.checkpoint().config().vae, 1, gp.height, gp.width);
    }
    if (gp.hires.enabled()) {  // the second pass: its text encode, units, decode; lanczos: its encodes
      const HiresParams& h = gp.hires;
      const int steps2 = h.steps > 0 ? h.steps : gp.steps;
      const int units2 = plan_sampler(gp.sampler, pipe.checkpoint().config().scheduler, steps2,
                                      img2img_begin(steps2, h.denoise)).units;
      const WorkloadFlops second =
          workload_flops(pipe.checkpoint().config(), gp.batch, h.width, h.height, steps2, gp.guidance);
      analytic.total += second.clip + units2 * second.unet_per_step + second.vae;
      if (is_latent_upscaler(h.upscaler)) analytic.total -= analytic.vae;  // the first pass decodes nothing
      else analytic.total += vae_encoder_flops(pipe.checkpoint().config().vae, gp.batch, h.height, h.width);
    }
    if (encode) {
      census::set_phase("vae_encode");
      (void)pipe.vae_encoder()->moments(Tensor::zeros({gp.batch, gp.height, gp.width, 3}));
      encode_flops = vae_encoder_flops(pipe.checkpoint().config().vae, gp.batch, gp.height, gp.width);
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "cuda_census: %s\n", e.what());
    return 1;
  }
  trace::set_phase_hook(nullptr);

  const auto& ph = census::phases();
  auto get = [&](const std::string& n) {
    const auto it = ph.find(n);
    if (it != ph.end()) return it->second;
    census::Phase none;  // a phase this run did not have (no recording without graphs)
    none.estimate_s.assign(census::gpus().size(), 0.0);
    return none;
  };
  // The loop is its steps after the first; what runs once before it (noise upload) is the sampling
  // setup, then the first step runs eagerly (unet_warmup: every library's first use, outside any
  // capture) and the step is recorded (step_recording). One step: the last (steady state).
  // A unit is one UNet evaluation: as many as steps, but 2·steps − 1 for Heun and DPM2 and
  // steps + 1 for PNDM (src/sampler/sampler.h).
  census::Phase loop;
  loop.estimate_s.assign(census::gpus().size(), 0.0);
  const int first = ph.count("unet_step.0") ? 0 : 1;
  int units = first;
  while (ph.count("unet_step." + std::to_string(units))) merge(loop, get("unet_step." + std::to_string(units++)));
  const int loop_units = units - first;
  std::vector<std::pair<std::string, census::Phase>> rows = {
      {"weight_load", get("weight_load")}, {"text_encoder", get("text_encoder")},
      {"sampling_setup", get("sampling_setup")}, {"unet_warmup", get("unet_warmup")},
      {"step_recording", get("step_recording")}, {"unet_step", get(units > first ? "unet_step." + std::to_string(units - 1) : "unet_warmup")},
      {"sampling_loop", loop}, {"vae_decode", get("vae_decode")}, {"run", get("run")}};
  // The census's "run" is everything counted, so with --encode it includes the encode (and
  // weight_load the encoder's weights); img2img and a lanczos hires pass encode inside the generation.
  if (encode) rows.insert(rows.end() - 1, {"vae_encode", get("vae_encode")});
  else if (gp.init_image || (gp.hires.enabled() && !is_latent_upscaler(gp.hires.upscaler)))
    rows.insert(rows.begin() + 2, {"vae_encode", get("vae_encode")});
  const census::Phase& run = rows.back().second;
  // The analytic count per reported phase (dense work only: convs, linears, attention products).
  std::map<std::string, double> analytic_by_phase = {
      {"weight_load", 0.0}, {"text_encoder", analytic.clip}, {"sampling_setup", 0.0},
      {"unet_warmup", first * analytic.unet_per_step}, {"step_recording", 0.0},
      {"unet_step", analytic.unet_per_step}, {"sampling_loop", loop_units * analytic.unet_per_step},
      {"vae_decode", analytic.vae},
      {"run", analytic.total + (units - gp.steps) * analytic.unet_per_step + encode_flops},
      {"vae_encode", encode_flops}};
  if (json) {
    nlohmann::json j;
    j["model"] = model;
    j["precision"] = precision;
    j["batch"] = gp.batch;
    j["steps"] = gp.steps;
    j["width"] = gp.width;
    j["height"] = gp.height;
    j["guidance"] = gp.guidance;
    j["cuda_graphs"] = gp.cuda_graphs;
    j["assumptions"] =
        "estimate, not a measurement: per kernel or library call max(FLOPs at 60% of the dense peak of its "
        "precision, bytes at 70% of bandwidth) + 4 us per launch (1 us inside a CUDA graph); 10 us per "
        "synchronizing call, 50 us per allocation";
    nlohmann::json phases = nlohmann::json::object();
    for (auto& [name, p] : rows) {
      phases[name] = to_json(p);
      phases[name]["flops"]["analytic"] = analytic_by_phase.at(name);
    }
    j["phases"] = phases;
    nlohmann::json e = nlohmann::json::object();
    for (size_t g = 0; g < census::gpus().size(); ++g) e[census::gpus()[g].name] = run.estimate_s.at(g);
    j["estimate_s"] = e;
    std::printf("%s\n", j.dump(1).c_str());
    return 0;
  }
  std::printf("cuda_census: %s, %s, batch %d x %d steps, %dx%d, guidance %g, CUDA graphs %s (dry emulator run; "
              "times are estimates)\n\n",
              model.c_str(), precision.c_str(), gp.batch, gp.steps, gp.width, gp.height, gp.guidance,
              gp.cuda_graphs ? "on" : "off");
  print_table(rows, analytic_by_phase);
  std::printf("\nestimate: per kernel or library call max(FLOPs at 60%% of peak, bytes at 70%% of bandwidth) + 4 us "
              "per launch (1 us in a graph); 10 us per sync, 50 us per allocation\n");
  return 0;
}
