/*
 * agent - the Doppel guest agent.
 *
 * Host link: the virtio-serial port named org.doppel.agent.0, newline-delimited
 * JSON objects in both directions.
 *
 *   guest -> host  {"event":"agent-ready","hostname":"...","pid":N}
 *                  (sent every time the host side becomes connected)
 *   host -> guest  {"id":<n>,"cmd":"ping"|"set-identity"|"exec",...}
 *   guest -> host  {"id":<n>,"ok":true,...} | {"id":<n>,"ok":false,"error":"..."}
 *
 * Relay of guest program calls (vmfork & co): clients connect to the unix
 * socket /run/doppel-agent.sock and send one line {"call":"<name>",...}; the
 * agent forwards {"id":<k>,"call":"<name>",...} to the host and hands the
 * host's answer line {"id":<k>,"result":...} / {"id":<k>,"error":...} back to
 * that client verbatim, then closes the connection.
 *
 * VM fork: a call can still be pending when the VM is snapshotted and resumed
 * as several clones; every clone's host side answers the same id with its own
 * result.  The agent therefore keeps all pending calls across host link
 * hangups and never re-sends a call that was already written: it just waits.
 *
 * Single-threaded poll() loop; only libc.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/random.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "minijson.h"

#define HOST_LINE_MAX (1024 * 1024)
#define CLIENT_LINE_MAX (64 * 1024)
#define EXEC_OUT_MAX (64 * 1024)
#define PORT_OUT_MAX (16 * 1024 * 1024)
#define BACKOFF_MIN_MS 20
#define BACKOFF_MAX_MS 200

static const char *port_name = "org.doppel.agent.0";
static const char *sock_path = "/run/doppel-agent.sock";
static const char *iface = "eth0";

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    va_list ap;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    fprintf(stderr, "agent[%ld.%03ld]: ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ================= host link (virtio-serial port) ================= */

static int port_fd = -1;
static int host_connected;
static uint64_t port_retry_at;
static unsigned backoff_ms = BACKOFF_MIN_MS;
static struct sb port_out;   /* bytes waiting to be written to the host */
static int port_out_partial; /* the first line in port_out was partly written */
static struct sb port_in;    /* incomplete line from the host */
static int port_in_discard;  /* dropping an over-long line up to its newline */

static void schedule_port_retry(void)
{
    port_retry_at = now_ms() + backoff_ms;
    backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
}

/* No udev in the guest: find /dev/vportXpY through sysfs by the port's name. */
static int find_port_dev(char *out, size_t outsz)
{
    DIR *d = opendir("/sys/class/virtio-ports");
    struct dirent *de;
    int found = -1;
    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL) {
        char path[512], name[256];
        FILE *f;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", de->d_name);
        f = fopen(path, "re");
        if (!f)
            continue;
        if (fgets(name, sizeof name, f)) {
            name[strcspn(name, "\n")] = 0;
            if (strcmp(name, port_name) == 0) {
                snprintf(out, outsz, "/dev/%s", de->d_name);
                found = 0;
            }
        }
        fclose(f);
        if (found == 0)
            break;
    }
    closedir(d);
    return found;
}

static void port_queue(const char *s, size_t n)
{
    sb_add(&port_out, s, n);
}

static void send_agent_ready_front(void)
{
    char host[256] = "";
    struct sb m = { 0 };
    gethostname(host, sizeof host - 1);
    sb_puts(&m, "{\"event\":\"agent-ready\",\"hostname\":");
    sb_json_str(&m, host, strlen(host));
    sb_printf(&m, ",\"pid\":%d}\n", (int)getpid());
    /* in front of anything queued while the host was away */
    sb_add(&m, port_out.p ? port_out.p : "", port_out.len);
    sb_free(&port_out);
    port_out = m;
}

static void port_close(const char *why)
{
    if (port_fd >= 0) {
        logmsg("host port closed (%s)", why);
        close(port_fd);
    }
    port_fd = -1;
    host_connected = 0;
    schedule_port_retry();
}

