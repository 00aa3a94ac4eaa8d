/*
 * dirtier - self-verifying memory writer; the test oracle for memory
 * replication (live migration, COLO checkpoints) and VM fork.
 *
 * It owns N MiB of memory.  Every page p has a version v[p] (in a separate
 * array of the same process) and the page content is a pure function of
 * (p, v[p]).  Before a page is rewritten its whole content is checked against
 * that function, so any page that was lost, duplicated from another time, or
 * damaged while the VM was copied shows up as a CORRUPT line.  Because the
 * version array and the data pages live in different guest pages, restoring
 * one without the other is detected as well.
 *
 * Console contract (parsed by tests, keep exactly):
 *   dirtier start mb=<N> rate=<R> pages=<count>
 *   dirtier t=<s> writes=<w> passes=<p> rate=<pages last second> corrupt=<c>
 *   CORRUPT page=<p> version=<v> word=<i> expected=<hex> got=<hex>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE_SIZE 4096
#define WORDS (PAGE_SIZE / 8)
#define CORRUPT_LINES_PER_SEC 20

static uint8_t *mem;
static uint64_t *ver;
static uint64_t pages;
static uint64_t corrupt_total;
static unsigned corrupt_lines; /* printed in the current one-second window */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64 finaliser: every input bit affects every output bit */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* Per-(page, version) seed; word i of the page is seed ^ (i * K). Mixing the
 * seed fully and deriving the words cheaply keeps the cost low under TCG while
 * still detecting a stale version (all words differ), a page from another
 * index, a zeroed page, shifted words and any single flipped bit. */
static inline uint64_t page_seed(uint64_t p, uint64_t v)
{
    return mix64(mix64(p + 0x9e3779b97f4a7c15ULL) ^ (v * 0xd6e8feb86659fd93ULL));
}

static inline uint64_t word_of(uint64_t seed, uint64_t i)
{
    return seed ^ (i * 0xa0761d6478bd642fULL + 0xe7037ed1a0b428dbULL);
}

static void fill_page(uint64_t p, uint64_t v)
{
    uint64_t *w = (uint64_t *)(mem + p * PAGE_SIZE);
    uint64_t s = page_seed(p, v);
    for (uint64_t i = 0; i < WORDS; i++)
        w[i] = word_of(s, i);
}

/* Checks page p against its recorded version; reports and counts a mismatch.
 * Returns 0 if intact. */
