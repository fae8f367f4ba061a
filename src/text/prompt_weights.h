// The A1111 (stable-diffusion-webui) emphasis syntax: a prompt becomes runs of text, each with the
// weight its hidden states are multiplied by, and BREAK markers that end a 75-token chunk.
//   (text)      ×1.1, nesting multiplies: ((text)) ×1.21
//   [text]      ÷1.1
//   (text:1.3)  ×1.3 (any number: 0.5, -1, .7)
//   \( \) \[ \] \\  the character itself; a lone backslash is dropped, as in A1111
//   BREAK       as a whole word, in capitals: the next text starts a new chunk
// Bad syntax is never an error: a closer without its opener is literal text, and an opener that
// is never closed applies its ×1.1 or ÷1.1 to all the text after it (A1111's behaviour). Adjacent
// runs of equal weight are merged, so "a, b" stays one run and is tokenized as one text.
//
// Where we differ from A1111 on purpose (both cases are bugs or crashes there):
//   - a BREAK inside brackets still breaks the chunk (A1111 multiplies its marker's weight -1 by the
//     bracket and then tokenizes "BREAK" as text with weight -1.1);
//   - "(a:1.2.3)" or "(a:.)", a weight that is no number, is literal text (A1111 raises ValueError).
// Word boundaries (BREAK) and whitespace are ASCII; a byte >= 0x80 counts as a letter.
#pragma once
#include <string>
#include <vector>

namespace sdgen {

struct PromptPiece {
  std::string text;
  double weight = 1.0;    // double, as A1111's Python floats: equal-weight merging compares exactly
  bool is_break = false;  // a BREAK marker (text empty)
};

// Never empty: a prompt with no text at all is one piece ("", 1.0).
std::vector<PromptPiece> parse_prompt_attention(const std::string& text);

// The largest weight magnitude a prompt may give a piece (see prompt_weights.cpp for why).
constexpr double kMaxPromptWeight = 1e4;
// Why the prompt's emphasis cannot be used: a weight past ±kMaxPromptWeight or not finite (brackets
// nested hundreds deep: 1.1^n overflows), naming the weight and the bracket nesting; "" when usable.
std::string prompt_weight_problem(const std::string& text);

}  // namespace sdgen