static void host_disconnected(void)
{
    if (host_connected)
        logmsg("host disconnected");
    host_connected = 0;
    /* a half-delivered line would reach the next host as garbage: drop its rest */
    if (port_out_partial) {
        char *nl = memchr(port_out.p, '\n', port_out.len);
        size_t cut = nl ? (size_t)(nl - port_out.p) + 1 : port_out.len;
        memmove(port_out.p, port_out.p + cut, port_out.len - cut);
        port_out.len -= cut;
        port_out_partial = 0;
    }
    port_in.len = 0;
    port_in_discard = 0;
    schedule_port_retry();
}

/*
 * Opens the port if needed and checks whether a host is attached.  The
 * virtio_console driver reports POLLHUP (and read() == 0) while the host side
 * of the chardev is not connected; writes would block.  We poll that state with
 * a capped backoff instead of spinning on the HUP.
 */
static void port_maintain(void)
{
    if (port_fd < 0) {
        char dev[300];
        static int warned;
        if (find_port_dev(dev, sizeof dev) < 0) {
            if (!warned++)
                logmsg("waiting for virtio port %s", port_name);
            schedule_port_retry();
            return;
        }
        port_fd = open(dev, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (port_fd < 0) {
            logmsg("open %s: %s", dev, strerror(errno));
            schedule_port_retry();
            return;
        }
        warned = 0;
        logmsg("opened %s (%s)", dev, port_name);
    }
    struct pollfd p = { .fd = port_fd, .events = POLLIN | POLLOUT };
    if (poll(&p, 1, 0) < 0) {
        schedule_port_retry();
        return;
    }
    if (p.revents & POLLNVAL) {
        port_close("invalid");
        return;
    }
    if (p.revents & POLLHUP) {
        schedule_port_retry();
        return;
    }
    host_connected = 1;
    backoff_ms = BACKOFF_MIN_MS;
    logmsg("host connected");
    send_agent_ready_front();
}

static void port_flush(void)
{
    while (port_fd >= 0 && host_connected && port_out.len) {
        ssize_t n = write(port_fd, port_out.p, port_out.len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            port_close(strerror(errno));
            return;
        }
        /* only whole lines are queued, so the head line is partly written
         * exactly when the last byte written was not a newline */
        port_out_partial = n > 0 && port_out.p[n - 1] != '\n';
        memmove(port_out.p, port_out.p + n, port_out.len - (size_t)n);
        port_out.len -= (size_t)n;
    }
}

/* ================= replies to host commands ================= */

/* Handlers return int (always 0) only so that error paths can be written as
 * "return reply_error(...)". */

/* Host ids are echoed back verbatim (raw JSON token), whatever their type. */
static void reply_begin(struct sb *m, const char *id, size_t idlen, int ok)
{
    sb_puts(m, "{\"id\":");
    if (id)
        sb_add(m, id, idlen);
    else
        sb_puts(m, "null");
    sb_puts(m, ok ? ",\"ok\":true" : ",\"ok\":false");
}

static void reply_end(struct sb *m)
{
    sb_puts(m, "}\n");
    if (m->oom)
        logmsg("out of memory building a reply");
    else
        port_queue(m->p, m->len);
    sb_free(m);
}

static int reply_error(const char *id, size_t idlen, const char *err)
{
    struct sb m = { 0 };
    reply_begin(&m, id, idlen, 0);
    sb_puts(&m, ",\"error\":");
    sb_json_str(&m, err, strlen(err));
    reply_end(&m);
    return 0;
}

static int reply_ok(const char *id, size_t idlen)
{
    struct sb m = { 0 };
    reply_begin(&m, id, idlen, 1);
    reply_end(&m);
    return 0;
}

/* ================= ping / set-identity ================= */

static int cmd_ping(const char *id, size_t idlen)
{
    struct timespec ts;
    struct sb m = { 0 };
    clock_gettime(CLOCK_BOOTTIME, &ts);
    reply_begin(&m, id, idlen, 1);
    sb_printf(&m, ",\"uptime_ms\":%" PRIu64,
              (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
    reply_end(&m);
    return 0;
}

/* Runs a short helper (busybox ip) synchronously; returns its exit status or -1. */
static int run(const char *a0, const char *a1, const char *a2, const char *a3, const char *a4,
               const char *a5, const char *a6)
{
    const char *argv[] = { a0, a1, a2, a3, a4, a5, a6, NULL };
    int st;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);
        if (fd >= 0)
            dup2(fd, 0);
        dup2(2, 1); /* helper output goes to the agent log */
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int valid_hostname(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
              (h[i] >= '0' && h[i] <= '9') || h[i] == '-' || h[i] == '.'))
            return 0;
    return 1;
}

static int valid_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

static int valid_cidr(const char *s)
{
    char addr[32];
    const char *slash = strchr(s, '/');
    char *end;
    long pfx;
    if (!slash || (size_t)(slash - s) >= sizeof addr)
        return 0;
    memcpy(addr, s, (size_t)(slash - s));
    addr[slash - s] = 0;
    pfx = strtol(slash + 1, &end, 10);
    return valid_ipv4(addr) && slash[1] && !*end && pfx >= 0 && pfx <= 32;
}

static int valid_mac(const char *s)
{
    if (strlen(s) != 17)
        return 0;
    for (int i = 0; i < 17; i++) {
        char c = s[i];
        if (i % 3 == 2) {
            if (c != ':')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Default gateway of iface from /proc/net/route ("" if none). */
static void default_gw(char *out, size_t outsz)
{
    char line[512], ifn[64];
    unsigned long dst, gw;
    FILE *f = fopen("/proc/net/route", "re");
    out[0] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%63s %lx %lx", ifn, &dst, &gw) == 3 && dst == 0 && gw != 0 &&
            strcmp(ifn, iface) == 0) {
            struct in_addr a = { .s_addr = (uint32_t)gw };
            inet_ntop(AF_INET, &a, out, (socklen_t)outsz);
            break;
        }
    }
    fclose(f);
}

static int cmd_set_identity(const char *line, size_t len, const char *id, size_t idlen)
{
    char hostname[128], ip[64], gw[64], mac[64], oldgw[64];
    static char seed[4096];
    int has_host = mj_find(line, len, "hostname", NULL) != NULL;
    int has_ip = mj_find(line, len, "ip", NULL) != NULL;
    int has_gw = mj_find(line, len, "gw", NULL) != NULL;
    int has_mac = mj_find(line, len, "mac", NULL) != NULL;
    int has_seed = mj_find(line, len, "seed", NULL) != NULL;

    /* validate everything first so that a bad request changes nothing */
    if (has_host && (mj_get_str(line, len, "hostname", hostname, sizeof hostname) < 0 ||
                     !valid_hostname(hostname)))
        return reply_error(id, idlen, "bad hostname");
    if (has_ip && (mj_get_str(line, len, "ip", ip, sizeof ip) < 0 || !valid_cidr(ip)))
        return reply_error(id, idlen, "bad ip (want A.B.C.D/NN)");
    if (has_gw && (mj_get_str(line, len, "gw", gw, sizeof gw) < 0 || !valid_ipv4(gw)))
        return reply_error(id, idlen, "bad gw");
    if (has_mac && (mj_get_str(line, len, "mac", mac, sizeof mac) < 0 || !valid_mac(mac)))
        return reply_error(id, idlen, "bad mac (want xx:xx:xx:xx:xx:xx)");
    long seedlen = 0;
    if (has_seed) {
        seedlen = mj_get_str(line, len, "seed", seed, sizeof seed);
        if (seedlen <= 0 || seedlen % 2 || seedlen > 2048)
            return reply_error(id, idlen, "bad seed (want 2..2048 hex digits)");
        for (long i = 0; i < seedlen; i++)
            if (hexval(seed[i]) < 0)
                return reply_error(id, idlen, "bad seed (want 2..2048 hex digits)");
    }

    default_gw(oldgw, sizeof oldgw);
    if (has_mac) {
        /* link down drops the default route; it is restored below */
        if (run("ip", "link", "set", "dev", iface, "down", NULL) != 0 ||
            run("ip", "link", "set", "dev", iface, "address", mac) != 0 ||
            run("ip", "link", "set", "dev", iface, "up", NULL) != 0)
            return reply_error(id, idlen, "setting mac failed");
    }
    if (has_ip) {
        if (run("ip", "addr", "flush", "dev", iface, NULL, NULL) != 0 ||
            run("ip", "addr", "add", ip, "dev", iface, NULL) != 0 ||
            run("ip", "link", "set", "dev", iface, "up", NULL) != 0)
            return reply_error(id, idlen, "setting ip failed");
    }
    if (has_gw) {
        if (run("ip", "route", "replace", "default", "via", gw, NULL) != 0)
            return reply_error(id, idlen, "setting gw failed");
    } else if ((has_mac || has_ip) && oldgw[0]) {
        /* best effort: the old gateway may not be reachable from a new subnet */
        run("ip", "route", "replace", "default", "via", oldgw, NULL);
    }
    if (has_host && sethostname(hostname, strlen(hostname)) < 0)
        return reply_error(id, idlen, "sethostname failed");
    if (has_seed) {
        /* Clones start with identical RNG state.  Writing to /dev/urandom mixes
         * the seed in; RNDADDENTROPY also credits it, so the kernel reseeds its
         * CRNG from it at once instead of waiting for more entropy. */
        size_t nb = (size_t)seedlen / 2;
        struct rand_pool_info *rp = calloc(1, sizeof *rp + nb + 4);
        if (!rp)
            return reply_error(id, idlen, "out of memory");
        unsigned char *bytes = (unsigned char *)rp->buf;
        for (size_t i = 0; i < nb; i++)
            bytes[i] = (unsigned char)(hexval(seed[2 * i]) << 4 | hexval(seed[2 * i + 1]));
        int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        int ok = fd >= 0 && write(fd, bytes, nb) == (ssize_t)nb;
        if (ok) {
            rp->entropy_count = (int)(nb * 8);
            rp->buf_size = (int)nb;
            ok = ioctl(fd, RNDADDENTROPY, rp) == 0;
        }
        int err = errno;
        if (fd >= 0)
            close(fd);
        free(rp);
        if (!ok) {
            char msg[128];
            snprintf(msg, sizeof msg, "seeding rng failed: %s", strerror(err));
            return reply_error(id, idlen, msg);
        }
    }
    reply_ok(id, idlen);
    return 0;
}

/* ================= exec ================= */

struct job {
    struct job *next;
    char *id; /* raw JSON id token */
    size_t idlen;
    pid_t pid;
    int fd[2]; /* stdout, stderr pipes; -1 once at EOF */
    struct sb out[2];
    int trunc;
    int exited, status, timed_out;
    uint64_t deadline; /* 0: none */
};

static struct job *jobs;

static int cmd_exec(const char *line, size_t len, const char *id, size_t idlen)
{
    char **argv = NULL;
    long long timeout_ms = 0;
    int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, px[2] = { -1, -1 };
    long argc = mj_get_str_array(line, len, "argv", &argv, 256, 4096);
    if (argc <= 0) {
        mj_free_strv(argv);
        return reply_error(id, idlen, "argv must be a non-empty array of strings");
    }
    if (mj_find(line, len, "timeout_ms", NULL) &&
        (mj_get_i64(line, len, "timeout_ms", &timeout_ms) < 0 || timeout_ms < 0)) {
        mj_free_strv(argv);
        return reply_error(id, idlen, "bad timeout_ms");
    }
    struct job *j = calloc(1, sizeof *j);
    if (!j || pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 || pipe2(px, O_CLOEXEC) < 0)
        goto fail;
    j->pid = fork();
    if (j->pid < 0)
        goto fail;
    if (j->pid == 0) {
        int e, fd = open("/dev/null", O_RDONLY);
        setsid(); /* own process group: a timeout kills the whole tree */
        if (fd >= 0)
            dup2(fd, 0);
        dup2(po[1], 1);
        dup2(pe[1], 2);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], argv);
        e = errno;
        /* px is close-on-exec: the parent reads EOF on success, errno on failure */
        if (write(px[1], &e, sizeof e) < 0)
            _exit(127);
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    close(px[1]);
    po[1] = pe[1] = px[1] = -1;
    int e = 0;
    ssize_t n;
    while ((n = read(px[0], &e, sizeof e)) < 0 && errno == EINTR)
        ;
    close(px[0]);
    px[0] = -1;
    if (n == (ssize_t)sizeof e) {
        char msg[300];
        snprintf(msg, sizeof msg, "exec %s: %s", argv[0], strerror(e));
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        close(po[0]);
        close(pe[0]);
        free(j);
        mj_free_strv(argv);
        return reply_error(id, idlen, msg);
    }
    j->fd[0] = po[0];
    j->fd[1] = pe[0];
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    j->id = malloc(idlen + 1);
    if (j->id)
        memcpy(j->id, id, idlen);
    j->idlen = j->id ? idlen : 0;
    j->deadline = timeout_ms ? now_ms() + (uint64_t)timeout_ms : 0;
    j->next = jobs;
    jobs = j;
    mj_free_strv(argv);
    return 0;
fail:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
        if (px[i] >= 0)
            close(px[i]);
    }
    free(j);
    mj_free_strv(argv);
    reply_error(id, idlen, "cannot start process");
    return 0;
}

