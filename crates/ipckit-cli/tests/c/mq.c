/*
 * mq: a peer for ipckit's message queues written without ipckit, with the
 * plain POSIX (mq_open/mq_send/mq_receive) and System V
 * (msgget/msgsnd/msgrcv/msgctl) calls, to show that ipckit's queues are
 * the kernel's queues and nothing more.
 *
 *   mq posix-create NAME MAXMSG MSGSIZE
 *       Creates the queue NAME (O_CREAT | O_EXCL, mode 0600).
 *   mq posix-send NAME PRIO:SPEC...
 *       Opens the existing queue and sends one message per argument with
 *       priority PRIO.
 *   mq posix-recv NAME COUNT
 *       Opens the existing queue and receives COUNT messages (blocking),
 *       printing each as a line "PRIO LEN HEX" (HEX: the payload in
 *       lowercase hex, empty for an empty message).
 *   mq posix-attr NAME
 *       Prints "maxmsg=M msgsize=S curmsgs=C mode=OOO" (mq_getattr, and
 *       the permission bits of the queue descriptor from fstat).
 *
 *   mq sysv-create KEY MAXBYTES
 *       Creates the queue (IPC_CREAT | IPC_EXCL, mode 0600); MAXBYTES > 0
 *       sets its byte limit (msg_qbytes) with IPC_SET.
 *   mq sysv-send KEY TYPE:SPEC...
 *       Sends one message per argument with message type TYPE.
 *   mq sysv-recv KEY MSGTYP COUNT
 *       Receives COUNT messages with msgrcv(..., MSGTYP, 0) (blocking; the
 *       kernel's rules: 0 the first, N > 0 the first of type N, N < 0 the
 *       first of the lowest type <= |N|), printing "TYPE LEN HEX" lines.
 *   mq sysv-stat KEY
 *       Prints "qnum=N qbytes=B mode=OOO" (msgctl IPC_STAT).
 *
 * KEY is written as in ipckit's endpoints after "sysv-mq:": a decimal or
 * 0xHEX number, or an absolute path for ftok with an optional "?id=N"
 * (1 by default).
 *
 * SPEC is s:TEXT (the bytes of TEXT, possibly none) or p:SIZE:SEED (SIZE
 * bytes of the pattern byte[i] = (SEED + 7*i + (i >> 8)) & 0xff).
 *
 * Exit status 0 on success, 1 on any error (a message on stderr), 2 on bad
 * arguments. Every call is retried on EINTR.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Larger than any message the kernel's default limits allow. */
#define BUF_MAX 65536

static void die(const char *what)
{
    fprintf(stderr, "mq: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: mq posix-create NAME MAXMSG MSGSIZE | posix-send NAME PRIO:SPEC...\n"
                    "       mq posix-recv NAME COUNT | posix-attr NAME\n"
                    "       mq sysv-create KEY MAXBYTES | sysv-send KEY TYPE:SPEC...\n"
                    "       mq sysv-recv KEY MSGTYP COUNT | sysv-stat KEY\n");
    exit(2);
}

static long number(const char *text, int base)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, base);
    if (errno != 0 || end == text || *end != '\0')
        usage();
    return v;
}

/* Parses "N:REST": returns N and points *rest at REST. */
static long prefix_number(const char *arg, const char **rest)
{
    const char *colon = strchr(arg, ':');
    if (colon == NULL || colon == arg)
        usage();
    char head[32];
    size_t len = (size_t)(colon - arg);
    if (len >= sizeof head)
        usage();
    memcpy(head, arg, len);
    head[len] = '\0';
    *rest = colon + 1;
    return number(head, 10);
}

/* The bytes of a SPEC, in a buffer of BUF_MAX bytes. Returns the length. */
static size_t spec_bytes(const char *spec, uint8_t *buf)
{
    if (strncmp(spec, "s:", 2) == 0) {
        size_t len = strlen(spec + 2);
        if (len > BUF_MAX)
            usage();
        memcpy(buf, spec + 2, len);
        return len;
    }
    if (strncmp(spec, "p:", 2) == 0) {
        const char *seed_text;
        long size = prefix_number(spec + 2, &seed_text);
        long seed = number(seed_text, 10);
        if (size < 0 || size > BUF_MAX || seed < 0)
            usage();
        for (long i = 0; i < size; i++)
            buf[i] = (uint8_t)((seed + 7 * i + (i >> 8)) & 0xff);
        return (size_t)size;
    }
    usage();
    return 0;
}

