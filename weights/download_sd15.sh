#!/usr/bin/env bash
# Downloads the Stable Diffusion v1.5 single-file checkpoint (LDM names, safetensors) from
# huggingface.co, resuming partial downloads and verifying the SHA-256 before the file is put in place.
#
#   weights/download_sd15.sh            fp16 file, v1-5-pruned-emaonly-fp16.safetensors (~2.1 GB)
#   weights/download_sd15.sh --fp32     fp32 file, v1-5-pruned-emaonly.safetensors (4,265,146,304 bytes)
#   options: --dir DIR (default: this script's folder), --sha256 HASH (pin the fp16 file yourself)
#
# Exit codes: 0 ok, 1 tool missing or download failed, 2 bad usage, 3 huggingface.co unreachable,
# 4 checksum mismatch (the partial file is deleted).
set -euo pipefail

BASE="${SDGEN_HF_BASE:-https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main}"
FP32_FILE="v1-5-pruned-emaonly.safetensors"
FP32_SHA256="6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa"
FP32_SIZE=4265146304
FP16_FILE="v1-5-pruned-emaonly-fp16.safetensors"

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
die() { echo "download_sd15: $2" >&2; exit "$1"; }

precision=fp16
dir="$(cd "$(dirname "$0")" && pwd)"
user_sha=""
while [ $# -gt 0 ]; do
  case "$1" in
    --fp32) precision=fp32 ;;
    --fp16) precision=fp16 ;;
    --dir) [ $# -ge 2 ] || die 2 "--dir needs a folder"; dir="$2"; shift ;;
    --sha256) [ $# -ge 2 ] || die 2 "--sha256 needs a hash"; user_sha="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die 2 "unknown option: $1" ;;
  esac
  shift
done

command -v curl >/dev/null || die 1 "curl is required"
if command -v sha256sum >/dev/null; then sha256() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null; then sha256() { shasum -a 256 "$1" | cut -d' ' -f1; }
else die 1 "sha256sum (or shasum) is required"; fi

if [ "$precision" = fp32 ]; then file="$FP32_FILE"; else file="$FP16_FILE"; fi
url="$BASE/$file"
dest="$dir/$file"
part="$dest.part"
mkdir -p "$dir" || die 1 "cannot create $dir"

# HEAD on the resolve URL without following the redirect: for a Git-LFS file the first answer carries
# the object's SHA-256 (X-Linked-ETag) and size (X-Linked-Size).
head_out=""
reachable=1
if ! head_out="$(curl -sS -I --connect-timeout 15 --max-time 60 "$url" 2>&1)"; then
  reachable=0
  head_err="$head_out"
fi
# The value of one response header ("" when absent; never fails, for set -e).
header() {
  { printf '%s\n' "$head_out" | tr -d '\r' | grep -i "^$1:" || true; } | tail -n1 | cut -d: -f2- | tr -d ' "' | sed 's/^W\///'
}

expected="" size=""
if [ "$precision" = fp32 ]; then
  expected="$FP32_SHA256"; size="$FP32_SIZE"
  echo "Expected SHA-256 (pinned): $expected"
elif [ -n "$user_sha" ]; then
  expected="$(printf '%s' "$user_sha" | tr 'A-F' 'a-f')"
  echo "Expected SHA-256 (given with --sha256): $expected"
fi

if [ -f "$dest" ]; then
  if [ -z "$expected" ] && [ "$reachable" = 1 ]; then expected="$(header x-linked-etag)"; fi
  if [ -z "$expected" ]; then
    echo "$dest is already present. It is NOT verified: the fp16 file has no pinned hash and huggingface.co" \
         "could not be asked for it (pass --sha256 HASH to check it)." >&2
    exit 0
  fi
  echo "$dest is already present; verifying ..."
  got="$(sha256 "$dest")"
  [ "$got" = "$expected" ] || die 4 "$dest has SHA-256 $got, expected $expected. Delete it and run again."
  echo "OK: $dest (SHA-256 $got)"
  exit 0
fi

if [ "$reachable" = 0 ]; then
  die 3 "cannot reach huggingface.co ($(printf '%s' "$head_err" | head -n1)). Check the network or proxy (curl honours https_proxy), or download $url by hand into $dir."
fi
status="$(printf '%s\n' "$head_out" | head -n1 | tr -d '\r')"
case "$status" in
  *" 200"*|*" 302"*|*" 301"*|*" 307"*|*" 308"*) ;;
  *) die 1 "huggingface.co answered '$status' for $url" ;;
esac

if [ "$precision" = fp16 ] && [ -z "$expected" ]; then
  expected="$(header x-linked-etag)"
  [ -n "$expected" ] || die 1 "no pinned SHA-256 for $file and the server sent no X-Linked-ETag header; pass --sha256 HASH"
  echo "No pinned SHA-256 for $file: using the X-Linked-ETag header huggingface.co sent, $expected."
  echo "(This checks the download against what the server says, not against an independently pinned value.)"
fi
if [ "$precision" = fp32 ]; then
  served="$(header x-linked-etag)"
  if [ -n "$served" ] && [ "$served" != "$expected" ]; then
    echo "Warning: huggingface.co reports SHA-256 $served for $file, not the pinned value; the file may" \
         "have changed upstream. The download will be checked against the pinned value." >&2
  fi
fi
[ -n "$size" ] || size="$(header x-linked-size)"
[[ "$expected" =~ ^[0-9a-f]{64}$ ]] || die 1 "'$expected' is not a SHA-256 hash"

have=0
[ -f "$part" ] && have="$(stat -c %s "$part" 2>/dev/null || wc -c <"$part")"
if [ -n "$size" ] && [ "$have" -ge "$size" ]; then
  echo "$part is complete ($have bytes)."
else
  [ "$have" -gt 0 ] && echo "Resuming $part from byte $have."
  echo "Downloading $url"
  curl -fL --retry 5 --retry-delay 5 --connect-timeout 15 -C - -o "$part" "$url" ||
    die 1 "download failed (curl exit $?); run again to resume from $part (or delete it to start over)"
fi

echo "Verifying SHA-256 ..."
got="$(sha256 "$part")"
if [ "$got" != "$expected" ]; then
  rm -f "$part"
  die 4 "SHA-256 mismatch for $file: got $got, expected $expected. The partial file was deleted; run again."
fi
mv -f "$part" "$dest"
echo "OK: $dest (SHA-256 $got)"
echo "Use it with: sd-gen --model $dest ..."
