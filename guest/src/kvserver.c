/*
 * kvserver - tiny TCP key-value server; the oracle for HA output consistency
 * (every OK <seq> a client saw must survive a failover) and, with --disk, for
 * disk replication (every acknowledged PUT is on the disk before the reply).
 *
 * Protocol: one request per line.
 *   PUT <key> <value>  -> OK <seq>        (seq: global PUT sequence number, 1, 2, 3...)
 *   GET <key>          -> VALUE <value> | MISSING
 *   COUNT              -> COUNT <n>       (number of distinct keys)
 *   PING               -> PONG
 *   anything else      -> ERR <reason>
 * Keys and values: 1..200 printable ASCII characters without spaces.
 *
 * Single-threaded poll() loop; with --disk every PUT is written (O_DIRECT) and
 * fdatasync'ed before it is applied and acknowledged, so the reply order is
 * the disk order.  On start with --disk the valid records are replayed.
 *
 * Start line (contract): kvserver listening port=<p> disk=<dev|none> keys=<n>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dkv.h"

#define LINE_MAX_LEN 1024
#define OUT_HIGH_WATER (64 * 1024)

/* ---------- hash table ---------- */

struct ent {
    struct ent *next;
    uint64_t hash;
    uint8_t klen, vlen;
    char data[]; /* key bytes then value bytes */
};

static struct ent **buckets;
static size_t nbuckets, nkeys;

static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)k[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int ht_grow(void)
{
    size_t nn = nbuckets ? nbuckets * 2 : 1024;
    struct ent **nb = calloc(nn, sizeof *nb);
    if (!nb)
        return -1;
    for (size_t i = 0; i < nbuckets; i++) {
        struct ent *e = buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & (nn - 1)];
            nb[e->hash & (nn - 1)] = e;
        }
    }
    free(buckets);
    buckets = nb;
    nbuckets = nn;
    return 0;
}

static struct ent **ht_slot(const char *k, size_t kl, uint64_t h)
{
    struct ent **pp = &buckets[h & (nbuckets - 1)];
    for (; *pp; pp = &(*pp)->next)
        if ((*pp)->hash == h && (*pp)->klen == kl && memcmp((*pp)->data, k, kl) == 0)
            return pp;
    return pp; /* points at the terminating NULL: insertion point */
}

static int ht_put(const char *k, size_t kl, const char *v, size_t vl)
{
    if (nkeys >= nbuckets && ht_grow() < 0)
        return -1;
    uint64_t h = hash_key(k, kl);
    struct ent **pp = ht_slot(k, kl, h);
    struct ent *old = *pp;
    struct ent *e = realloc(old, sizeof *e + kl + vl);
    if (!e)
        return -1;
    if (!old) {
        e->next = NULL;
        e->hash = h;
        e->klen = (uint8_t)kl;
        memcpy(e->data, k, kl);
        nkeys++;
    }
    e->vlen = (uint8_t)vl;
    memcpy(e->data + kl, v, vl);
    *pp = e; /* realloc may have moved it */
    return 0;
}

static const struct ent *ht_get(const char *k, size_t kl)
{
    if (!nbuckets)
        return NULL;
    return *ht_slot(k, kl, hash_key(k, kl));
}

/* ---------- disk log ---------- */

static int disk_fd = -1;
static uint8_t *disk_buf; /* O_DIRECT needs an aligned buffer */
static uint64_t next_seq = 1;

