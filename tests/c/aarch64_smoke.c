/* aarch64_smoke.c — run under qemu-aarch64 by tests/native/dist_test.ts against the shipped aarch64
 * libhmalloc.so: the hmalloc API works on that architecture (sizes, alignment, contents,
 * realloc, calloc). Prints one line and exits 0 when every check holds. */
#include <hmalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      fprintf(stderr, "aarch64_smoke: check failed: %s\n", #cond); \
      return 1;                                                  \
    }                                                            \
  } while (0)

int main(void) {
  char *small = hmalloc(100);
  CHECK(small != NULL && hmalloc_usable_size(small) >= 100);
  strcpy(small, "hmalloc on aarch64");
  void *aligned = haligned_alloc(65536, 200000);
  CHECK(aligned != NULL && ((uintptr_t)aligned & 65535) == 0);
  unsigned char *zeroed = hcalloc(1000, 1000);
  CHECK(zeroed != NULL);
  for (size_t i = 0; i < 1000 * 1000; i++) CHECK(zeroed[i] == 0);
  small = hrealloc(small, 1 << 20);
  CHECK(small != NULL && strcmp(small, "hmalloc on aarch64") == 0);
  printf("%s: ok\n", small);
  hfree(small);
  hfree(aligned);
  hfree(zeroed);
  return 0;
}