static void print_message(long meta, const uint8_t *data, size_t len)
{
    printf("%ld %zu ", meta, len);
    for (size_t i = 0; i < len; i++)
        printf("%02x", data[i]);
    printf("\n");
    if (fflush(stdout) != 0)
        die("write stdout");
}

static mqd_t posix_open(const char *name, int flags)
{
    mqd_t q = mq_open(name, flags);
    if (q == (mqd_t)-1)
        die("mq_open");
    return q;
}

static int posix_create(const char *name, long maxmsg, long msgsize)
{
    struct mq_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.mq_maxmsg = maxmsg;
    attr.mq_msgsize = msgsize;
    mqd_t q = mq_open(name, O_RDWR | O_CREAT | O_EXCL, 0600, &attr);
    if (q == (mqd_t)-1)
        die("mq_open O_CREAT|O_EXCL");
    if (mq_close(q) != 0)
        die("mq_close");
    return 0;
}

static int posix_send(const char *name, int argc, char **argv)
{
    static uint8_t buf[BUF_MAX];
    mqd_t q = posix_open(name, O_WRONLY);
    for (int i = 0; i < argc; i++) {
        const char *spec;
        long prio = prefix_number(argv[i], &spec);
        if (prio < 0)
            usage();
        size_t len = spec_bytes(spec, buf);
        while (mq_send(q, (const char *)buf, len, (unsigned)prio) != 0) {
            if (errno != EINTR)
                die("mq_send");
        }
    }
    if (mq_close(q) != 0)
        die("mq_close");
    return 0;
}

static int posix_recv(const char *name, long count)
{
    mqd_t q = posix_open(name, O_RDONLY);
    struct mq_attr attr;
    if (mq_getattr(q, &attr) != 0)
        die("mq_getattr");
    if (attr.mq_msgsize <= 0 || attr.mq_msgsize > BUF_MAX) {
        fprintf(stderr, "mq: unexpected msgsize %ld\n", attr.mq_msgsize);
        return 1;
    }
    static char buf[BUF_MAX];
    for (long i = 0; i < count; i++) {
        unsigned prio = 0;
        ssize_t n;
        while ((n = mq_receive(q, buf, (size_t)attr.mq_msgsize, &prio)) < 0) {
            if (errno != EINTR)
                die("mq_receive");
        }
        print_message((long)prio, (const uint8_t *)buf, (size_t)n);
    }
    if (mq_close(q) != 0)
        die("mq_close");
    return 0;
}

static int posix_attr(const char *name)
{
    mqd_t q = posix_open(name, O_RDONLY);
    struct mq_attr attr;
    struct stat st;
    if (mq_getattr(q, &attr) != 0)
        die("mq_getattr");
    /* On Linux a queue descriptor is a file descriptor. */
    if (fstat((int)q, &st) != 0)
        die("fstat");
    printf("maxmsg=%ld msgsize=%ld curmsgs=%ld mode=%03o\n", attr.mq_maxmsg, attr.mq_msgsize, attr.mq_curmsgs,
           (unsigned)(st.st_mode & 0777));
    if (mq_close(q) != 0)
        die("mq_close");
    return 0;
}