static void job_read(struct job *j, int k)
{
    char buf[8192];
    for (;;) {
        ssize_t n = read(j->fd[k], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            close(j->fd[k]);
            j->fd[k] = -1;
            return;
        }
        /* keep draining past the limit so the child never blocks on a full pipe */
        size_t room = j->out[k].len < EXEC_OUT_MAX ? EXEC_OUT_MAX - j->out[k].len : 0;
        if ((size_t)n > room)
            j->trunc = 1;
        sb_add(&j->out[k], buf, (size_t)n < room ? (size_t)n : room);
    }
}

/* Reaps finished jobs and sends their replies; kills jobs past their deadline. */
static void jobs_service(void)
{
    struct job **pp = &jobs;
    uint64_t now = now_ms();
    while (*pp) {
        struct job *j = *pp;
        if (!j->exited && j->deadline && now >= j->deadline && !j->timed_out) {
            kill(-j->pid, SIGKILL);
            kill(j->pid, SIGKILL);
            j->timed_out = 1;
        }
        if (!j->exited && waitpid(j->pid, &j->status, WNOHANG) == j->pid)
            j->exited = 1;
        /* after a kill, grandchildren may hold the pipes: stop waiting for them */
        if (j->exited && j->timed_out)
            for (int k = 0; k < 2; k++)
                if (j->fd[k] >= 0) {
                    job_read(j, k);
                    if (j->fd[k] >= 0) {
                        close(j->fd[k]);
                        j->fd[k] = -1;
                    }
                }
        if (!j->exited || j->fd[0] >= 0 || j->fd[1] >= 0) {
            pp = &j->next;
            continue;
        }
        struct sb m = { 0 };
        int code = WIFEXITED(j->status) ? WEXITSTATUS(j->status) : 128 + WTERMSIG(j->status);
        reply_begin(&m, j->id, j->idlen, 1);
        sb_printf(&m, ",\"exit\":%d", code);
        if (WIFSIGNALED(j->status))
            sb_printf(&m, ",\"signal\":%d", WTERMSIG(j->status));
        if (j->timed_out)
            sb_puts(&m, ",\"timed_out\":true");
        if (j->trunc)
            sb_puts(&m, ",\"truncated\":true");
        sb_puts(&m, ",\"stdout\":");
        sb_json_str(&m, j->out[0].p ? j->out[0].p : "", j->out[0].len);
        sb_puts(&m, ",\"stderr\":");
        sb_json_str(&m, j->out[1].p ? j->out[1].p : "", j->out[1].len);
        reply_end(&m);
        *pp = j->next;
        sb_free(&j->out[0]);
        sb_free(&j->out[1]);
        free(j->id);
        free(j);
    }
}

