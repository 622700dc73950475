/*
 * shm: a peer for ipckit's shared memory written without ipckit, with the
 * plain calls (shm_open/ftruncate/mmap, open/ftruncate/mmap, and
 * shmget/shmat/shmdt/shmctl), to show that ipckit's segments are the
 * kernel's segments and nothing more.
 *
 * OBJECT is one of
 *     posix NAME       a POSIX object, shm_open(NAME)
 *     sysv PATH ID     a System V segment, key ftok(PATH, ID)
 *     file PATH        a file, open(PATH)
 *
 *   shm create OBJECT SIZE MODE SEED
 *       Creates the object exclusively (O_CREAT | O_EXCL, IPC_CREAT |
 *       IPC_EXCL) with permission bits MODE (octal, applied exactly: the
 *       umask is cleared), sets its size to SIZE (ftruncate; shmget's size
 *       for System V), maps it and fills all SIZE bytes with the pattern
 *       SEED. Prints "created SIZE".
 *   shm check OBJECT OFFSET LEN SEED
 *       Opens the existing object read-only, maps it whole (its size from
 *       fstat or IPC_STAT), compares LEN bytes at OFFSET with the pattern
 *       SEED (pattern index 0 at OFFSET), and prints them as one line
 *       "LEN HEX" (lowercase hex). A mismatch is an error naming the first
 *       differing byte.
 *   shm hold sysv PATH ID
 *       Attaches the existing System V segment, prints "attached SHMID",
 *       waits for a line on standard input, detaches, prints "detached".
 *
 * The pattern SEED is byte[i] = (SEED + 7*i + (i >> 8)) & 0xff.
 *
 * Output goes to standard output, flushed at once. Exit status 0 on
 * success, 1 on any error (a message on stderr naming the call and the
 * object), 2 on bad arguments. Calls that can be interrupted are retried
 * on EINTR.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

enum kind { POSIX, SYSV, FILE_ };

struct object {
    enum kind kind;
    const char *name; /* NAME or PATH */
    int id;           /* System V project id */
};

static const char *object_name;

static void die(const char *what) __attribute__((noreturn));

static void die(const char *what)
{
    fprintf(stderr, "shm: %s %s: %s\n", what, object_name ? object_name : "", strerror(errno));
    exit(1);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "shm: %s: ", object_name ? object_name : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
    fprintf(stderr,
            "usage: shm create OBJECT SIZE MODE SEED\n"
            "       shm check OBJECT OFFSET LEN SEED\n"
            "       shm hold sysv PATH ID\n"
            "OBJECT: posix NAME | sysv PATH ID | file PATH\n");
    exit(2);
}

static unsigned long number(const char *text, int base)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, base);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "shm: bad number %s\n", text);
        exit(2);
    }
    return v;
}

static uint8_t pattern(unsigned long seed, size_t i)
{
    return (uint8_t)((seed + 7 * i + (i >> 8)) & 0xff);
}

/* Parses OBJECT from argv[*at...], advancing *at. */
static struct object parse_object(int argc, char **argv, int *at)
{
    struct object o = { POSIX, NULL, 0 };
    if (*at + 1 >= argc)
        usage();
    const char *kind = argv[*at];
    o.name = argv[*at + 1];
    *at += 2;
    if (strcmp(kind, "posix") == 0) {
        o.kind = POSIX;
    } else if (strcmp(kind, "file") == 0) {
        o.kind = FILE_;
    } else if (strcmp(kind, "sysv") == 0) {
        if (*at >= argc)
            usage();
        o.kind = SYSV;
        unsigned long id = number(argv[*at], 10);
        if (id < 1 || id > 255)
            usage();
        o.id = (int)id;
        *at += 1;
    } else {
        usage();
    }
    object_name = o.name;
    return o;
}

static key_t sysv_key(const struct object *o)
{
    key_t key = ftok(o->name, o->id);
    if (key == -1)
        die("ftok");
    return key;
}

