/* unit.h - a minimal test harness for the unit tests (automake TESTS protocol: exit 0 = pass,
 * 77 = skip, anything else = fail). */
#ifndef IPFSFS_UNIT_H
#define IPFSFS_UNIT_H

#include "cid.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int unit_failures;
static int unit_checks;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        unit_checks++;                                                                         \
        if (!(cond)) {                                                                         \
            unit_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
        }                                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                     \
    do {                                                                                       \
        long long a_ = (long long)(a), b_ = (long long)(b);                                    \
        unit_checks++;                                                                         \
        if (a_ != b_) {                                                                        \
            unit_failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, a_,  \
                    b_);                                                                       \
        }                                                                                      \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                     \
    do {                                                                                       \
        const char *a_ = (a), *b_ = (b);                                                       \
        unit_checks++;                                                                         \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                                 \
            unit_failures++;                                                                   \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,  \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                   \
        }                                                                                      \
    } while (0)

/* The number after "NAME " in a statistics text (user.ipfsfs.stats' form: one "NAME VALUE"
 * per line), or ULLONG_MAX when NAME is not there. */
static inline unsigned long long unit_stat(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *at = text; (at = strstr(at, name)); at += n)
        if ((at == text || at[-1] == '\n') && at[n] == ' ')
            return strtoull(at + n + 1, NULL, 10);
    return ~0ull;
}

/* Remove path and everything under it (test scratch directories). */
static inline void unit_rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[4096];
            int n = snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            if (n > 0 && (size_t)n < sizeof p)
                unit_rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* Distinct CIDs for tests: identity multihashes of small numbers are valid v1 CIDs. */
static inline struct cid unit_cid(unsigned i)
{
    struct cid c;
    char s[64];
    memset(&c, 0, sizeof c);
    c.version = 1;
    c.codec = CID_CODEC_DAG_PB;
    c.mh_code = 0;
    int n = snprintf(s, sizeof s, "%u", i);
    c.mh[0] = 0;
    c.mh[1] = (uint8_t)n;
    memcpy(c.mh + 2, s, (size_t)n);
    c.mh_len = 2 + (size_t)n;
    return c;
}

static inline int unit_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}

/* Read a fixture file into a NUL-terminated malloc'd buffer; aborts the test on failure. */
static inline char *unit_read_fixture(const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", FIXTURES, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open fixture %s\n", path);
        exit(99);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "cannot read fixture %s\n", path);
        exit(99);
    }
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = (size_t)n;
    return buf;
}

#endif