/* ================= relay clients (unix socket) ================= */

struct client {
    struct client *next;
    int fd;
    int waiting;      /* call forwarded, waiting for the host's answer */
    long long id;     /* relay id given to the host */
    struct sb in;
};

static struct client *clients;
static long long next_call_id = 1;

static int client_free(struct client **pp)
{
    struct client *c = *pp;
    *pp = c->next;
    close(c->fd);
    sb_free(&c->in);
    free(c);
    return 0;
}

/* Final answer to a client: blocking write with a timeout, then close. */
static int client_answer(struct client **pp, const char *s, size_t n)
{
    struct client *c = *pp;
    struct timeval tv = { 2, 0 };
    int fl = fcntl(c->fd, F_GETFL);
    fcntl(c->fd, F_SETFL, fl & ~O_NONBLOCK);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    while (n) {
        ssize_t w = send(c->fd, s, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        s += w;
        n -= (size_t)w;
    }
    client_free(pp);
    return 0;
}

static int client_error(struct client **pp, const char *err)
{
    struct sb m = { 0 };
    sb_puts(&m, "{\"error\":");
    sb_json_str(&m, err, strlen(err));
    sb_puts(&m, "}\n");
    client_answer(pp, m.p ? m.p : "", m.len);
    sb_free(&m);
    return 0;
}

/* Validates a client's call line and forwards it with a fresh relay id. */
static int client_line(struct client **pp, const char *line, size_t len)
{
    struct client *c = *pp;
    const char *ve, *v;
    if (!mj_valid_object(line, len))
        return client_error(pp, "malformed JSON: want one object with a \"call\" string");
    v = mj_find(line, len, "call", &ve);
    if (!v || *v != '"')
        return client_error(pp, "missing \"call\" string");
    if (mj_find(line, len, "id", NULL))
        return client_error(pp, "\"id\" is reserved for the relay");
    if (port_out.len > PORT_OUT_MAX)
        return client_error(pp, "host link backlog full");
    const char *p = mj_ws(line, line + len); /* at '{' */
    const char *e = line + len;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        e--;
    c->id = next_call_id++;
    c->waiting = 1;
    struct sb m = { 0 };
    sb_printf(&m, "{\"id\":%lld,", c->id);
    sb_add(&m, p + 1, (size_t)(e - p - 1));
    sb_puts(&m, "\n");
    port_queue(m.p, m.len);
    logmsg("call id=%lld forwarded (%zu bytes)", c->id, m.len);
    sb_free(&m);
    sb_free(&c->in);
    return 0;
}

static int client_read(struct client **pp)
{
    struct client *c = *pp;
    char buf[4096];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0) {
            /* EOF without newline: accept what was sent as the line */
            if (n == 0 && c->in.len)
                return client_line(pp, c->in.p, c->in.len);
            return client_free(pp);
        }
        sb_add(&c->in, buf, (size_t)n);
        char *nl = c->in.p ? memchr(c->in.p, '\n', c->in.len) : NULL;
        if (nl)
            return client_line(pp, c->in.p, (size_t)(nl - c->in.p));
        if (c->in.len > CLIENT_LINE_MAX || c->in.oom)
            return client_error(pp, "request too long");
    }
    return 0;
}

