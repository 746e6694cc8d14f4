# The pinned toolchains: the one place their versions are written.
DENO_VERSION=2.9.6   # from the npm registry (package "deno")
ZIG_VERSION=0.17.0   # from PyPI (package "ziglang"), run as `python3 -m ziglang`
