/*
 * minijson.h - just enough JSON for the Doppel agent protocol.
 *
 * The messages exchanged between host and guest are flat objects with string,
 * number, boolean, null or array values, one object per line.  This header
 * validates such a line, finds the value of a top-level key, decodes strings
 * and integers, and builds output with a small growable string buffer.
 *
 * Everything works on (pointer, length) ranges because lines come straight out
 * of read buffers; nothing here relies on NUL termination of the input.  Every
 * function is "static inline" so that programs that use only part of the
 * header do not trip -Wunused-function under -Werror.
 */
#ifndef DOPPEL_MINIJSON_H
#define DOPPEL_MINIJSON_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MJ_MAX_DEPTH 32

static inline const char *mj_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* p points at the opening quote; returns the position after the closing quote. */
static inline const char *mj_skip_string(const char *p, const char *e)
{
    p++;
    while (p < e) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p + 1;
        if (c == '\\') {
            p += 2;
            continue;
        }
        if (c < 0x20)
            return NULL;
        p++;
    }
    return NULL;
}

static inline const char *mj_skip_value(const char *p, const char *e, int depth);

/* Skips '{...}' or '[...]' starting at p (which holds open). */
static inline const char *mj_skip_container(const char *p, const char *e, int depth)
{
    char close = (*p == '{') ? '}' : ']';
    int is_obj = (*p == '{');
    if (depth > MJ_MAX_DEPTH)
        return NULL;
    p = mj_ws(p + 1, e);
    if (p < e && *p == close)
        return p + 1;
    for (;;) {
        if (is_obj) {
            if (p >= e || *p != '"')
                return NULL;
            p = mj_skip_string(p, e);
            if (!p)
                return NULL;
            p = mj_ws(p, e);
            if (p >= e || *p != ':')
                return NULL;
            p = mj_ws(p + 1, e);
        }
        p = mj_skip_value(p, e, depth + 1);
        if (!p)
            return NULL;
        p = mj_ws(p, e);
        if (p >= e)
            return NULL;
        if (*p == close)
            return p + 1;
        if (*p != ',')
            return NULL;
        p = mj_ws(p + 1, e);
    }
}