/* ================= host messages ================= */

static int host_line(const char *line, size_t len)
{
    const char *idv, *ide, *cmdv;
    char cmd[64];
    if (len == 0)
        return 0;
    if (!mj_valid_object(line, len))
        return reply_error(NULL, 0, "malformed JSON");
    idv = mj_find(line, len, "id", &ide);
    cmdv = mj_find(line, len, "cmd", NULL);
    if (cmdv) {
        if (!idv)
            return reply_error(NULL, 0, "missing id");
        if (mj_get_str(line, len, "cmd", cmd, sizeof cmd) < 0)
            return reply_error(idv, (size_t)(ide - idv), "cmd must be a string");
        if (!strcmp(cmd, "ping"))
            return cmd_ping(idv, (size_t)(ide - idv));
        if (!strcmp(cmd, "set-identity"))
            return cmd_set_identity(line, len, idv, (size_t)(ide - idv));
        if (!strcmp(cmd, "exec"))
            return cmd_exec(line, len, idv, (size_t)(ide - idv));
        return reply_error(idv, (size_t)(ide - idv), "unknown cmd");
    }
    if (mj_find(line, len, "result", NULL) || mj_find(line, len, "error", NULL)) {
        long long id;
        if (!idv || mj_parse_i64(idv, ide, &id) < 0) {
            logmsg("answer without a numeric id ignored");
            return 0;
        }
        for (struct client **pp = &clients; *pp; pp = &(*pp)->next) {
            if ((*pp)->waiting && (*pp)->id == id) {
                logmsg("call id=%lld answered", id);
                struct sb m = { 0 };
                sb_add(&m, line, len);
                sb_puts(&m, "\n");
                client_answer(pp, m.p ? m.p : "", m.len);
                sb_free(&m);
                return 0;
            }
        }
        logmsg("answer for unknown or abandoned call id=%lld ignored", id);
        return 0;
    }
    if (mj_find(line, len, "event", NULL))
        return 0; /* host events carry nothing for us yet */
    reply_error(idv, idv ? (size_t)(ide - idv) : 0, "want \"cmd\", or \"result\"/\"error\" for a call");
    return 0;
}

