/*
 * frames: a peer for ipckit's len32 frame format written without ipckit,
 * to show that the documented format is all another program needs.
 *
 * A frame is a u32 little-endian payload length, then the payload.
 *
 *   frames send unix PATH|@NAME CHUNK SPEC...
 *   frames send tcp HOST PORT CHUNK SPEC...
 *       Connects and sends one frame per SPEC, writing at most CHUNK bytes
 *       per write() (so that frames arrive in pieces), then closes.
 *       SPEC is s:TEXT (the bytes of TEXT) or p:SIZE:SEED (SIZE bytes of
 *       the pattern byte[i] = (SEED + 7*i + (i >> 8)) & 0xff).
 *
 *   frames send unix-dgram|unix-seqpacket PATH|@NAME 0 SPEC...
 *       The same over a Unix socket that keeps message boundaries: one
 *       send() per SPEC, no frame header (the kernel delimits messages).
 *
 *   frames recv unix PATH|@NAME CONNS
 *   frames recv tcp HOST PORT CONNS
 *       Binds and listens (TCP port 0: the kernel chooses), writes
 *       "ready PORT\n" (TCP) or "ready\n" (Unix) to stderr, then accepts
 *       CONNS connections one after the other and reads frames from each
 *       until it closes. Every frame read is written to stdout again as a
 *       len32 frame, byte for byte; the count goes to stderr at the end.
 *
 * Exit status 0 on success, 1 on any error (a message on stderr), 2 on
 * bad arguments. Every read and write loops over partial transfers and
 * EINTR.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void die(const char *what)
{
    fprintf(stderr, "frames: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void usage(void)
{
    fprintf(stderr, "usage: frames send unix|unix-dgram|unix-seqpacket ADDR CHUNK SPEC...\n"
                    "       frames send tcp HOST PORT CHUNK SPEC...\n"
                    "       frames recv unix ADDR CONNS | frames recv tcp HOST PORT CONNS\n");
    exit(2);
}

/* Writes all of buf, at most chunk bytes per write(). */
static void write_all(int fd, const uint8_t *buf, size_t len, size_t chunk)
{
    while (len > 0) {
        size_t want = len < chunk ? len : chunk;
        ssize_t n = write(fd, buf, want);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("write");
        }
        buf += n;
        len -= (size_t)n;
    }
}

/* Reads exactly len bytes. Returns len, or how many arrived before EOF. */
static size_t read_full(int fd, uint8_t *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("read");
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static void put_le32(uint8_t out[4], uint32_t v)
{
    out[0] = (uint8_t)v;
    out[1] = (uint8_t)(v >> 8);
    out[2] = (uint8_t)(v >> 16);
    out[3] = (uint8_t)(v >> 24);
}

static uint32_t get_le32(const uint8_t in[4])
{
    return (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
}

static unsigned long number(const char *text)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        usage();
    return v;
}

/* A Unix address: a path, or @NAME for the abstract namespace. */
static socklen_t unix_addr(struct sockaddr_un *sa, const char *addr)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t len = strlen(addr);
    if (len == 0 || len >= sizeof sa->sun_path) {
        fprintf(stderr, "frames: bad unix address %s\n", addr);
        exit(2);
    }
    if (addr[0] == '@') {
        /* Abstract: a leading NUL, then the name, no terminator. */
        memcpy(sa->sun_path + 1, addr + 1, len - 1);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    }
    memcpy(sa->sun_path, addr, len);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* A TCP address from a numeric IPv4 or IPv6 host. */
static socklen_t tcp_addr(struct sockaddr_storage *ss, const char *host, const char *port)
{
    unsigned long p = number(port);
    if (p > 65535)
        usage();
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)p);
        return sizeof *v4;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)p);
        return sizeof *v6;
    }
    fprintf(stderr, "frames: bad host %s (numeric IPv4 or IPv6 only)\n", host);
    exit(2);
}

/* Parses the transport arguments at argv[2...]; returns how many it used. */
static int address(int argc, char **argv, struct sockaddr_storage *ss, socklen_t *len, int *family)
{
    if (argc < 4)
        usage();
    if (strcmp(argv[2], "unix") == 0 || strcmp(argv[2], "unix-dgram") == 0 ||
        strcmp(argv[2], "unix-seqpacket") == 0) {
        *len = unix_addr((struct sockaddr_un *)ss, argv[3]);
        *family = AF_UNIX;
        return 2;
    }
    if (strcmp(argv[2], "tcp") == 0 && argc >= 5) {
        *len = tcp_addr(ss, argv[3], argv[4]);
        *family = ss->ss_family;
        return 3;
    }
    usage();
    return 0;
}

/* Socket type for the transport name at argv[2]. */
static int socket_type(const char *transport)
{
    if (strcmp(transport, "unix-dgram") == 0)
        return SOCK_DGRAM;
    if (strcmp(transport, "unix-seqpacket") == 0)
        return SOCK_SEQPACKET;
    return SOCK_STREAM;
}

