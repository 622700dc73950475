/* A C peer of ipckit's synchronization objects, using only libc and
 * pthreads (no ipckit code), for the interop tests in tests/sync.rs.
 *
 *   sync_peer sem   WAIT_NAME POST_NAME N REPORT_FD
 *       sem_open's two existing named semaphores, reports "ready", then N
 *       times: waits on WAIT_NAME, posts POST_NAME.
 *   sync_peer mutex SHM_NAME N REPORT_FD
 *       shm_open's an ipckit Mutex<u64> object, checks the documented
 *       header (magic at 0, state 2 at 12, kind 1 at 24), reports "ready",
 *       then N times: locks the pthread mutex at offset 64, increments the
 *       uint64_t at offset 128, unlocks.
 *
 * REPORT_FD is the write end of a pipe; a report is one ipckit frame (u32
 * little-endian length, then the bytes). Every wait has a 30 s hang guard.
 * Exit status: 0 done, 2 usage, 3 hang guard expired, 1 any other failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HANG_GUARD_SECS 30

static void die(const char *what) {
    fprintf(stderr, "sync_peer: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void report(int fd, const char *msg) {
    size_t len = strlen(msg);
    unsigned char frame[64];
    if (len > sizeof frame - 4) {
        fprintf(stderr, "sync_peer: report too long\n");
        exit(1);
    }
    frame[0] = (unsigned char)len;
    frame[1] = (unsigned char)(len >> 8);
    frame[2] = (unsigned char)(len >> 16);
    frame[3] = (unsigned char)(len >> 24);
    memcpy(frame + 4, msg, len);
    if (write(fd, frame, len + 4) != (ssize_t)(len + 4)) die("write report");
}

static int run_sem(const char *wait_name, const char *post_name, long n, int report_fd) {
    sem_t *w = sem_open(wait_name, 0);
    if (w == SEM_FAILED) die("sem_open (wait)");
    sem_t *p = sem_open(post_name, 0);
    if (p == SEM_FAILED) die("sem_open (post)");
    report(report_fd, "ready");
    for (long i = 0; i < n; i++) {
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += HANG_GUARD_SECS;
        while (sem_timedwait(w, &deadline) != 0) {
            if (errno == EINTR) continue;
            if (errno == ETIMEDOUT) {
                fprintf(stderr, "sync_peer: sem_timedwait: nobody posted in %d s (round %ld)\n",
                        HANG_GUARD_SECS, i);
                exit(3);
            }
            die("sem_timedwait");
        }
        if (sem_post(p) != 0) die("sem_post");
    }
    sem_close(w);
    sem_close(p);
    return 0;
}

static int run_mutex(const char *name, long n, int report_fd) {
    int fd = shm_open(name, O_RDWR, 0);
    if (fd < 0) die("shm_open");
    struct stat st;
    if (fstat(fd, &st) != 0) die("fstat");
    if (st.st_size < 136) {
        fprintf(stderr, "sync_peer: object of %lld bytes is too small\n", (long long)st.st_size);
        return 1;
    }
    unsigned char *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) die("mmap");
    close(fd);
    if (memcmp(base, "IPCKIT\0\x01", 8) != 0) {
        fprintf(stderr, "sync_peer: bad magic\n");
        return 1;
    }
    uint32_t state = __atomic_load_n((uint32_t *)(base + 12), __ATOMIC_ACQUIRE);
    if (state != 2) {
        fprintf(stderr, "sync_peer: state %u is not ready (2)\n", state);
        return 1;
    }
    uint32_t kind;
    memcpy(&kind, base + 24, 4);
    if (kind != 1) {
        fprintf(stderr, "sync_peer: kind %u is not a mutex (1)\n", kind);
        return 1;
    }
    if (sizeof(pthread_mutex_t) > 64) {
        fprintf(stderr, "sync_peer: pthread_mutex_t does not fit the layout\n");
        return 1;
    }
    pthread_mutex_t *m = (pthread_mutex_t *)(base + 64);
    uint64_t *counter = (uint64_t *)(base + 128);
    report(report_fd, "ready");
    for (long i = 0; i < n; i++) {
        int r = pthread_mutex_lock(m);
        if (r == EOWNERDEAD) {
            r = pthread_mutex_consistent(m);
        }
        if (r != 0) {
            errno = r;
            die("pthread_mutex_lock");
        }
        *counter += 1;
        r = pthread_mutex_unlock(m);
        if (r != 0) {
            errno = r;
            die("pthread_mutex_unlock");
        }
        /* Work outside the lock (1 us), as the Rust incrementer does. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        do {
            clock_gettime(CLOCK_MONOTONIC, &t1);
        } while ((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec) < 1000);
    }
    munmap(base, (size_t)st.st_size);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "sem") == 0) {
        return run_sem(argv[2], argv[3], atol(argv[4]), atoi(argv[5]));
    }
    if (argc == 5 && strcmp(argv[1], "mutex") == 0) {
        return run_mutex(argv[2], atol(argv[3]), atoi(argv[4]));
    }
    fprintf(stderr, "usage: sync_peer sem WAIT POST N FD | sync_peer mutex NAME N FD\n");
    return 2;
}
