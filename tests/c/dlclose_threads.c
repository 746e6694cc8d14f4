/* tests/c/dlclose_threads.c — dlopen libhmalloc, use it from a thread, dlclose
 * it, then let the thread exit: the thread's cache destructor must not run in
 * unmapped code (Deno dlcloses FFI libraries). Prints "survived".
 * usage: dlclose_threads /path/to/libhmalloc.so */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

static void *(*hm)(size_t);
static void (*hf)(void *);
static pthread_barrier_t step;

static void *worker(void *arg) {
  hf(hm(100));
  pthread_barrier_wait(&step);
  pthread_barrier_wait(&step); /* the library is dlclosed meanwhile */
  return arg;
}

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) { printf("dlopen: %s\n", dlerror()); return 1; }
  hm = (void *(*)(size_t))dlsym(lib, "hmalloc");
  hf = (void (*)(void *))dlsym(lib, "hfree");
  pthread_barrier_init(&step, 0, 2);
  pthread_t t;
  pthread_create(&t, 0, worker, 0);
  pthread_barrier_wait(&step);
  dlclose(lib);
  pthread_barrier_wait(&step);
  pthread_join(t, 0);
  printf("survived\n");
  return 0;
}
