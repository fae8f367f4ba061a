#include "cli/options.h"

#include "cli/batch.h"
#include "cli/settings.h"
#include "io/checkpoint.h"
#include "io/model_hashes.h"
#include "io/weights_dir.h"
#include "io/file_write.h"
#include "pipeline/memory_estimate.h"
#include "sampler/sampler.h"

#include <omp.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sdgen/backend.h"
#include "sdgen/error.h"
#include "text/embeddings.h"
#include "text/prompt_weights.h"

namespace fs = std::filesystem;

namespace sdgen::cli {

namespace {
[[noreturn]] void bad(const Job& job, const std::string& what) {
  throw_usage((job.origin.empty() ? std::string() : job.origin + ": ") + what);
}

// Why a path the options name cannot be used: "no such file or folder", or what stat says
// otherwise (a loop of symbolic links is not a missing file). Empty when it exists.
std::string path_problem(const std::string& path, bool want_file) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) return want_file ? "no such file" : "no such file or folder";
    if (errno == ELOOP) return "a loop of symbolic links";
    return std::strerror(errno);
  }
  if (want_file && !S_ISREG(st.st_mode)) return "not a regular file";
  // A FIFO, socket or device is neither a weights file nor a folder of them (a FIFO would also block
  // the reader that opens it).
  if (!want_file && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) return "not a regular file or folder";
  return "";
}

// A folder to create that is already a name: a symbolic link whose target is missing (create_directory
// would say "File exists") or a loop; "" when the name is free.
std::string link_problem(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return "";
  if (::stat(path.c_str(), &st) != 0 && errno == ELOOP) return "a loop of symbolic links";
  std::error_code ec;
  return "a symbolic link to " + fs::read_symlink(path, ec).string() + ", which does not exist";
}

// The emphasis of the prompt and the negative prompt, as the text encoder will read them (without
// <lora:...> tags), checked before any work: usage errors naming the prompt and its file line.
void check_prompt_weights(const Job& job) {
  if (!job.emphasis) return;
  const bool cli = job.origin == "--prompt" || job.origin.empty();
  const std::string at = cli ? std::string() : job.origin + ": ";
  const std::pair<const std::string*, const char*> texts[] = {{&job.text_prompt, "prompt"},
                                                              {&job.negative_prompt, "negative_prompt"},
                                                              {&job.prompt_2, "prompt_2"},
                                                              {&job.negative_prompt_2, "negative_prompt_2"}};
  for (const auto& [text, key] : texts)
    if (const std::string why = prompt_weight_problem(*text); !why.empty()) {
      std::string flag = "--" + std::string(key);
      std::replace(flag.begin() + 2, flag.end(), '_', '-');
      throw_usage(at + (cli ? flag : std::string(key)) + ": " + why);
    }
}
}  // namespace

void validate_job(const Job& job) {
  if (job.prompt.empty() && job.origin != "--prompt") bad(job, "empty prompt");
  check_settings(job);
  // Files the model options name: missing ones are model errors, found before any work.
  const std::string at = job.origin.empty() ? std::string() : job.origin + ": ";
  std::string why;
  if (!job.vae.empty() && !(why = path_problem(job.vae, false)).empty()) throw_model(at + "--vae " + job.vae + ": " + why);
  if (!job.vae_tiny.empty() && !(why = path_problem(job.vae_tiny, false)).empty())
    throw_model(at + "--vae-tiny " + job.vae_tiny + ": " + why);
  for (const EmbeddingArg& e : job.embeddings)
    if (!(why = path_problem(e.file, true)).empty()) throw_model(at + "--embedding " + e.file + ": " + why);
  for (const LoraSpec& l : job_loras(job))
    if (!(why = path_problem(l.file, true)).empty()) throw_model(at + "--lora " + l.file + ": " + why);
  check_prompt_weights(job);
  expand_name(job.name_pattern, 0, 0, 0, job);  // a bad pattern fails before any work
  check_name_pattern(job);
}


int default_side(const std::string& model_path) {
  if (model_path == kRandomSdxl) return 1024;
  if (is_random_model(model_path)) return 512;
  // A model that does not open is reported when it loads, after the checks of every job and output
  // that come first today: here it only keeps SD's 512.
  try {
    return Checkpoint::open(model_path)->config().sdxl() ? 1024 : 512;
  } catch (const Error&) {
    return 512;
  }
}

void validate_job_for_model(Job& job, const std::function<int()>& model_side) {
  // Everything is checked with the size as it stands (512 where not given: a usage error comes
  // before the model is opened); then the model's default side replaces an unset 512, checked again.
  validate_job(job);
  if (job.width_given && job.height_given) return;
  const int side = model_side();
  if (side == 512) return;
  if (!job.width_given) job.width = side;
  if (!job.height_given) job.height = side;
  validate_job(job);
}

std::string resolve_model_path(const std::string& model_option) {
  std::string path = model_option;
  std::string how = "--model";
  if (path.empty()) {
    if (const char* env = std::getenv("SDGEN_MODEL"); env && *env) {
      path = env;
      how = "SDGEN_MODEL";
    }
  }
  if (path.empty()) {
    const std::string found =
        find_weights_file({"v1-5-pruned-emaonly-fp16.safetensors", "v1-5-pruned-emaonly.safetensors"});
    if (!found.empty()) return found;
    throw_model("no model given: pass --model PATH (a .safetensors file or a diffusers folder), set "
                "SDGEN_MODEL, or fetch SD v1.5 with weights/download_sd15.sh");
  }
  if (is_random_model(path)) return path;
  if (const std::string why = path_problem(path, false); !why.empty()) throw_model(how + " " + path + ": " + why);
  return path;
}


