// The samplers, each as diffusers' scheduler of that name computes it (the model's scheduler
// config; epsilon or v-prediction: linear_form.h's model_eps), turned into a plan the device runs
// without a host value per step.
//
// Every sampler here is linear in what it keeps: per UNet evaluation ("unit") it reads the
// latents x, the guided model output ε, K state buffers s_k (earlier outputs, a saved sample) and,
// for the stochastic ones, one draw of noise z, and writes
//     x ← Σ_j A[0][j]·v_j ,   s_k ← Σ_j A[1+k][j]·v_j ,   v = (x, ε, s_0 … s_{K−1}, z)
// from the old values. The host works out A per unit in double (diffusers' float32 formulas,
// composed: a conversion to x0, the multistep combination and the update become one row), and
// ops::sampler_step applies it. The UNet's input is x / in_divisor[unit] at timesteps[unit].
// Heun and DPM2 evaluate the UNet twice per step (2·steps − 1 units), PNDM's PLMS steps + 1.
#pragma once
#include <string>
#include <vector>

#include "sdgen/config.h"

namespace sdgen {

enum class SamplerKind { Ddim, Pndm, Lms, Euler, EulerA, Heun, Dpm2, Dpmpp2m, Dpmpp2mSde, UniPc };
enum class Schedule { Default, Karras };  // --schedule default|karras (diffusers' use_karras_sigmas)

struct SamplerInfo {
  SamplerKind kind;
  const char* name;            // --sampler
  const char* a1111;           // A1111's name, "Karras" appended with --schedule karras
  const char* diffusers_class;
  bool stochastic;             // draws noise at every step
  bool karras;                 // --schedule karras is offered (diffusers' use_karras_sigmas)
  const char* default_spacing; // the class's timestep_spacing default
};
// Every sampler, in --help order.
const std::vector<SamplerInfo>& samplers();
const SamplerInfo& sampler_info(SamplerKind kind);
// nullptr when the name is unknown.
const SamplerInfo* find_sampler(const std::string& name);
// "ddim, pndm, lms, ..." for messages.
std::string sampler_names();
const char* schedule_name(Schedule s);  // "default", "karras"
bool parse_schedule(const std::string& text, Schedule* out);

struct SamplerOptions {
  SamplerKind kind = SamplerKind::Ddim;
  Schedule schedule = Schedule::Default;
  float eta = 0.0f;  // DDIM's η (0: deterministic)
  bool karras() const { return schedule == Schedule::Karras; }
  const char* name() const { return sampler_info(kind).name; }
  bool operator==(const SamplerOptions& o) const { return kind == o.kind && schedule == o.schedule && eta == o.eta; }
};
// Why the options do not go together, naming them as the command line does ("--schedule karras is
// not available for euler_a ...", "--eta applies to --sampler ddim only"); empty when they do. The
// one check of sampler, schedule and η: the CLI asks it before any work, plan_sampler again.
std::string sampler_problem(const SamplerOptions& o);
// The options from their words ("euler", "karras"); Error(kUsage) for an unknown word. The
// command line reads them through its settings table (cli/settings.h); this is for tools and tests.
SamplerOptions parse_sampler_options(const std::string& sampler, const std::string& schedule = "default",
                                     float eta = 0.0f);
// The A1111 name for the PNG metadata: "Euler a", "DPM++ 2M Karras", "DDIM".
std::string a1111_sampler_name(const SamplerOptions& o);
// Its inverse: "DPM++ 2M Karras" sets kind dpmpp_2m and schedule karras, "Euler a" euler_a and the
// default schedule (eta untouched); false for a name that is not one of ours.
bool from_a1111_sampler_name(const std::string& name, SamplerOptions* o);

struct SamplerPlan {
  static constexpr int kMaxState = 4;
  int units = 0;                    // UNet evaluations
  int state = 0;                    // K, the state buffers
  float init_sigma = 1.0f;          // text-to-image: the initial latents are noise × this
  // img2img: the initial latents are the image's latents x0 mixed with noise by the scheduler's
  // add_noise at the plan's begin step (also at strength 1, where the image still shows through),
  // x0·init_x0 + noise·init_noise, each product and the sum in float32 as torch computes them.
  float init_x0 = 1.0f;
  float init_noise = 1.0f;
  // Inpainting with a regular model: after unit u the known region is the picture's latents x0
  // mixed with the start's noise by the scheduler's add_noise at the level the next unit starts
  // from, (renoise[2u], renoise[2u+1]) as (init_x0, init_noise) are; (1, 0) after the last unit.
  std::vector<float> renoise;  // [units, 2]
  // The unit's denoised estimate (x0, what a preview shows) from its latents and guided output:
  // x0 = denoised[2u]·x + denoised[2u+1]·ε, as the sampler's own formulas predict it (diffusers'
  // pred_original_sample, or the x0 its multistep solvers convert the output to).
  std::vector<float> denoised;  // [units, 2]
  std::vector<float> timesteps;     // [units] the UNet's t
  std::vector<float> in_divisor;    // [units] UNet input = x / this
  std::vector<float> table;         // [units, (1+K)·(3+K)] rows x, s_0..; columns x, ε, s_0.., z
  std::vector<bool> draws_noise;    // [units] a noise draw from the generator before this unit's update
  bool stochastic() const;
  int row_width() const { return (1 + state) * (3 + state); }
  // The coefficient of column `col` in output row `row` of unit u.
  float& at(int u, int row, int col) { return table[(size_t)u * row_width() + (size_t)row * (3 + state) + col]; }
};

// Throws a usage error for options sampler_problem refuses, or an impossible step count.
// begin > 0: img2img's plan, which runs steps begin..steps−1 of the `steps`-step schedule as
// diffusers' StableDiffusionImg2ImgPipeline does (its get_timesteps and set_begin_index).
SamplerPlan plan_sampler(const SamplerOptions& o, const SchedulerConfig& cfg, int steps, int begin = 0);
// diffusers' t_start for a strength in [0, 1]: steps − min(int(steps·strength), steps), the
// steps skipped. Equal to `steps` when strength leaves no step to run (int(steps·strength) = 0).
int img2img_begin(int steps, double strength);

// Timestep schedules as diffusers' set_timesteps computes them (numpy's float64 arithmetic
// reproduced: linspace, arange with a float step, round half to even).
namespace schedule {
// The spacing in effect: the config's, else the class default.
std::string spacing(const SchedulerConfig& cfg, const char* class_default);
// Euler-family ("discrete") timesteps: n values, descending, float.
std::vector<double> discrete_timesteps(const SchedulerConfig& cfg, const std::string& spacing, int n);
// σ(t) = √((1 − ᾱ)/ᾱ) in float32 as torch computes it, for every training timestep (with zero
// terminal SNR, the last ᾱ 2⁻²⁴ rather than 0, as diffusers' sigma schedulers).
std::vector<float> train_sigmas(const SchedulerConfig& cfg);
// numpy.interp(t, arange(N), sigmas).
double interp(double t, const std::vector<float>& sigmas);
// diffusers' _sigma_to_t: the fractional training timestep of σ by log-linear interpolation.
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas);
std::vector<float> log_sigmas(const std::vector<float>& sigmas);
// Karras et al.'s ρ = 7 schedule of n sigmas from sigma_max down to sigma_min.
std::vector<double> karras(double sigma_min, double sigma_max, int n);
}  // namespace schedule

}  // namespace sdgen
