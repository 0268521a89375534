/* fuzz_ndjson.c - the NDJSON splitter for streamed replies, fed in random pieces.
 *
 * Input: byte 0 picks max_line (1..256, or the 4 MiB default), byte 1 seeds the split points,
 * the rest is the stream. Properties: whatever the split, the lines delivered (and the final
 * status) equal those of a simple reference splitter: lines end at '\n', trailing '\r' and
 * spaces are dropped, empty lines are skipped, a line longer than max_line (before trimming)
 * fails with -EMSGSIZE; the unterminated last line comes from ndjson_finish. A callback error
 * stops the feed and is returned.
 */
#include "config.h"

#include "fuzz.h"
#include "rpcjson.h"

#include <errno.h>
#include <string.h>

#define MAX_LINES 4096

struct lines {
    size_t n;
    size_t off[MAX_LINES], len[MAX_LINES]; /* into a copy of all line bytes */
    char *bytes;
    size_t used, cap;
    size_t fail_at; /* return -ECANCELED at this line index (SIZE_MAX: never) */
};

static int collect(void *ud, const char *line, size_t len)
{
    struct lines *l = ud;
    FUZZ_CHECK(len > 0, "empty line delivered");
    FUZZ_CHECK(line[len - 1] != '\r' && line[len - 1] != ' ', "line not trimmed");
    FUZZ_CHECK(memchr(line, '\n', len) == NULL, "newline inside a line");
    if (l->n == l->fail_at)
        return -ECANCELED;
    if (l->n >= MAX_LINES)
        return 0;
    if (l->used + len > l->cap) {
        size_t cap = (l->used + len) * 2;
        char *p = realloc(l->bytes, cap);
        if (!p)
            abort();
        l->bytes = p;
        l->cap = cap;
    }
    memcpy(l->bytes + l->used, line, len);
    l->off[l->n] = l->used;
    l->len[l->n] = len;
    l->used += len;
    l->n++;
    return 0;
}

static int reference(const char *d, size_t n, size_t max_line, struct lines *l)
{
    size_t start = 0;
    while (start <= n) {
        const char *nl = memchr(d + start, '\n', n - start);
        size_t end = nl ? (size_t)(nl - d) : n;
        if (end - start > max_line)
            return -EMSGSIZE;
        size_t len = end - start;
        while (len > 0 && (d[start + len - 1] == '\r' || d[start + len - 1] == ' '))
            len--;
        if (len > 0) {
            int rc = collect(l, d + start, len);
            if (rc < 0)
                return rc;
        }
        if (!nl)
            break;
        start = end + 1;
    }
    return 0;
}

static int chunked(const char *d, size_t n, size_t max_line, uint32_t seed, struct lines *l)
{
    struct ndjson nd;
    ndjson_init(&nd, max_line);
    size_t pos = 0;
    int rc = 0;
    while (pos < n) {
        seed = seed * 1103515245u + 12345u;
        size_t take = 1 + (seed >> 16) % 64;
        if ((seed >> 8) % 8 == 0)
            take = n - pos; /* now and then the whole rest */
        if (take > n - pos)
            take = n - pos;
        /* An exact-size copy: ndjson_feed must not read past the piece. */
        char *piece = malloc(take);
        if (!piece)
            abort();
        memcpy(piece, d + pos, take);
        rc = ndjson_feed(&nd, piece, take, collect, l);
        free(piece);
        pos += take;
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = ndjson_finish(&nd, collect, l);
    ndjson_free(&nd);
    return rc;
}

static void compare(const struct lines *a, const struct lines *b, int ra, int rb)
{
    FUZZ_CHECK(ra == rb, "status %d in pieces, %d at once", ra, rb);
    FUZZ_CHECK(a->n == b->n, "%zu lines in pieces, %zu at once", a->n, b->n);
    for (size_t i = 0; i < a->n; i++)
        FUZZ_CHECK(a->len[i] == b->len[i] &&
                       memcmp(a->bytes + a->off[i], b->bytes + b->off[i], a->len[i]) == 0,
                   "line %zu differs", i);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t max_line = data[0] == 0 ? (4u << 20) : data[0];
    uint32_t seed = data[1];
    const char *d = (const char *)data + 2;
    size_t n = size - 2;

    for (int pass = 0; pass < 2; pass++) {
        struct lines a = {.fail_at = SIZE_MAX}, b = {.fail_at = SIZE_MAX};
        if (pass == 1) /* a callback that fails at line seed % 4 */
            a.fail_at = b.fail_at = seed % 4;
        int ra = chunked(d, n, max_line, seed, &a);
        int rb = reference(d, n, max_line, &b);
        compare(&a, &b, ra, rb);
        free(a.bytes);
        free(b.bytes);
    }
    return 0;
}