/* One message: a frame on a stream, one send() on a message socket. */
static void send_frame(int fd, int type, const uint8_t *payload, size_t len, size_t chunk)
{
    uint8_t header[4];
    if (type != SOCK_STREAM) {
        ssize_t n;
        while ((n = send(fd, payload, len, 0)) < 0) {
            if (errno != EINTR)
                die("send");
        }
        if ((size_t)n != len) {
            fprintf(stderr, "frames: short send of a message (%zd of %zu bytes)\n", n, len);
            exit(1);
        }
        return;
    }
    if (len > UINT32_MAX) {
        fprintf(stderr, "frames: message too long\n");
        exit(2);
    }
    put_le32(header, (uint32_t)len);
    write_all(fd, header, sizeof header, chunk);
    write_all(fd, payload, len, chunk);
}

static int do_send(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
    int i = 2 + address(argc, argv, &ss, &len, &family);
    if (i >= argc)
        usage();
    int type = socket_type(argv[2]);
    size_t chunk = number(argv[i++]);
    if (chunk == 0 && type == SOCK_STREAM)
        usage();
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket");
    while (connect(fd, (struct sockaddr *)&ss, len) < 0) {
        if (errno != EINTR)
            die("connect");
    }
    if (family != AF_UNIX) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
            die("setsockopt TCP_NODELAY");
    }
    for (; i < argc; i++) {
        const char *spec = argv[i];
        if (strncmp(spec, "s:", 2) == 0) {
            send_frame(fd, type, (const uint8_t *)spec + 2, strlen(spec + 2), chunk);
        } else if (strncmp(spec, "p:", 2) == 0) {
            char *colon = strchr(spec + 2, ':');
            if (colon == NULL)
                usage();
            *colon = '\0';
            size_t size = number(spec + 2);
            unsigned long seed = number(colon + 1);
            uint8_t *buf = malloc(size ? size : 1);
            if (buf == NULL)
                die("malloc");
            for (size_t k = 0; k < size; k++)
                buf[k] = (uint8_t)((seed + 7 * k + (k >> 8)) & 0xff);
            send_frame(fd, type, buf, size, chunk);
            free(buf);
        } else {
            usage();
        }
    }
    if (close(fd) < 0)
        die("close");
    return 0;
}

static int do_recv(int argc, char **argv)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family;
    int i = 2 + address(argc, argv, &ss, &len, &family);
    if (i + 1 != argc || socket_type(argv[2]) != SOCK_STREAM)
        usage();
    unsigned long conns = number(argv[i]);
    int lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    if (family == AF_UNIX) {
        const struct sockaddr_un *sa = (const struct sockaddr_un *)&ss;
        if (sa->sun_path[0] != '\0' && unlink(sa->sun_path) < 0 && errno != ENOENT)
            die("unlink");
    } else {
        int one = 1;
        if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
            die("setsockopt SO_REUSEADDR");
    }
    if (bind(lfd, (struct sockaddr *)&ss, len) < 0)
        die("bind");
    if (listen(lfd, 16) < 0)
        die("listen");
    if (family == AF_UNIX) {
        fprintf(stderr, "ready\n");
    } else {
        struct sockaddr_storage local;
        socklen_t llen = sizeof local;
        if (getsockname(lfd, (struct sockaddr *)&local, &llen) < 0)
            die("getsockname");
        uint16_t port = family == AF_INET ? ((struct sockaddr_in *)&local)->sin_port
                                          : ((struct sockaddr_in6 *)&local)->sin6_port;
        fprintf(stderr, "ready %u\n", (unsigned)ntohs(port));
    }
    fflush(stderr);

    unsigned long frames = 0;
    for (unsigned long c = 0; c < conns; c++) {
        int fd;
        while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
            if (errno != EINTR)
                die("accept");
        }
        for (;;) {
            uint8_t header[4];
            size_t got = read_full(fd, header, sizeof header);
            if (got == 0)
                break; /* closed between frames: the clean end */
            if (got < sizeof header) {
                fprintf(stderr, "frames: connection closed inside a frame header (%zu of 4 bytes)\n", got);
                return 1;
            }
            uint32_t n = get_le32(header);
            if (n > (64u << 20)) {
                fprintf(stderr, "frames: frame of %u bytes is over the 64 MiB limit\n", n);
                return 1;
            }
            uint8_t *buf = malloc(n ? n : 1);
            if (buf == NULL)
                die("malloc");
            got = read_full(fd, buf, n);
            if (got < n) {
                fprintf(stderr, "frames: connection closed inside a frame (%zu of %u bytes)\n", got, n);
                return 1;
            }
            write_all(STDOUT_FILENO, header, sizeof header, SIZE_MAX);
            write_all(STDOUT_FILENO, buf, n, SIZE_MAX);
            free(buf);
            frames++;
        }
        if (close(fd) < 0)
            die("close");
    }
    fprintf(stderr, "frames %lu\n", frames);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "send") == 0)
        return do_send(argc, argv);
    if (strcmp(argv[1], "recv") == 0)
        return do_recv(argc, argv);
    usage();
    return 2;
}
