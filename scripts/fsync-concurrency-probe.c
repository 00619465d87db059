/* Concurrent fdatasync probe for docs/benchmarks.md:
     gcc -O2 -pthread -o fsync-concurrency-probe scripts/fsync-concurrency-probe.c
     ./fsync-concurrency-probe THREADS KIB_PER_FSYNC DIR
   Writes DIR/fsync-concurrency.dat (256 MiB of zeros, fsynced), then for 3 seconds THREADS
   threads each loop { claim KIB_PER_FSYNC KiB at the end of what was claimed, pwrite them,
   fdatasync }; prints fdatasync/s and KiB records/s, and removes the file. Shows whether the
   disk overlaps fsyncs issued together (more flushers) and how an fsync's cost grows with the
   bytes it carries. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const long SIZE = 256L << 20;
static int fd;
static long chunk;
static _Atomic long claimed = 0, syncs = 0;
static double end;
/* What every thread writes: filled once in main, before the threads start. */
static char payload[1 << 20];

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void *run(void *arg) {
  (void)arg;
  while (now() < end) {
    long at = atomic_fetch_add(&claimed, chunk);
    if (at + chunk > SIZE) break;
    if (pwrite(fd, payload, chunk, at) != chunk || fdatasync(fd) != 0) {
      perror("pwrite/fdatasync");
      exit(1);
    }
    atomic_fetch_add(&syncs, 1);
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s THREADS KIB_PER_FSYNC DIR\n", argv[0]);
    return 2;
  }
  int threads = atoi(argv[1]);
  chunk = atol(argv[2]) * 1024;
  if (threads < 1 || threads > 64 || chunk < 1024 || chunk > (1 << 20)) {
    fprintf(stderr, "THREADS 1..64, KIB_PER_FSYNC 1..1024\n");
    return 2;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/fsync-concurrency.dat", argv[3]);
  fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  static char zeros[1 << 20];
  for (long off = 0; off < SIZE; off += sizeof zeros)
    if (pwrite(fd, zeros, sizeof zeros, off) != (long)sizeof zeros) {
      perror("zeroing");
      return 1;
    }
  if (fsync(fd) != 0) {
    perror("fsync");
    return 1;
  }
  memset(payload, 'x', sizeof payload);
  double start = now();
  end = start + 3;
  pthread_t th[64];
  for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, run, NULL);
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  double secs = now() - start;
  printf("threads %d, %ld KiB per fsync: %.0f fdatasync/s, %.0f KiB records/s\n", threads,
         chunk / 1024, syncs / secs, syncs * (chunk / 1024) / secs);
  close(fd);
  unlink(path);
  return 0;
}
