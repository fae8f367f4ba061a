// PyTorch's .ckpt/.pt/.bin files (torch.save since 1.6: a zip of `<name>/data.pkl`, a pickle of
// the object, and `<name>/data/<key>`, one member per storage, stored uncompressed), read without
// running any of it.
//
// The pickle is interpreted by a restricted machine that knows only the opcodes a state dict
// needs (containers, strings, numbers, memo, persistent ids) and only these globals:
//   collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
//   torch.{Float,Half,BFloat16,Double,Long,Int,Short,Char,Byte,Bool}Storage,
// plus a few data-only classes that SD training checkpoints carry besides the weights
// (pytorch_lightning's ModelCheckpoint callback state, numpy scalars and dtypes, _codecs.encode),
// which become opaque values. Nothing is ever called: "calling" OrderedDict makes an empty dict,
// "calling" _rebuild_tensor_v2 records where a tensor's bytes are. Any other global (os.system,
// builtins.eval, a class of the file's own) or opcode is refused before anything happens, with
// one line naming it.
//
// The tensors are the object's "state_dict" entry when it has one (LDM/Lightning checkpoints),
// else the object itself (a plain state dict); non-tensor entries are skipped. Each must be
// contiguous; its bytes are then a range of the mapped file, served like a safetensors file's.
#pragma once
#include <memory>
#include <string>

#include "io/safetensors.h"

namespace sdgen {

// Throws Error(kModel) naming the file and what is wrong (not a zip, a compressed member, a
// refused global or opcode, a tensor outside its storage, ...).
std::unique_ptr<SafetensorsFile> open_torch_checkpoint(const std::string& path);

// A weights file of either format: .safetensors, else torch.save's zip (read as above); a legacy
// (pre-1.6) pickle is refused with what to do instead; anything else gives the safetensors parse
// error. (The zip is tried only after the safetensors parse failed: a header length such as 0x180
// also starts with the byte 0x80.) Error(kModel) naming the file.
std::unique_ptr<SafetensorsFile> open_weights_file(const std::string& path);

// The restricted unpickler alone, over a pickle held in memory (tests and fuzzing): the tensors
// of the state dict it describes, each as a reference into its storage member.
struct TorchTensorRef {
  std::string name;         // the state-dict key
  std::string storage_key;  // the member data/<key>
  StDType dtype = StDType::F32;
  Shape shape;
  int64_t storage_offset = 0;  // in elements
  int64_t storage_numel = 0;   // as the persistent id says
};
std::vector<TorchTensorRef> unpickle_state_dict(const std::string& what, const uint8_t* data, size_t size);

}  // namespace sdgen