/* A key as ipckit's endpoints write it (after "sysv-mq:"). */
static key_t sysv_key(const char *text)
{
    if (text[0] != '/') {
        int hex = strncmp(text, "0x", 2) == 0 || strncmp(text, "0X", 2) == 0;
        const char *digits = hex ? text + 2 : text;
        char *end;
        errno = 0;
        unsigned long v = strtoul(digits, &end, hex ? 16 : 10);
        if (errno != 0 || end == digits || *end != '\0' || v == 0 || v > 0xffffffffUL || digits[0] == '-')
            usage();
        return (key_t)(uint32_t)v;
    }
    char path[4096];
    long id = 1;
    const char *q = strchr(text, '?');
    size_t len = q ? (size_t)(q - text) : strlen(text);
    if (len >= sizeof path)
        usage();
    memcpy(path, text, len);
    path[len] = '\0';
    if (q != NULL) {
        if (strncmp(q, "?id=", 4) != 0)
            usage();
        id = number(q + 4, 10);
        if (id < 1 || id > 255)
            usage();
    }
    key_t key = ftok(path, (int)id);
    if (key == -1)
        die("ftok");
    return key;
}

static int sysv_get(const char *key_text)
{
    int id = msgget(sysv_key(key_text), 0);
    if (id < 0)
        die("msgget");
    return id;
}

static int sysv_create(const char *key_text, long max_bytes)
{
    int id = msgget(sysv_key(key_text), IPC_CREAT | IPC_EXCL | 0600);
    if (id < 0)
        die("msgget IPC_CREAT|IPC_EXCL");
    if (max_bytes > 0) {
        struct msqid_ds ds;
        if (msgctl(id, IPC_STAT, &ds) != 0)
            die("msgctl IPC_STAT");
        ds.msg_qbytes = (msglen_t)max_bytes;
        if (msgctl(id, IPC_SET, &ds) != 0)
            die("msgctl IPC_SET");
    }
    return 0;
}

struct message {
    long mtype;
    uint8_t mtext[BUF_MAX];
};

static int sysv_send(const char *key_text, int argc, char **argv)
{
    static struct message msg;
    int id = sysv_get(key_text);
    for (int i = 0; i < argc; i++) {
        const char *spec;
        msg.mtype = prefix_number(argv[i], &spec);
        if (msg.mtype < 1)
            usage();
        size_t len = spec_bytes(spec, msg.mtext);
        while (msgsnd(id, &msg, len, 0) != 0) {
            if (errno != EINTR)
                die("msgsnd");
        }
    }
    return 0;
}

static int sysv_recv(const char *key_text, long msgtyp, long count)
{
    static struct message msg;
    int id = sysv_get(key_text);
    for (long i = 0; i < count; i++) {
        ssize_t n;
        while ((n = msgrcv(id, &msg, sizeof msg.mtext, msgtyp, 0)) < 0) {
            if (errno != EINTR)
                die("msgrcv");
        }
        print_message(msg.mtype, msg.mtext, (size_t)n);
    }
    return 0;
}

static int sysv_stat(const char *key_text)
{
    struct msqid_ds ds;
    int id = sysv_get(key_text);
    if (msgctl(id, IPC_STAT, &ds) != 0)
        die("msgctl IPC_STAT");
    printf("qnum=%lu qbytes=%lu mode=%03o\n", (unsigned long)ds.msg_qnum, (unsigned long)ds.msg_qbytes,
           (unsigned)(ds.msg_perm.mode & 0777));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    const char *cmd = argv[1];
    const char *obj = argv[2];
    if (strcmp(cmd, "posix-create") == 0 && argc == 5)
        return posix_create(obj, number(argv[3], 10), number(argv[4], 10));
    if (strcmp(cmd, "posix-send") == 0)
        return posix_send(obj, argc - 3, argv + 3);
    if (strcmp(cmd, "posix-recv") == 0 && argc == 4)
        return posix_recv(obj, number(argv[3], 10));
    if (strcmp(cmd, "posix-attr") == 0 && argc == 3)
        return posix_attr(obj);
    if (strcmp(cmd, "sysv-create") == 0 && argc == 4)
        return sysv_create(obj, number(argv[3], 10));
    if (strcmp(cmd, "sysv-send") == 0)
        return sysv_send(obj, argc - 3, argv + 3);
    if (strcmp(cmd, "sysv-recv") == 0 && argc == 5)
        return sysv_recv(obj, number(argv[3], 10), number(argv[4], 10));
    if (strcmp(cmd, "sysv-stat") == 0 && argc == 3)
        return sysv_stat(obj);
    usage();
    return 2;
}