static int open_fd(const struct object *o, int flags, mode_t mode)
{
    int fd;
    do {
        fd = o->kind == POSIX ? shm_open(o->name, flags, mode) : open(o->name, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        die(o->kind == POSIX ? "shm_open" : "open");
    return fd;
}

static int do_create(const struct object *o, size_t size, mode_t mode, unsigned long seed)
{
    umask(0);
    uint8_t *p;
    int shmid = -1;
    if (o->kind == SYSV) {
        shmid = shmget(sysv_key(o), size, IPC_CREAT | IPC_EXCL | (int)mode);
        if (shmid < 0)
            die("shmget");
        p = shmat(shmid, NULL, 0);
        if (p == (void *)-1)
            die("shmat");
    } else {
        int fd = open_fd(o, O_RDWR | O_CREAT | O_EXCL, mode);
        int r;
        do {
            r = ftruncate(fd, (off_t)size);
        } while (r < 0 && errno == EINTR);
        if (r < 0)
            die("ftruncate");
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            die("mmap");
        close(fd);
    }
    for (size_t i = 0; i < size; i++)
        p[i] = pattern(seed, i);
    if (o->kind == SYSV) {
        if (shmdt(p) < 0)
            die("shmdt");
    } else if (munmap(p, size) < 0) {
        die("munmap");
    }
    printf("created %zu\n", size);
    fflush(stdout);
    return 0;
}

static int do_check(const struct object *o, size_t offset, size_t len, unsigned long seed)
{
    const uint8_t *p;
    size_t size;
    if (o->kind == SYSV) {
        int shmid = shmget(sysv_key(o), 0, 0);
        if (shmid < 0)
            die("shmget");
        struct shmid_ds ds;
        if (shmctl(shmid, IPC_STAT, &ds) < 0)
            die("shmctl IPC_STAT");
        size = ds.shm_segsz;
        p = shmat(shmid, NULL, SHM_RDONLY);
        if (p == (void *)-1)
            die("shmat");
    } else {
        int fd = open_fd(o, O_RDONLY, 0);
        struct stat st;
        if (fstat(fd, &st) < 0)
            die("fstat");
        size = (size_t)st.st_size;
        if (size == 0)
            fail("the object is empty");
        p = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            die("mmap");
        close(fd);
    }
    if (offset > size || len > size - offset)
        fail("offset %zu + length %zu is past the end of %zu bytes", offset, len, size);
    for (size_t i = 0; i < len; i++) {
        uint8_t want = pattern(seed, i);
        if (p[offset + i] != want)
            fail("byte %zu is 0x%02x, the pattern has 0x%02x", offset + i, p[offset + i], want);
    }
    printf("%zu ", len);
    for (size_t i = 0; i < len; i++)
        printf("%02x", p[offset + i]);
    printf("\n");
    fflush(stdout);
    if (o->kind == SYSV) {
        if (shmdt(p) < 0)
            die("shmdt");
    } else if (munmap((void *)p, size) < 0) {
        die("munmap");
    }
    return 0;
}

static int do_hold(const struct object *o)
{
    if (o->kind != SYSV)
        usage();
    int shmid = shmget(sysv_key(o), 0, 0);
    if (shmid < 0)
        die("shmget");
    void *p = shmat(shmid, NULL, 0);
    if (p == (void *)-1)
        die("shmat");
    printf("attached %d\n", shmid);
    fflush(stdout);
    char line[64];
    int got = fgets(line, sizeof line, stdin) != NULL;
    if (shmdt(p) < 0)
        die("shmdt");
    printf("detached\n");
    fflush(stdout);
    if (!got) {
        fprintf(stderr, "shm: standard input closed before a line\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    int at = 2;
    struct object o = parse_object(argc, argv, &at);
    int rest = argc - at;
    if (strcmp(cmd, "create") == 0 && rest == 3)
        return do_create(&o, number(argv[at], 10), (mode_t)number(argv[at + 1], 8), number(argv[at + 2], 10));
    if (strcmp(cmd, "check") == 0 && rest == 3)
        return do_check(&o, number(argv[at], 10), number(argv[at + 1], 10), number(argv[at + 2], 10));
    if (strcmp(cmd, "hold") == 0 && rest == 0)
        return do_hold(&o);
    usage();
    return 2;
}