std::string parameters_text(const Job& job, uint64_t image_seed, int index, const std::string& model) {
  std::string s = job.prompt;
  if (!job.negative_prompt.empty()) s += "\nNegative prompt: " + job.negative_prompt;
  RecordContext ctx;
  ctx.model_name = model;
  std::vector<std::pair<int, std::string>> run = {{40, "Seed: " + std::to_string(image_seed)}, {60, "Model: " + model}};
  if (job.batch > 1) run.emplace_back(170, "Batch pos: " + std::to_string(index));
  return s + "\n" + settings_infotext(job, ctx, run);
}


std::vector<std::string> prepare_output_dir(const std::string& dir) {
  std::error_code ec;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 && errno == ELOOP) throw_output("--out " + dir + ": a loop of symbolic links");
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    throw_output("--out " + dir + ": exists and is not a folder");
  std::vector<std::string> created;
  for (fs::path p = fs::absolute(dir, ec); !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
    created.insert(created.begin(), p.string());
    if (p == p.parent_path()) break;
  }
  for (const std::string& p : created) {
    if (const std::string why = link_problem(p); !why.empty()) throw_output("--out " + dir + ": " + p + " is " + why);
    if (!fs::create_directory(p, ec) && ec) {
      remove_created_dirs(created);
      throw_output("--out " + dir + ": cannot create folder " + p + ": " + ec.message());
    }
  }
  clean_stale_temporaries(dir);
  // The probe is created exclusively: a file or link someone planted under its name is left alone
  // (and counts as "not writable" only if the folder refuses a new name, not because of the plant).
  const std::string base = dir + "/.sdgen-write-test-" + std::to_string((long)getpid());
  std::string probe = base;
  int fd = create_exclusive(probe);
  for (int i = 1; fd < 0 && (errno == EEXIST || errno == ELOOP) && i < 64; ++i)
    fd = create_exclusive(probe = base + "-" + std::to_string(i));
  if (fd < 0) {
    int err = errno;
    remove_created_dirs(created);
    throw_output("--out " + dir + ": folder is not writable: " + std::strerror(err));
  }
  ::close(fd);
  ::unlink(probe.c_str());
  return created;
}

void remove_created_dirs(const std::vector<std::string>& created) {
  std::error_code ec;
  for (auto it = created.rbegin(); it != created.rend(); ++it)
    if (fs::is_directory(*it, ec) && fs::is_empty(*it, ec)) fs::remove(*it, ec);
}


Device pick_device(const DeviceSpec& d, std::string* why_cpu) {
  if (d.kind == DeviceSpec::Cpu) return Device::CPU;
  if (d.kind == DeviceSpec::Cuda) {
    try {
      if (d.ordinal >= 0) set_cuda_device_ordinal(d.ordinal);
      backend_for(Device::CUDA);  // throws a runtime error (exit 5) naming why it cannot start
    } catch (const Error& e) {
      throw Error(e.code(), "--device " + d.text() + ": " + e.what());
    }
    return Device::CUDA;
  }
  if (!cuda_backend_registered()) return Device::CPU;
  try {
    backend_for(Device::CUDA);
    return Device::CUDA;
  } catch (const Error& e) {
    if (why_cpu) *why_cpu = e.what();
    return Device::CPU;
  }
}

MemoryLimit memory_limit(Device device, uint64_t max_memory) {
  const Backend::Available room = backend_for(device).available_memory();
  MemoryLimit l;
  l.capped = max_memory && max_memory < room.bytes;
  l.bytes = l.capped ? max_memory : room.bytes;
  l.source = room.source;
  return l;
}

std::string memory_refusal(const ModelConfig& cfg, const MemoryLimit& limit, const Job& job, int batch,
                           DType precision, Device device, bool keep_step_graph) {
  MemoryRequest r;
  r.precision = precision;
  r.device = device;
  r.batch = batch;
  r.width = job.width, r.height = job.height, r.steps = job.steps;
  r.guidance = job.guidance > 1.0f;
  r.keep_step_graph = keep_step_graph;
  r.vae_batch = job.vae_batch;
  r.threads = omp_get_max_threads();  // the CPU ops' team: OMP_NUM_THREADS, else the CPUs this process may use
  r.cuda_libraries_loaded = cuda_plugin_loaded();
  r.encoder = !job.init_image.empty();
  r.vae_tiny = !job.vae_tiny.empty();
  r.controlnets = (int)job.controls.size();
  // The hires fix: its second pass, at the larger size, dominates (the first pass's buffers go back
  // before it runs); lanczos encodes its pictures.
  if (const HiresParams h = job_hires(job); h.enabled()) {
    r.width = h.width, r.height = h.height, r.steps = h.steps > 0 ? h.steps : job.steps;
    r.encoder = !is_latent_upscaler(h.upscaler);
  }
  const MemoryEstimate e = estimate_memory(cfg, r);
  if (e.total() <= limit.bytes) return "";
  return std::to_string(r.width) + "x" + std::to_string(r.height) + ", batch " + std::to_string(batch) + ", " +
         dtype_name(precision) + " on " + device_name(device) + " needs about " + describe(e) + ", more than the " +
         format_bytes(limit.bytes) + " " + (limit.capped ? "of --max-memory" : "available (" + limit.source + ")") +
         "; use a smaller --batch or size" + (precision == DType::F32 ? ", or --precision fp16" : "");
}

}  // namespace sdgen::cli