static int disk_open(const char *dev)
{
    disk_fd = open(dev, O_RDWR | O_DIRECT | O_CLOEXEC);
    if (disk_fd < 0) {
        fprintf(stderr, "kvserver: open %s: %s\n", dev, strerror(errno));
        return -1;
    }
    if (posix_memalign((void **)&disk_buf, DKV_BLOCK, DKV_BLOCK) != 0)
        return -1;
    ssize_t n = pread(disk_fd, disk_buf, DKV_BLOCK, 0);
    if (n == DKV_BLOCK && dkv_header_ok(disk_buf)) {
        /* Replay the contiguous run of valid records; the first invalid block
         * is where the last acknowledged write ended. */
        uint64_t replayed = 0;
        for (uint64_t s = 1;; s++) {
            const char *k, *v;
            size_t kl, vl;
            n = pread(disk_fd, disk_buf, DKV_BLOCK, (off_t)(s * DKV_BLOCK));
            if (n != DKV_BLOCK || dkv_parse_record(disk_buf, s, &k, &kl, &v, &vl) < 0)
                break;
            if (ht_put(k, kl, v, vl) < 0) {
                fprintf(stderr, "kvserver: out of memory during replay\n");
                return -1;
            }
            next_seq = s + 1;
            replayed++;
        }
        printf("kvserver replayed records=%" PRIu64 " last_seq=%" PRIu64 "\n", replayed, next_seq - 1);
        return 0;
    }
    dkv_make_header(disk_buf);
    if (pwrite(disk_fd, disk_buf, DKV_BLOCK, 0) != DKV_BLOCK || fdatasync(disk_fd) < 0) {
        fprintf(stderr, "kvserver: writing header to %s: %s\n", dev, strerror(errno));
        return -1;
    }
    return 0;
}

static int disk_append(uint64_t seq, const char *k, size_t kl, const char *v, size_t vl)
{
    dkv_make_record(disk_buf, seq, k, kl, v, vl);
    if (pwrite(disk_fd, disk_buf, DKV_BLOCK, (off_t)(seq * DKV_BLOCK)) != DKV_BLOCK)
        return -1;
    return fdatasync(disk_fd);
}

/* ---------- clients ---------- */

struct client {
    int fd;
    int discarding; /* inside an over-long line: drop bytes up to the next newline */
    size_t inlen;
    char in[LINE_MAX_LEN];
    char *out;
    size_t outlen, outcap;
};

static struct client **clients;
static size_t nclients, clients_cap;

static void out_add(struct client *c, const char *s, size_t n)
{
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap : 512;
        while (cap < c->outlen + n)
            cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p)
            return; /* reply lost; the client will notice a missing answer */
        c->out = p;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, s, n);
    c->outlen += n;
}

