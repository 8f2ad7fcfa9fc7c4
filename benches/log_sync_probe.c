/* The commit log's append + fdatasync, alone (benches/README.md, "Session 10:
 * log blocks written ahead"). A 32 MiB segment reserved with fallocate, then
 * N appends of STEP bytes, each written with O_DIRECT from the start of its
 * partial 4 KiB block to a block boundary (as vfs::direct does) and followed
 * by fdatasync. AHEAD > 0: a write that reaches past the blocks written so
 * far goes on with zeros to the next multiple of AHEAD (the engine's
 * DIRECT_ZERO_AHEAD_BYTES). Prints wall time and CPU (user + system) per
 * append+sync. PROBE_BUFFERED=1: the same appends through the page cache
 * instead (STEP bytes each, into a segment zeroed first so no extent is
 * converted; AHEAD is ignored), for comparison (benches/README.md,
 * "Session 19: two things tried and taken out").
 *
 *   cc -O2 -o /tmp/log_sync_probe benches/log_sync_probe.c
 *   /tmp/log_sync_probe AHEAD N STEP [DIR]     e.g. 0 4000 2000, 65536 4000 2000
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double us(struct timeval t) { return t.tv_sec * 1e6 + t.tv_usec; }

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s AHEAD N STEP [DIR]\n", argv[0]);
    return 2;
  }
  long ahead = atol(argv[1]), n = atol(argv[2]), step = atol(argv[3]);
  char path[4096];
  snprintf(path, sizeof path, "%s/log_sync_probe.seg", argc > 4 ? argv[4] : "/tmp");
  long len = 32L << 20;
  int buffered = getenv("PROBE_BUFFERED") != NULL;
  unlink(path);
  int fd = open(path, O_CREAT | O_RDWR, 0644);
  int prepared = fd >= 0 && fallocate(fd, 0, 0, len) == 0;
  if (prepared && buffered) {
    char *zeros = calloc(1, 1 << 20);
    for (long o = 0; prepared && o < len; o += 1 << 20)
      prepared = zeros && pwrite(fd, zeros, 1 << 20, o) == 1 << 20;
    free(zeros);
  }
  if (!prepared || fsync(fd) != 0) {
    perror("preparing the segment");
    return 1;
  }
  close(fd);
  int dsync = getenv("PROBE_DSYNC") != NULL;
  fd = open(path, (buffered ? O_RDWR : O_RDWR | O_DIRECT) | (dsync ? O_DSYNC : 0));
  char *buf = aligned_alloc(4096, (size_t)(ahead + step + 8192));
  if (fd < 0 || !buf) {
    perror("opening with O_DIRECT");
    return 1;
  }
  memset(buf, 1, (size_t)(ahead + step + 8192));
  struct rusage r0, r1;
  struct timespec t0, t1;
  getrusage(RUSAGE_SELF, &r0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long pos = 0, written = 0;
  for (long i = 0; i < n; i++) {
    long start = pos & ~4095L, end = (pos + step + 4095) & ~4095L;
    if (end > written && ahead > 0) {
      long to = (end + ahead - 1) / ahead * ahead;
      end = to < len ? to : (len > end ? len : end);
    }
    if (end > written) written = end;
    if (buffered) start = pos, end = pos + step;
    if (pwrite(fd, buf, (size_t)(end - start), start) != end - start || (!dsync && fdatasync(fd) != 0)) {
      perror("append");
      return 1;
    }
    pos += step;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  getrusage(RUSAGE_SELF, &r1);
  double cpu = us(r1.ru_utime) - us(r0.ru_utime) + us(r1.ru_stime) - us(r0.ru_stime);
  double wall = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
  printf("%s %ld, %ld bytes per append: %.1f us wall, %.1f us cpu per append+sync\n",
         buffered ? "buffered, ahead ignored" : "ahead", ahead, step, wall / n, cpu / n);
  unlink(path);
  return 0;
}
