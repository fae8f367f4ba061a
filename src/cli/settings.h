// Every generation setting, declared once. An entry says how the setting is written on the command
// line (flags, help, default) and in a prompt file (key, JSON type), how its text becomes the Job's
// typed field, what values it accepts, and how it is recorded: in the --json record, the manifest's
// job identity and the PNG's A1111 parameters. The command line, the prompt-file reader, the
// validation, the records and the metadata all walk this one table; adding a setting is one entry
// plus the code that uses its value.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/job.h"

namespace sdgen::cli {

// How the value is written: its JSON type in a prompt file, its text on the command line.
enum class SettingType {
  Text,      // a string
  Word,      // one of `words`
  Int,       // a decimal integer in [min, max]
  Real,      // a decimal number in [min, max]
  Flag,      // true/false; on the command line a flag that sets `flag_sets`
  Seed,      // 0..2^64-1, or -1 for a random one
  TextList,  // a string, or a list of them; the option is repeatable
};
const char* setting_type_name(SettingType t);  // "an integer", "a string", ... (messages, help)

// What a record holds besides the job: the seed the run used (random ones drawn), where it ran.
struct RecordContext {
  uint64_t base_seed = 0;
  Device device = Device::CPU;  // the device the images were made on
  std::string model_name;  // the checkpoint's name (PNG "Model", --json "model")
};

struct Setting {
  const char* flags;  // CLI11 names: "-b,--batch"
  const char* key;    // prompt-file key; nullptr: the command line only (run-wide)
  SettingType type;
  const char* help;
  double min = 0, max = 0;         // Int, Real: the range, both ends included
  std::vector<std::string> words;  // Word: the accepted words, in help order
  const char* flag_sets = "true";  // Flag: what the command-line flag sets ("false" for --no-emphasis)

  // The name in the manifest's job identity and the --json "settings" (record_name there when
  // given); nullptr: neither.
  const char* json = nullptr;
  const char* record_name = nullptr;
  bool in_identity = true;  // part of the manifest's job identity (a resumed job must match it)
  bool in_record = true;    // in the --json "settings"
  const char* a1111 = nullptr;  // the PNG parameters' label ("Steps", "CFG scale"); nullptr: none
  int png_rank = 0;             // its place in the PNG parameters (A1111's order)
  // --from-png (cli/infotext.h) reads the label back: its value into the job (default: `parse`, the
  // command line's text); a1111_read false: the label is informational (names and hashes of the
  // weights), skipped; a1111_absent: what a PNG without the label means, as A1111 leaves its
  // defaults out (nullptr: the job's default stands).
  std::function<void(Job&, const std::string&)> from_a1111;
  bool a1111_read = true;
  const char* a1111_absent = nullptr;

  // Text (the command line's, or a prompt-file value's) into the job's field. Throws Error(kUsage)
  // naming the option for text that is not a value of it.
  std::function<void(Job&, const std::string&)> parse;
  // A prompt-file value, whose JSON type has been checked, into the job's field.
  std::function<void(Job&, const nlohmann::json&)> from_json;
  // The value for the manifest's job identity, as given.
  std::function<nlohmann::json(const Job&, const RecordContext&)> identity;
  // The value for the --json record (default: as in the identity).
  std::function<nlohmann::json(const Job&, const RecordContext&)> record;
  // Why the job's value is not accepted (range, combination with other settings); empty when it is.
  std::function<std::string(const Job&)> problem;
  // The PNG parameters' value; empty: not written for this job.
  std::function<std::string(const Job&, const RecordContext&)> png;

  std::string option() const;  // the long flag: "--batch"
  // The prompt-file JSON value's type problem ("must be an integer, not 2.5"); empty when it fits.
  std::string json_type_problem(const nlohmann::json& v) const;
};

// The generation settings, in --help order.
const std::vector<Setting>& job_settings();
const Setting* find_setting(const std::string& long_flag);

// Registers the settings on a CLI11 app, writing into `job`: all of them, or the long flags in
// `only` (sd-gen bench takes a few, some with its own help text in `help`: long flag → text).
// Their defaults are `job`'s values.
void add_settings(CLI::App& app, Job& job, const std::vector<std::string>& only = {},
                  const std::map<std::string, std::string>& help = {});
// Applies a prompt-file line (a JSON object) to `job`: every key a setting's, of its type; errors
// name the key and job.origin.
void apply_prompt_line(Job& job, const nlohmann::json& line);
// After every setting is in: the prompt's <lora:NAME:SCALE> tags read once (Job::prompt_loras,
// Job::text_prompt). Error(kUsage) naming the line for a malformed tag.
void finish_job(Job& job);
// The first setting problem of the job, as a usage error naming its origin.
void check_settings(const Job& job);

// The --json "settings" object and the manifest's job identity.
nlohmann::json settings_record(const Job& job, const RecordContext& ctx);
nlohmann::json settings_identity(const Job& job, const RecordContext& ctx);
// The PNG parameters' "Label: value" pairs of the settings with a1111 labels, and `extra` ones
// (rank, text) the run adds (Seed, Model, Batch pos), in rank order, joined by ", ".
std::string settings_infotext(const Job& job, const RecordContext& ctx,
                              std::vector<std::pair<int, std::string>> extra);

}  // namespace sdgen::cli
