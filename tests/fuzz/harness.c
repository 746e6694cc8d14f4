/*
 * libFuzzer entry for one Zig fuzz target (zig-src/src/<folder>/<name>_fuzz.zig),
 * chosen at compile time: clang -DFUZZ_TARGET=fuzz_node_list ...
 *
 * Zig's -ffuzz instruments the target with inline 8-bit edge counters in the
 * section __sancov_cntrs and a table of their PCs in __sancov_pcs1, but (unlike
 * clang) emits no constructor announcing them: Zig's own fuzzer reads the
 * sections directly. This file announces them to libFuzzer, turning the PC
 * list (one address per counter) into libFuzzer's (PC, flags) pairs. The file
 * itself is compiled without instrumentation, so every counter is the
 * target's.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

void FUZZ_TARGET(const uint8_t *data, size_t len);

void __sanitizer_cov_8bit_counters_init(uint8_t *start, uint8_t *stop);
void __sanitizer_cov_pcs_init(const uintptr_t *start, const uintptr_t *stop);

extern uint8_t __start___sancov_cntrs[], __stop___sancov_cntrs[];
extern const uintptr_t __start___sancov_pcs1[], __stop___sancov_pcs1[];

__attribute__((constructor)) static void announce_counters(void) {
  size_t counters = (size_t)(__stop___sancov_cntrs - __start___sancov_cntrs);
  size_t pcs = (size_t)(__stop___sancov_pcs1 - __start___sancov_pcs1);
  __sanitizer_cov_8bit_counters_init(__start___sancov_cntrs, __stop___sancov_cntrs);
  if (pcs != counters) return; /* unknown layout: coverage still counts, no PC names */
  uintptr_t *table = calloc(2 * pcs, sizeof *table);
  if (table == NULL) return;
  for (size_t i = 0; i < pcs; i++) table[2 * i] = __start___sancov_pcs1[i];
  __sanitizer_cov_pcs_init(table, table + 2 * pcs); /* lives as long as the process */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
  FUZZ_TARGET(data, len);
  return 0;
}
