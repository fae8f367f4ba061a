#!/usr/bin/env python3
"""The layering check: every quoted #include in src/, include/ and kernels/ points down (or
sideways within its layer), never up. Run from anywhere: check_layering.py [ROOT]; exit 0 when every
include is allowed, 1 with one line per upward include otherwise.

The layers of the library, lowest first, and what each may include (its own layer always):

  layer     files                                   may include
  core      src/core, include/sdgen/{tensor,error,  (nothing above)
            half,config}.h
  io        src/io                                  core
  backend   src/backend (cpu/, cuda/),              core, kernels
            include/sdgen/{ops,backend}.h
  kernels   kernels/                                core, backend (the Backend enums
                                                    its launchers take)
  sampler   src/sampler                             core
  nn        src/nn                                  core, io, backend
  text      src/text                                core, io, backend, nn
  unet      src/unet                                core, io, backend, nn
  vae       src/vae                                 core, io, backend, nn, unet
  pipeline  src/pipeline                            everything below but cli
  cli       src/cli                                 everything (nothing includes cli)

An include is resolved the way the build resolves it: beside the including file, then under src/,
include/ and kernels/ (kernels/common/ for the kernels' own helpers). An include found in none of
them is outside the project (the SIMT emulator's headers, say) and is not checked.
"""
import os
import re
import sys

# layer -> the layers it may include besides itself.
ALLOWED = {
    "core": set(),
    "io": {"core"},
    "kernels": {"core", "backend"},
    "backend": {"core", "kernels"},
    "sampler": {"core"},
    "nn": {"core", "io", "backend"},
    "text": {"core", "io", "backend", "nn"},
    "unet": {"core", "io", "backend", "nn"},
    "vae": {"core", "io", "backend", "nn", "unet"},
    "pipeline": {"core", "io", "backend", "kernels", "sampler", "nn", "text", "unet", "vae"},
    "cli": {"core", "io", "backend", "kernels", "sampler", "nn", "text", "unet", "vae", "pipeline"},
}
# The public headers under include/sdgen/ that belong to the backend layer (the rest are core's).
BACKEND_API = {"ops.h", "backend.h"}
SOURCE_EXT = (".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh", ".inc")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def layer_of(rel):
    """The layer of a file given by its path relative to the root ('/' separated), or None."""
    parts = rel.split("/")
    if parts[0] == "kernels":
        return "kernels"
    if parts[0] == "include" and len(parts) == 3 and parts[1] == "sdgen":
        return "backend" if parts[2] in BACKEND_API else "core"
    if parts[0] == "src" and len(parts) >= 3 and parts[1] in ALLOWED:
        return parts[1]
    return None


def resolve(root, including_rel, target):
    """The included file's path relative to root, or None when it is not a project file."""
    bases = [os.path.dirname(including_rel), "src", "include", "kernels", "kernels/common"]
    for base in bases:
        rel = os.path.normpath(os.path.join(base, target)).replace(os.sep, "/")
        if not rel.startswith("..") and os.path.isfile(os.path.join(root, rel)):
            return rel
    return None


def violations(root):
    out = []
    for top in ("src", "include", "kernels"):
        for dirpath, _, names in os.walk(os.path.join(root, top)):
            for name in sorted(names):
                if not name.endswith(SOURCE_EXT):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                src_layer = layer_of(rel)
                if src_layer is None:
                    out.append(f"{rel}: not in any layer (add its folder to the table in {__file__})")
                    continue
                with open(path, encoding="utf-8", errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE_RE.match(line)
                        if not m:
                            continue
                        target = resolve(root, rel, m.group(1))
                        if target is None:
                            continue
                        to_layer = layer_of(target)
                        if to_layer is None or to_layer == src_layer or to_layer in ALLOWED[src_layer]:
                            continue
                        out.append(f"{rel}:{n}: {src_layer} includes {m.group(1)} ({to_layer}), a layer above it")
    return out


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    if not os.path.isdir(os.path.join(root, "src")):
        print(f"check_layering: {root} has no src/", file=sys.stderr)
        return 2
    bad = violations(root)
    for line in bad:
        print(line)
    if bad:
        print(f"check_layering: {len(bad)} upward include(s)", file=sys.stderr)
        return 1
    print("check_layering: every include points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
