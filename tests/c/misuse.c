/* tests/c/misuse.c — hands hfree/hrealloc/hmalloc_usable_size pointers that
 * are not live hmalloc blocks. Each case must end the program with one line
 * naming the call and SIGABRT; reaching the end prints "not detected". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "hmalloc.h"

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  const char *c = argv[1];
  char *small = hmalloc(100), *large = hmalloc(100000), *huge = hmalloc(10 << 20);
  int on_stack = 0;
  if (!strcmp(c, "double_free_small")) { hfree(small); hfree(small); }
  else if (!strcmp(c, "double_free_large")) { hfree(large); hfree(large); }
  else if (!strcmp(c, "double_free_huge")) { hfree(huge); hfree(huge); }
  else if (!strcmp(c, "stack_pointer")) hfree(&on_stack);
  else if (!strcmp(c, "glibc_pointer")) hfree(malloc(10));
  else if (!strcmp(c, "interior_small")) hfree(small + 16);
  else if (!strcmp(c, "interior_large")) hfree(large + 4096);
  else if (!strcmp(c, "interior_huge")) hfree(huge + 8);
  else if (!strcmp(c, "free_after_realloc")) { char *moved = hrealloc(small, 50000); (void)moved; hfree(small); }
  else if (!strcmp(c, "realloc_foreign")) { void *r = hrealloc(&on_stack, 10); (void)r; }
  else if (!strcmp(c, "usable_size_interior")) hmalloc_usable_size(small + 1);
  else return 2;
  printf("not detected\n");
  return 0;
}