/* Returns 0 so that handlers can "return reply(...)". */
static int reply(struct client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reply(struct client *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        out_add(c, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    return 0;
}

static int valid_field(const char *s, size_t n)
{
    if (n == 0 || n > DKV_MAX_FIELD)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int handle_line(struct client *c, char *line, size_t len)
{
    char *tok[4];
    size_t tl[4];
    int nt = 0;
    size_t i = 0;

    if (len && line[len - 1] == '\r')
        len--;
    while (i < len) {
        while (i < len && line[i] == ' ')
            i++;
        if (i >= len)
            break;
        if (nt == 4) {
            nt++;
            break;
        }
        tok[nt] = line + i;
        while (i < len && line[i] != ' ')
            i++;
        tl[nt] = (size_t)(line + i - tok[nt]);
        nt++;
    }
    if (nt == 0)
        return 0; /* blank line: ignore */
#define IS(t, s) (tl[t] == strlen(s) && memcmp(tok[t], s, tl[t]) == 0)
    if (IS(0, "PUT")) {
        if (nt != 3)
            return reply(c, "ERR usage: PUT <key> <value>\n");
        if (!valid_field(tok[1], tl[1]))
            return reply(c, "ERR bad key\n");
        if (!valid_field(tok[2], tl[2]))
            return reply(c, "ERR bad value\n");
        uint64_t seq = next_seq;
        if (disk_fd >= 0 && disk_append(seq, tok[1], tl[1], tok[2], tl[2]) < 0)
            return reply(c, "ERR disk write failed: %s\n", strerror(errno));
        if (ht_put(tok[1], tl[1], tok[2], tl[2]) < 0)
            return reply(c, "ERR out of memory\n");
        next_seq++;
        return reply(c, "OK %" PRIu64 "\n", seq);
    }
    if (IS(0, "GET")) {
        if (nt != 2)
            return reply(c, "ERR usage: GET <key>\n");
        if (!valid_field(tok[1], tl[1]))
            return reply(c, "ERR bad key\n");
        const struct ent *e = ht_get(tok[1], tl[1]);
        if (!e)
            return reply(c, "MISSING\n");
        return reply(c, "VALUE %.*s\n", (int)e->vlen, e->data + e->klen);
    }
    if (IS(0, "COUNT")) {
        if (nt != 1)
            return reply(c, "ERR usage: COUNT\n");
        return reply(c, "COUNT %zu\n", nkeys);
    }
    if (IS(0, "PING")) {
        if (nt != 1)
            return reply(c, "ERR usage: PING\n");
        return reply(c, "PONG\n");
    }
#undef IS
    return reply(c, "ERR unknown command\n");
}

static void client_close(size_t idx)
{
    struct client *c = clients[idx];
    close(c->fd);
    free(c->out);
    free(c);
    clients[idx] = clients[--nclients];
}

/* Returns -1 if the client is gone. */
static int client_flush(struct client *c)
{
    while (c->outlen) {
        ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        memmove(c->out, c->out + n, c->outlen - (size_t)n);
        c->outlen -= (size_t)n;
    }
    return 0;
}

static int client_read(struct client *c)
{
    char buf[4096];
    ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0)
        return -1;
    if (n < 0)
        return (errno == EAGAIN || errno == EINTR) ? 0 : -1;
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (c->discarding) {
            if (ch == '\n')
                c->discarding = 0;
            continue;
        }
        if (ch == '\n') {
            handle_line(c, c->in, c->inlen);
            c->inlen = 0;
            continue;
        }
        if (c->inlen == sizeof c->in) {
            reply(c, "ERR line too long\n");
            c->inlen = 0;
            c->discarding = 1;
            continue;
        }
        c->in[c->inlen++] = ch;
    }
    return 0;
}

int main(int argc, char **argv)
{
    int port = 7000;
    const char *disk = NULL;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--disk") && i + 1 < argc)
            disk = argv[++i];
        else {
            fprintf(stderr, "usage: kvserver [--port P] [--disk DEV]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "kvserver: bad port\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (ht_grow() < 0)
        return 1;
    if (disk && disk_open(disk) < 0)
        return 1;

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_ANY) };
    if (ls < 0 || setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(ls, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(ls, 128) < 0) {
        perror("kvserver: listen");
        return 1;
    }
    printf("kvserver listening port=%d disk=%s keys=%zu\n", port, disk ? disk : "none", nkeys);
    fflush(stdout);

    struct pollfd *pfd = NULL;
    size_t pfd_cap = 0;
    for (;;) {
        if (pfd_cap < nclients + 1) {
            pfd_cap = (nclients + 1) * 2;
            pfd = realloc(pfd, pfd_cap * sizeof *pfd);
            if (!pfd)
                return 1;
        }
        pfd[0] = (struct pollfd){ .fd = ls, .events = POLLIN };
        for (size_t i = 0; i < nclients; i++) {
            struct client *c = clients[i];
            short ev = 0;
            /* backpressure: a client that does not read its replies is not read either */
            if (c->outlen < OUT_HIGH_WATER)
                ev |= POLLIN;
            if (c->outlen)
                ev |= POLLOUT;
            pfd[i + 1] = (struct pollfd){ .fd = c->fd, .events = ev };
        }
        size_t n = nclients;
        if (poll(pfd, n + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("kvserver: poll");
            return 1;
        }
        /* walk backwards: client_close moves the last client into the freed slot */
        for (size_t i = n; i-- > 0;) {
            struct client *c = clients[i];
            short re = pfd[i + 1].revents;
            if (!re)
                continue;
            if ((re & (POLLIN | POLLHUP | POLLERR)) && client_read(c) < 0) {
                client_flush(c); /* best effort: answers to the last lines */
                client_close(i);
                continue;
            }
            if (client_flush(c) < 0)
                client_close(i);
        }
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (fd >= 0) {
                struct client *c = calloc(1, sizeof *c);
                if (nclients == clients_cap) {
                    size_t cap = clients_cap ? clients_cap * 2 : 16;
                    struct client **nc = realloc(clients, cap * sizeof *nc);
                    if (nc) {
                        clients = nc;
                        clients_cap = cap;
                    }
                }
                if (!c || nclients == clients_cap) {
                    free(c);
                    close(fd);
                } else {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c->fd = fd;
                    clients[nclients++] = c;
                }
            }
        }
    }
}