static inline const char *mj_skip_value(const char *p, const char *e, int depth)
{
    if (p >= e)
        return NULL;
    switch (*p) {
    case '"':
        return mj_skip_string(p, e);
    case '{':
    case '[':
        return mj_skip_container(p, e, depth);
    case 't':
        return (e - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;
    case 'f':
        return (e - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;
    case 'n':
        return (e - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;
    default:
        if (*p == '-' || (*p >= '0' && *p <= '9')) {
            const char *s = p;
            p++;
            while (p < e && ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' ||
                             *p == 'E' || *p == '+' || *p == '-'))
                p++;
            /* a lone '-' is not a number */
            return (p - s == 1 && *s == '-') ? NULL : p;
        }
        return NULL;
    }
}

/* 1 if [s, s+len) is exactly one JSON object (plus surrounding whitespace). */
static inline int mj_valid_object(const char *s, size_t len)
{
    const char *e = s + len;
    const char *p = mj_ws(s, e);
    if (p >= e || *p != '{')
        return 0;
    p = mj_skip_container(p, e, 0);
    if (!p)
        return 0;
    return mj_ws(p, e) == e;
}

/*
 * Finds top-level key in the object [s, s+len).  Returns the start of its value
 * and stores the end in *vend, or NULL if absent or the object is malformed.
 * Keys are compared byte-wise without unescaping (protocol keys are plain ASCII).
 */
static inline const char *mj_find(const char *s, size_t len, const char *key, const char **vend)
{
    const char *e = s + len;
    size_t klen = strlen(key);
    const char *p = mj_ws(s, e);
    if (p >= e || *p != '{')
        return NULL;
    p = mj_ws(p + 1, e);
    if (p < e && *p == '}')
        return NULL;
    for (;;) {
        const char *ks, *ke, *vs, *ve;
        if (p >= e || *p != '"')
            return NULL;
        ks = p + 1;
        p = mj_skip_string(p, e);
        if (!p)
            return NULL;
        ke = p - 1;
        p = mj_ws(p, e);
        if (p >= e || *p != ':')
            return NULL;
        vs = mj_ws(p + 1, e);
        ve = mj_skip_value(vs, e, 1);
        if (!ve)
            return NULL;
        if ((size_t)(ke - ks) == klen && memcmp(ks, key, klen) == 0) {
            if (vend)
                *vend = ve;
            return vs;
        }
        p = mj_ws(ve, e);
        if (p >= e || *p != ',')
            return NULL;
        p = mj_ws(p + 1, e);
    }
}

static inline void mj_put_utf8(char *out, size_t *o, uint32_t cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xE0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*o)++] = (char)(0xF0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static inline int mj_hex4(const char *p, const char *e, uint32_t *v)
{
    uint32_t x = 0;
    int i;
    if (e - p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        char c = p[i];
        x <<= 4;
        if (c >= '0' && c <= '9')
            x |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            x |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *v = x;
    return 0;
}

/*
 * Decodes the JSON string value [vs, ve) (vs at the quote) into out as a NUL
 * terminated string.  Returns its length, or -1 if not a string, too long, or
 * containing \u0000 (callers pass results to C string APIs).
 */
static inline long mj_unescape(const char *vs, const char *ve, char *out, size_t outsz)
{
    size_t o = 0;
    const char *p;
    if (vs >= ve || *vs != '"' || ve - vs < 2 || ve[-1] != '"' || outsz == 0)
        return -1;
    p = vs + 1;
    ve--;
    while (p < ve) {
        if (o + 5 > outsz)
            return -1;
        if (*p != '\\') {
            out[o++] = *p++;
            continue;
        }
        p++;
        if (p >= ve)
            return -1;
        switch (*p) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            uint32_t cp, lo;
            if (mj_hex4(p + 1, ve, &cp) < 0)
                return -1;
            p += 4;
            if (cp >= 0xD800 && cp < 0xDC00) {
                /* surrogate pair: must be followed by \uDC00..\uDFFF */
                if (ve - p < 7 || p[1] != '\\' || p[2] != 'u' || mj_hex4(p + 3, ve, &lo) < 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
            if (cp == 0)
                return -1;
            mj_put_utf8(out, &o, cp);
            break;
        }
        default:
            return -1;
        }
        p++;
    }
    out[o] = 0;
    return (long)o;
}

/* String value of key into out; returns length or -1 (absent / not a string / too long). */
static inline long mj_get_str(const char *s, size_t len, const char *key, char *out, size_t outsz)
{
    const char *ve, *vs = mj_find(s, len, key, &ve);
    if (!vs)
        return -1;
    return mj_unescape(vs, ve, out, outsz);
}

/* Parses an integer token [vs, ve); 0 on success. */
static inline int mj_parse_i64(const char *vs, const char *ve, long long *out)
{
    char tmp[32];
    char *end;
    size_t n = (size_t)(ve - vs);
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, vs, n);
    tmp[n] = 0;
    if (!(tmp[0] == '-' || (tmp[0] >= '0' && tmp[0] <= '9')))
        return -1;
    errno = 0;
    *out = strtoll(tmp, &end, 10);
    if (errno || *end)
        return -1;
    return 0;
}

/* Integer value of key; 0 on success, -1 if absent or not an integer. */
static inline int mj_get_i64(const char *s, size_t len, const char *key, long long *out)
{
    const char *ve, *vs = mj_find(s, len, key, &ve);
    if (!vs)
        return -1;
    return mj_parse_i64(vs, ve, out);
}

/*
 * Array of strings under key -> malloc'd NULL-terminated vector (each element
 * malloc'd too; free with mj_free_strv).  Returns element count or -1.
 */
static inline void mj_free_strv(char **v)
{
    char **p;
    if (!v)
        return;
    for (p = v; *p; p++)
        free(*p);
    free(v);
}

static inline long mj_get_str_array(const char *s, size_t len, const char *key, char ***out,
                                    size_t max_elems, size_t max_len)
{
    const char *ve, *vs = mj_find(s, len, key, &ve);
    const char *p;
    char **v;
    size_t n = 0;
    if (!vs || *vs != '[')
        return -1;
    v = calloc(max_elems + 1, sizeof *v);
    if (!v)
        return -1;
    p = mj_ws(vs + 1, ve);
    if (p < ve && *p == ']') {
        *out = v;
        return 0;
    }
    for (;;) {
        const char *es = p, *ee = (p < ve && *p == '"') ? mj_skip_string(p, ve) : NULL;
        char *buf;
        if (!ee || n >= max_elems)
            goto fail;
        buf = malloc(max_len + 1);
        if (!buf || mj_unescape(es, ee, buf, max_len + 1) < 0) {
            free(buf);
            goto fail;
        }
        v[n++] = buf;
        p = mj_ws(ee, ve);
        if (p < ve && *p == ']')
            break;
        if (p >= ve || *p != ',')
            goto fail;
        p = mj_ws(p + 1, ve);
    }
    *out = v;
    return (long)n;
fail:
    mj_free_strv(v);
    return -1;
}

/* ---- output: growable string buffer ---- */

struct sb {
    char *p;
    size_t len, cap;
    int oom; /* sticky: once an allocation failed the buffer content is unusable */
};

static inline int sb_reserve(struct sb *b, size_t extra)
{
    size_t need = b->len + extra + 1, cap;
    char *np;
    if (b->oom || extra > ((size_t)-1) / 4) {
        b->oom = 1;
        return -1;
    }
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    np = realloc(b->p, cap);
    if (!np) {
        b->oom = 1;
        return -1;
    }
    b->p = np;
    b->cap = cap;
    return 0;
}

static inline void sb_add(struct sb *b, const void *d, size_t n)
{
    if (sb_reserve(b, n) < 0 || !b->p)
        return;
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
}

static inline void sb_puts(struct sb *b, const char *s) { sb_add(b, s, strlen(s)); }

static inline void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void sb_printf(struct sb *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    char tmp[256];
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof tmp) {
        sb_add(b, tmp, (size_t)n);
        return;
    }
    if (sb_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/*
 * Appends d as a quoted JSON string.  Control characters are escaped; other
 * bytes (including non-ASCII) are passed through unchanged, so valid UTF-8 in
 * stays valid UTF-8 out.
 */
static inline void sb_json_str(struct sb *b, const char *d, size_t n)
{
    size_t i;
    sb_add(b, "\"", 1);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        switch (c) {
        case '"': sb_add(b, "\\\"", 2); break;
        case '\\': sb_add(b, "\\\\", 2); break;
        case '\n': sb_add(b, "\\n", 2); break;
        case '\r': sb_add(b, "\\r", 2); break;
        case '\t': sb_add(b, "\\t", 2); break;
        default:
            if (c < 0x20 || c == 0x7f)
                sb_printf(b, "\\u%04x", c);
            else
                sb_add(b, &d[i], 1);
        }
    }
    sb_add(b, "\"", 1);
}

static inline void sb_free(struct sb *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

#endif
