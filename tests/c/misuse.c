/* tests/c/misuse.c — hands hfree/hrealloc/hmalloc_usable_size pointers that
 * are not live hmalloc blocks, or calls hmalloc from a signal handler that
 * interrupted it. Each case must end the program with one line naming the
 * misuse and SIGABRT; reaching the end prints "not detected". */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include "hmalloc.h"

static void allocate_in_handler(int sig) {
  (void)sig;
  hfree(hmalloc(64 << 10)); /* not async-signal-safe: the misuse */
}

/* Large blocks (page runs, under the pool's page lock) allocated and freed in
 * a loop, interrupted every 100 us by a handler that allocates one too; 10 s. */
static void signal_handler_allocates(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = allocate_in_handler;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval every = {{0, 100}, {0, 100}};
  setitimer(ITIMER_REAL, &every, NULL);
  for (time_t end = time(NULL) + 10; time(NULL) < end;)
    for (int i = 0; i < 1000; i++) hfree(hmalloc((64 << 10) + (i & 7) * 4096));
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
}

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
  else if (!strcmp(c, "signal_handler_allocates")) signal_handler_allocates();
  else return 2;
  printf("not detected\n");
  return 0;
}
