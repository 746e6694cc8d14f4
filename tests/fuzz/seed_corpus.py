#!/usr/bin/env python3
"""Writes the seed corpus of the parser fuzz targets into tests/fuzz/corpus/<target>/.

Seeds: every case of the shared tier table (zig-src/src/testdata/tier_spec_cases.json),
and the node-list, policy and environment examples of node_list.zig, policy.zig and
policy_env.zig, in each target's input layout (see the target's file). File names are
content hashes, as libFuzzer names the inputs it adds, so rerunning is idempotent.
"""
import hashlib
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests/fuzz/corpus"

# allowed-node bytes (check.allowedFromByte): 0x0f = nodes 0-3, 0x05 = {0,2}, 0x8f = 0-3 and 1023
ALLOWED = [0x0F, 0x05, 0x8F]
NODE_LISTS = ["0", "2", "0,2", "1-2,5", "0-3", "all", "!0", "+0", "+0-1", "!+0", "!all",
              "3-1", "0-x", "1024", "+4", "0,,1", ",0", "0,", "!+", "1023", "0-1023"]
POLICIES = ["default", "bind:2", "bind:0,2-3", "preferred:3", "preferred-many:2-3",
            "interleave:0-3", "interleave:all", "weighted-interleave:0-3",
            "weighted-interleave:0=3,2=1", "weighted-interleave:0=2,1=2,3=255",
            "default:0", "bind", "bind:", "preferred:0-1", "weighted-interleave:0=256",
            "weighted-interleave:0=3,2", "weighted-interleave:0=1,0-1=2", "mode:0", ""]
# (flags, values): bit 0 HMALLOC_POLICY, 1 NODEMASK, 2 MPOL_MODE, 3 JEMALLOC
ENVS = [(0b0001, ["bind:0"]), (0b0001, ["bind:0-x"]), (0b0001, [""]), (0b0000, []),
        (0b0110, ["1", "2"]), (0b0110, ["1", "1"]), (0b1110, ["1", "3", "1"]),
        (0b0010, ["5"]), (0b0100, ["2"]), (0b0110, ["0x3", "2"]), (0b0110, ["0", "2"]),
        (0b0110, ["3", "1"]), (0b0110, ["18446744073709551616", "2"]),
        (0b0111, ["preferred:0", "garbage", "9"]), (0b0100, ["0"])]


def write(target: str, data: bytes) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def main() -> None:
    cases = json.loads((ROOT / "zig-src/src/testdata/tier_spec_cases.json").read_text())
    for case in cases:
        data = case["tiers"].encode()
        if case.get("thresholds") is not None:
            data += b"\0" + case["thresholds"].encode()
        write("tier_spec", data)
    for allowed in ALLOWED:
        for text in NODE_LISTS:
            write("node_list", bytes([allowed]) + text.encode())
        for spec in POLICIES:
            write("policy", bytes([allowed]) + spec.encode())
    for flags, values in ENVS:
        write("policy_env", bytes([flags]) + b"\0".join(v.encode() for v in values))


if __name__ == "__main__":
    main()