static int check_page(uint64_t p)
{
    const uint64_t *w = (const uint64_t *)(mem + p * PAGE_SIZE);
    uint64_t v = ver[p];
    uint64_t s = page_seed(p, v);
    for (uint64_t i = 0; i < WORDS; i++) {
        uint64_t exp = word_of(s, i);
        if (w[i] != exp) {
            corrupt_total++;
            if (corrupt_lines < CORRUPT_LINES_PER_SEC) {
                corrupt_lines++;
                printf("CORRUPT page=%" PRIu64 " version=%" PRIu64 " word=%" PRIu64
                       " expected=%016" PRIx64 " got=%016" PRIx64 "\n",
                       p, v, i, exp, w[i]);
                fflush(stdout);
            }
            return -1;
        }
    }
    return 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = { (time_t)(ns / 1000000000ULL), (long)(ns % 1000000000ULL) };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static void verify_all(void)
{
    for (uint64_t p = 0; p < pages; p++)
        if (check_page(p) < 0)
            fill_page(p, ver[p]); /* repair so one damage is counted once */
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = x;
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: dirtier [--mb N] [--rate PAGES_PER_SEC] [--verify-every PASSES] "
                    "[--seconds S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t mb = 16, rate = 20000, verify_every = 1, seconds = 0;
    int64_t inject_at = -1; /* hidden self-test: --inject-corruption-at SECONDS */

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = NULL;
        char name[64];
        const char *eq = strchr(a, '=');
        if (strncmp(a, "--", 2) != 0)
            usage();
        if (eq) {
            size_t n = (size_t)(eq - a);
            if (n >= sizeof name)
                usage();
            memcpy(name, a, n);
            name[n] = 0;
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", a);
            if (i + 1 >= argc)
                usage();
            val = argv[++i];
        }
        uint64_t x;
        if (parse_u64(val, &x) < 0)
            usage();
        if (!strcmp(name, "--mb"))
            mb = x;
        else if (!strcmp(name, "--rate"))
            rate = x;
        else if (!strcmp(name, "--verify-every"))
            verify_every = x;
        else if (!strcmp(name, "--seconds"))
            seconds = x;
        else if (!strcmp(name, "--inject-corruption-at"))
            inject_at = (int64_t)x;
        else
            usage();
    }
    if (mb == 0 || mb > (1ULL << 20))
        usage();

    pages = mb * 256;
    mem = mmap(NULL, pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    ver = mmap(NULL, pages * sizeof *ver, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED || ver == MAP_FAILED) {
        perror("dirtier: mmap");
        return 1;
    }
    for (uint64_t p = 0; p < pages; p++) {
        ver[p] = 0;
        fill_page(p, 0);
    }

    printf("dirtier start mb=%" PRIu64 " rate=%" PRIu64 " pages=%" PRIu64 "\n", mb, rate, pages);
    fflush(stdout);

    const uint64_t SEC = 1000000000ULL;
    uint64_t start = now_ns(), last = start, next_report = start + SEC;
    uint64_t writes = 0, passes = 0, writes_at_report = 0, p = 0;
    /* Token bucket in pages.  The cap bounds the backlog to 1/10 s of work: after
     * a VM pause or snapshot restore CLOCK_MONOTONIC can jump by seconds, and
     * catching up would produce a burst that no real workload has. */
    double credit = 0, cap = rate ? (double)rate / 10.0 : 0;
    /* Sleep until ~2 ms worth of pages are due: fewer, larger batches keep the
     * wakeup overhead (expensive under TCG) small without visible burstiness. */
    double min_batch = rate ? (double)rate / 500.0 : 0;
    if (cap < 1)
        cap = 1;
    if (min_batch < 1)
        min_batch = 1;
    if (min_batch > cap)
        min_batch = cap;
    int injected = 0;
    srand((unsigned)(start ^ (uint64_t)getpid()));

    for (;;) {
        uint64_t now = now_ns();
        if (seconds && now - start >= seconds * SEC)
            break; /* the final report below covers the last second */
        if (now >= next_report) {
            printf("dirtier t=%" PRIu64 " writes=%" PRIu64 " passes=%" PRIu64 " rate=%" PRIu64
                   " corrupt=%" PRIu64 "\n",
                   (now - start) / SEC, writes, passes, writes - writes_at_report, corrupt_total);
            fflush(stdout);
            writes_at_report = writes;
            corrupt_lines = 0;
            next_report += SEC;
            if (next_report <= now) /* time jumped: report once, not once per lost second */
                next_report = now + SEC;
        }
        if (inject_at >= 0 && !injected && now - start >= (uint64_t)inject_at * SEC) {
            uint64_t ip = (uint64_t)rand() % pages, ib = (uint64_t)rand() % PAGE_SIZE;
            mem[ip * PAGE_SIZE + ib] ^= 0x5a;
            injected = 1;
            fprintf(stderr, "dirtier: injected corruption page=%" PRIu64 " byte=%" PRIu64 "\n", ip, ib);
        }

        uint64_t batch;
        if (rate == 0) {
            batch = 1024;
        } else {
            credit += (double)(now - last) * (double)rate / (double)SEC;
            last = now;
            if (credit > cap)
                credit = cap;
            if (credit < min_batch) {
                uint64_t need = (uint64_t)((min_batch - credit) * (double)SEC / (double)rate) + 1;
                uint64_t to_report = next_report > now ? next_report - now : 0;
                if (need > to_report)
                    need = to_report;
                if (need > 10000000ULL) /* small chunks: stay responsive */
                    need = 10000000ULL;
                if (need)
                    sleep_ns(need);
                continue;
            }
            batch = (uint64_t)credit;
            if (batch > 4096)
                batch = 4096;
            credit -= (double)batch;
        }

        for (uint64_t k = 0; k < batch; k++) {
            check_page(p); /* rewritten below anyway, so a bad page is counted once */
            ver[p]++;
            fill_page(p, ver[p]);
            writes++;
            if (++p == pages) {
                p = 0;
                passes++;
                if (verify_every && passes % verify_every == 0)
                    verify_all();
            }
        }
    }

    uint64_t now = now_ns();
    printf("dirtier t=%" PRIu64 " writes=%" PRIu64 " passes=%" PRIu64 " rate=%" PRIu64
           " corrupt=%" PRIu64 "\n",
           (now - start) / SEC, writes, passes, writes - writes_at_report, corrupt_total);
    fflush(stdout);
    return corrupt_total ? 1 : 0;
}
