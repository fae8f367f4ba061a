"""The files these scripts write that the repository does not carry: the build writes them again,
byte for byte, from the committed folders (tests/tools/derive_test_models.cpp), and checks each
against the SHA-256 recorded here in tests/data/derived_models.json."""
import hashlib
import json
import os

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
RECORD = os.path.join(DATA, "derived_models.json")


def record(path):
    """Records the SHA-256 of `path` (a file under tests/data) in derived_models.json."""
    rel = os.path.relpath(os.path.abspath(path), DATA)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    with open(RECORD, encoding="utf-8") as f:
        j = json.load(f)
    j["sha256"][rel] = digest
    with open(RECORD, "w", encoding="utf-8") as f:
        json.dump(j, f, indent=1)
        f.write("\n")