static void port_read(void)
{
    static char buf[65536];
    for (;;) {
        ssize_t n = read(port_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n == 0) {
            /* The host side of the chardev went away (or never came).  Pending
             * calls stay pending: a host that reconnects answers them. */
            host_disconnected();
            return;
        }
        if (n < 0) {
            port_close(strerror(errno));
            return;
        }
        const char *p = buf, *e = buf + n;
        while (p < e) {
            const char *nl = memchr(p, '\n', (size_t)(e - p));
            size_t take = nl ? (size_t)(nl - p) : (size_t)(e - p);
            if (!port_in_discard)
                sb_add(&port_in, p, take);
            if (port_in.len > HOST_LINE_MAX || port_in.oom) {
                if (!port_in_discard)
                    reply_error(NULL, 0, "line too long");
                port_in_discard = 1;
                sb_free(&port_in);
            }
            if (nl) {
                if (!port_in_discard && port_in.len) {
                    size_t l = port_in.len;
                    if (port_in.p[l - 1] == '\r')
                        l--;
                    host_line(port_in.p, l);
                }
                port_in.len = 0;
                port_in_discard = 0;
                p = nl + 1;
            } else {
                p = e;
            }
        }
    }
}

/* ================= main loop ================= */

static int listen_unix(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || strlen(sock_path) >= sizeof sa.sun_path)
        return -1;
    strcpy(sa.sun_path, sock_path);
    unlink(sock_path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
        close(fd);
        return -1;
    }
    chmod(sock_path, 0666);
    return fd;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port-name") && i + 1 < argc)
            port_name = argv[++i];
        else if (!strcmp(argv[i], "--socket") && i + 1 < argc)
            sock_path = argv[++i];
        else if (!strcmp(argv[i], "--iface") && i + 1 < argc)
            iface = argv[++i];
        else {
            fprintf(stderr, "usage: agent [--port-name NAME] [--socket PATH] [--iface IF]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    setenv("PATH", "/bin:/sbin:/usr/bin:/usr/sbin", 0);
    setvbuf(stderr, NULL, _IOLBF, 0);

    int lfd = listen_unix();
    if (lfd < 0) {
        logmsg("cannot listen on %s: %s", sock_path, strerror(errno));
        return 1;
    }
    logmsg("started pid=%d socket=%s port=%s", (int)getpid(), sock_path, port_name);
    port_maintain();

    struct pollfd *pfd = NULL;
    size_t cap = 0;
    for (;;) {
        if (!host_connected && now_ms() >= port_retry_at)
            port_maintain();
        port_flush();
        jobs_service();

        size_t n = 0, need = 2;
        for (struct client *c = clients; c; c = c->next)
            need++;
        for (struct job *j = jobs; j; j = j->next)
            need += 2;
        if (need > cap) {
            cap = need * 2;
            pfd = realloc(pfd, cap * sizeof *pfd);
            if (!pfd) {
                logmsg("out of memory");
                return 1;
            }
        }
        int timeout = -1;
        pfd[n++] = (struct pollfd){ .fd = lfd, .events = POLLIN };
        if (port_fd >= 0 && host_connected)
            pfd[n++] = (struct pollfd){ .fd = port_fd,
                                        .events = (short)(POLLIN | (port_out.len ? POLLOUT : 0)) };
        else
            pfd[n++] = (struct pollfd){ .fd = -1 };
        if (!host_connected) {
            uint64_t now = now_ms();
            timeout = port_retry_at > now ? (int)(port_retry_at - now) : 0;
        }
        for (struct client *c = clients; c; c = c->next)
            /* a waiting client is only watched for hangup (events 0) */
            pfd[n++] = (struct pollfd){ .fd = c->fd, .events = c->waiting ? 0 : POLLIN };
        for (struct job *j = jobs; j; j = j->next) {
            pfd[n++] = (struct pollfd){ .fd = j->fd[0], .events = POLLIN };
            pfd[n++] = (struct pollfd){ .fd = j->fd[1], .events = POLLIN };
            /* exit is noticed by polling waitpid once the pipes are closed,
             * the deadline by the poll timeout */
            int t = (j->fd[0] < 0 && j->fd[1] < 0) || j->timed_out ? 50 : -1;
            if (j->deadline && !j->timed_out) {
                uint64_t now = now_ms();
                int d = j->deadline > now ? (int)(j->deadline - now) : 0;
                if (t < 0 || d < t)
                    t = d;
            }
            if (t >= 0 && (timeout < 0 || t < timeout))
                timeout = t;
        }

        if (poll(pfd, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            logmsg("poll: %s", strerror(errno));
            sleep(1);
            continue;
        }

        size_t k = 0;
        short lre = pfd[k++].revents;
        short pre = pfd[k++].revents;
        /* clients and jobs first: their pollfd slots match the lists as they
         * were before this iteration changes them */
        for (struct client **pp = &clients; *pp;) {
            struct client *c = *pp;
            short re = pfd[k++].revents;
            if (c->waiting && (re & (POLLHUP | POLLERR | POLLNVAL))) {
                logmsg("caller of id=%lld went away", c->id);
                client_free(pp);
                continue;
            }
            if (!c->waiting && re) {
                client_read(pp);
                if (*pp != c) /* freed */
                    continue;
            }
            pp = &(*pp)->next;
        }
        for (struct job *j = jobs; j; j = j->next) {
            for (int q = 0; q < 2; q++) {
                short re = pfd[k++].revents;
                if (re && j->fd[q] >= 0)
                    job_read(j, q);
            }
        }
        if (pre & (POLLIN | POLLHUP | POLLERR))
            port_read();
        if (pre & POLLNVAL)
            port_close("invalid");
        if (lre & POLLIN) {
            for (;;) {
                int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                    break;
                struct client *c = calloc(1, sizeof *c);
                if (!c) {
                    close(fd);
                    break;
                }
                c->fd = fd;
                c->next = clients;
                clients = c;
            }
        }
    }
}
