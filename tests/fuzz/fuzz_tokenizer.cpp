// libFuzzer target: the CLIP tokenizer with both text cleanups (ftfy-style repair, HTML entities,
// whitespace, BPE; and transformers 5's basic one) on any bytes as a prompt, and the A1111 prompt parser and chunker on the same
// text. The vocabulary is weights/bpe_simple_vocab_16e6.txt.gz, loaded once.
#include <cstdlib>
#include <string>

#include "sdgen/error.h"
#include "text/prompt_chunks.h"
#include "text/prompt_weights.h"
#include "text/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const sdgen::ClipTokenizer tok =
      sdgen::ClipTokenizer::from_bpe_gz(std::string(SDGEN_SOURCE_DIR) + "/weights/bpe_simple_vocab_16e6.txt.gz");
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    tok.encode_padded(text);
    tok.encode_padded(text, nullptr, sdgen::TextCleanup::Basic);  // --text-cleanup basic
    sdgen::chunk_prompt(tok, text);  // parse_prompt_attention, tokenizing each piece, chunks of 75
  } catch (const sdgen::Error&) {
  }
  return 0;
}
