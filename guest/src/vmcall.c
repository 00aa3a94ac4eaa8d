/*
 * vmcall - guest programs' calls to the host, relayed by the agent.
 * One binary, dispatched on argv[0] (symlinks in /bin):
 *
 *   vmfork N        {"call":"fork","n":N}       prints the result: 0 in the
 *                                               parent, k in clone k
 *   vmwait [ID...]  {"call":"wait","ids":[...]} prints the result JSON
 *   vmexit CODE     {"call":"exit","code":CODE}
 *   vmkill ID       {"call":"kill","target":ID} ("id" is the relay's own field)
 *   vmcall JSON     sends JSON (an object with "call") as is
 *   vmcall fork|wait|exit|kill ARGS...  same as the named forms
 *
 * The answer is the host's line {"id":..,"result":R} or {"id":..,"error":E}.
 * R is printed on stdout (strings unescaped, anything else as raw JSON, null
 * prints nothing), exit 0; E goes to stderr, exit 1.
 *
 * The call blocks as long as the host takes: during a VM fork the answer
 * arrives only after the VM was snapshotted and resumed (in every clone).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "minijson.h"

#define REPLY_MAX (4 * 1024 * 1024)

static const char *prog;

static int is_int(const char *s)
{
    long long v;
    return s && mj_parse_i64(s, s + strlen(s), &v) == 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: vmfork N | vmwait [ID...] | vmexit CODE | vmkill ID | vmcall JSON\n"
            "       vmcall fork|wait|exit|kill ARGS...\n");
    exit(2);
}

/* Builds the request for a named call; args are the remaining arguments. */
static void build(struct sb *r, const char *name, int n, char **a)
{
    if (!strcmp(name, "fork")) {
        long long v;
        if (n != 1 || mj_parse_i64(a[0], a[0] + strlen(a[0]), &v) < 0 || v < 1)
            usage();
        sb_printf(r, "{\"call\":\"fork\",\"n\":%lld}", v);
    } else if (!strcmp(name, "wait")) {
        sb_puts(r, "{\"call\":\"wait\",\"ids\":[");
        for (int i = 0; i < n; i++) {
            if (!is_int(a[i]))
                usage();
            sb_printf(r, "%s%lld", i ? "," : "", strtoll(a[i], NULL, 10));
        }
        sb_puts(r, "]}");
    } else if (!strcmp(name, "exit")) {
        if (n != 1 || !is_int(a[0]))
            usage();
        sb_printf(r, "{\"call\":\"exit\",\"code\":%lld}", strtoll(a[0], NULL, 10));
    } else if (!strcmp(name, "kill")) {
        if (n != 1 || !is_int(a[0]))
            usage();
        sb_printf(r, "{\"call\":\"kill\",\"target\":%lld}", strtoll(a[0], NULL, 10));
    } else {
        usage();
    }
}

static int connect_agent(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, path);
    /* the agent may still be starting (boot): retry for a while */
    for (int tries = 0; tries < 100; tries++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            return fd;
        int e = errno;
        close(fd);
        if (e != ENOENT && e != ECONNREFUSED && e != EAGAIN)
            break;
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return -1;
}

/* Prints a JSON value: strings unescaped, others raw. */
static void print_value(FILE *f, const char *vs, const char *ve)
{
    if (*vs == '"') {
        char *buf = malloc((size_t)(ve - vs) * 4 + 1);
        if (buf && mj_unescape(vs, ve, buf, (size_t)(ve - vs) * 4 + 1) >= 0) {
            fprintf(f, "%s\n", buf);
            free(buf);
            return;
        }
        free(buf);
    }
    if (ve - vs == 4 && memcmp(vs, "null", 4) == 0)
        return;
    fprintf(f, "%.*s\n", (int)(ve - vs), vs);
}

int main(int argc, char **argv)
{
    struct sb req = { 0 }, rep = { 0 };
    const char *sock = getenv("DOPPEL_AGENT_SOCK");
    if (!sock || !*sock)
        sock = "/run/doppel-agent.sock";
    prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];

    if (!strncmp(prog, "vm", 2) && strcmp(prog, "vmcall") != 0) {
        build(&req, prog + 2, argc - 1, argv + 1);
    } else {
        if (argc < 2)
            usage();
        if (argv[1][0] == '{') {
            if (argc != 2)
                usage();
            sb_puts(&req, argv[1]);
            if (!mj_valid_object(req.p, req.len) || !mj_find(req.p, req.len, "call", NULL)) {
                fprintf(stderr, "%s: want a JSON object with a \"call\" key\n", prog);
                return 2;
            }
        } else {
            build(&req, argv[1], argc - 2, argv + 2);
        }
    }
    if (memchr(req.p, '\n', req.len)) {
        fprintf(stderr, "%s: request must be one line\n", prog);
        return 2;
    }
    sb_puts(&req, "\n");

    int fd = connect_agent(sock);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot reach the agent at %s: %s\n", prog, sock, strerror(errno));
        return 1;
    }
    for (size_t off = 0; off < req.len;) {
        ssize_t w = send(fd, req.p + off, req.len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            fprintf(stderr, "%s: send: %s\n", prog, strerror(errno));
            return 1;
        }
        off += (size_t)w;
    }
    /* the agent closes the connection after the one answer line */
    for (;;) {
        char buf[4096];
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "%s: read: %s\n", prog, strerror(errno));
            return 1;
        }
        if (n == 0)
            break;
        sb_add(&rep, buf, (size_t)n);
        if (rep.len > REPLY_MAX || rep.oom) {
            fprintf(stderr, "%s: answer too long\n", prog);
            return 1;
        }
        if (memchr(buf, '\n', (size_t)n))
            break;
    }
    close(fd);
    if (!rep.len) {
        fprintf(stderr, "%s: the agent closed the connection without an answer\n", prog);
        return 1;
    }
    size_t len = rep.len;
    char *nl = memchr(rep.p, '\n', len);
    if (nl)
        len = (size_t)(nl - rep.p);
    if (!mj_valid_object(rep.p, len)) {
        fprintf(stderr, "%s: malformed answer: %.*s\n", prog, (int)len, rep.p);
        return 1;
    }
    const char *ve, *vs = mj_find(rep.p, len, "error", &ve);
    if (vs) {
        fprintf(stderr, "%s: ", prog);
        print_value(stderr, vs, ve);
        return 1;
    }
    vs = mj_find(rep.p, len, "result", &ve);
    if (!vs) {
        fprintf(stderr, "%s: answer has neither result nor error: %.*s\n", prog, (int)len, rep.p);
        return 1;
    }
    print_value(stdout, vs, ve);
    return 0;
}
