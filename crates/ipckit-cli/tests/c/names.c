/* Finds the longest POSIX name that mq_open, shm_open and sem_open accept,
 * without ipckit: for each kind, names of PREFIX padded with 'n' to 1..300
 * bytes after the slash are created (and removed at once); prints one line
 * per kind, "KIND LONGEST ERRNO-NAME-OF-THE-NEXT", e.g. "sem 251
 * ENAMETOOLONG".
 *
 * Usage: names PREFIX (a unique prefix, so that anything left is found).
 */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int try_create(int kind, const char *name) {
    if (kind == 0) {
        struct mq_attr a = {0};
        a.mq_maxmsg = 1;
        a.mq_msgsize = 16;
        mqd_t q = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &a);
        if (q == (mqd_t)-1) return errno;
        mq_close(q);
        mq_unlink(name);
    } else if (kind == 1) {
        int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600);
        if (fd < 0) return errno;
        close(fd);
        shm_unlink(name);
    } else {
        sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
        if (s == SEM_FAILED) return errno;
        sem_close(s);
        sem_unlink(name);
    }
    return 0;
}

int main(int argc, char **argv) {
    static const char *kinds[] = {"mq", "shm", "sem"};
    if (argc != 2) {
        fprintf(stderr, "usage: names PREFIX\n");
        return 2;
    }
    size_t prefix = strlen(argv[1]);
    char name[400];
    for (int kind = 0; kind < 3; kind++) {
        size_t longest = 0;
        int next = 0;
        for (size_t len = prefix; len <= 300; len++) {
            name[0] = '/';
            memcpy(name + 1, argv[1], prefix);
            memset(name + 1 + prefix, 'n', len - prefix);
            name[len + 1] = 0;
            int err = try_create(kind, name);
            if (err) {
                next = err;
                break;
            }
            longest = len;
        }
        printf("%s %zu %s\n", kinds[kind], longest, next == ENAMETOOLONG ? "ENAMETOOLONG" : strerror(next));
    }
    return 0;
}
