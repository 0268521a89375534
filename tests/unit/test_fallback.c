/* test_fallback.c - node_fallback's rules, over two in-process nodes whose answers the test
 * sets: which errors of the primary fall back, that a listing or a stream that already gave
 * something does not, that names never fall back, and the stats. */
#include "config.h"

#include "node_fallback.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

struct fake {
    struct node base;
    int rc;           /* what content calls answer (0: success) */
    int partial;      /* list/stream: give this many entries/bytes before failing with rc */
    int calls;        /* content calls made */
    int mfs_calls;
    char tag;         /* the byte a read fills in */
};

static struct fake *F(struct node *n)
{
    return (struct fake *)n;
}

static int f_stat(struct node *n, const struct cid *c, struct node_stat *out)
{
    (void)c;
    F(n)->calls++;
    if (F(n)->rc == 0) {
        out->kind = NODE_FILE;
        out->size = (uint64_t)F(n)->tag;
    }
    return F(n)->rc;
}

static int f_list(struct node *n, const struct cid *c, node_entry_fn fn, void *ud)
{
    F(n)->calls++;
    for (int i = 0; i < F(n)->partial; i++) {
        struct node_entry e = {.name = "x", .name_len = 1, .cid = *c, .kind = NODE_FILE};
        int r = fn(ud, &e);
        if (r)
            return r;
    }
    return F(n)->rc;
}

static ssize_t f_read(struct node *n, const struct cid *c, uint64_t off, size_t len, char *buf)
{
    (void)c;
    (void)off;
    F(n)->calls++;
    if (F(n)->rc)
        return F(n)->rc;
    memset(buf, F(n)->tag, len);
    return (ssize_t)len;
}

static int f_stream(struct node *n, const struct cid *c, uint64_t off, uint64_t len,
                    int (*sink)(void *ud, const char *data, size_t len), void *ud)
{
    (void)c;
    (void)off;
    F(n)->calls++;
    char b[64];
    memset(b, F(n)->tag, sizeof b);
    if (F(n)->rc) {
        if (F(n)->partial)
            sink(ud, b, (size_t)F(n)->partial);
        return F(n)->rc;
    }
    return sink(ud, b, len < sizeof b ? (size_t)len : sizeof b);
}

static int f_mkdir(struct node *n, const char *path)
{
    (void)path;
    F(n)->mfs_calls++;
    return -ETIMEDOUT;
}

static int f_stats(struct node *n, char *buf, size_t len)
{
    return snprintf(buf, len, "fake_%c 1\n", F(n)->tag);
}

static void f_destroy(struct node *n)
{
    (void)n; /* static in the test */
}

static const struct node_ops fake_ops = {
    .stat = f_stat,
    .list = f_list,
    .read = f_read,
    .read_stream = f_stream,
    .mfs_mkdir = f_mkdir,
    .stats = f_stats,
    .destroy = f_destroy,
};

static int extra(void *ud, char *buf, size_t len)
{
    return snprintf(buf, len, "%s", (const char *)ud);
}

static int count(void *ud, const struct node_entry *e)
{
    (void)e;
    (*(int *)ud)++;
    return 0;
}

static size_t got_bytes;
static char got_tag;
static int sink(void *ud, const char *data, size_t len)
{
    (void)ud;
    got_bytes += len;
    if (len)
        got_tag = data[len - 1];
    return 0;
}

int main(void)
{
    struct fake p = {.base = {.ops = &fake_ops, .description = "primary"}, .tag = 'p'};
    struct fake g = {.base = {.ops = &fake_ops, .description = "fallback"}, .tag = 'g'};
    struct node *n = NULL;
    CHECK_EQ_INT(node_fallback_new(&p.base, &g.base, extra, "gw_calls 7\n", &n), 0);
    CHECK_EQ_STR(n->description, "primary, then fallback");
    struct cid c = {0};
    struct node_stat st = {0};

    /* The primary answers: the fallback is not asked. */
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
    CHECK_EQ_INT(st.size, 'p');
    CHECK_EQ_INT(g.calls, 0);

    /* ETIMEDOUT, EIO and EAGAIN fall back; the fallback's answer is used. */
    int errs[] = {-ETIMEDOUT, -EIO, -EAGAIN};
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        p.rc = errs[i];
        memset(&st, 0, sizeof st);
        CHECK_EQ_INT(n->ops->stat(n, &c, &st), 0);
        CHECK_EQ_INT(st.size, 'g');
    }
    CHECK_EQ_INT(g.calls, 3);

    /* ENOENT (and any other answer) is the primary's to give. */
    p.rc = -ENOENT;
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), -ENOENT);
    CHECK_EQ_INT(g.calls, 3);

    /* Both fail: the primary's error stands. */
    p.rc = -ETIMEDOUT;
    g.rc = -EIO;
    CHECK_EQ_INT(n->ops->stat(n, &c, &st), -ETIMEDOUT);
    g.rc = 0;

    /* read */
    char buf[16];
    CHECK_EQ_INT(n->ops->read(n, &c, 0, sizeof buf, buf), sizeof buf);
    CHECK_EQ_INT(buf[0], 'g');
    /* Content the fallback served is read from it first for a while: the primary is not
     * asked (a file read in pieces would wait out its timeout once per piece)... */
    int pc = p.calls;
    CHECK_EQ_INT(n->ops->read(n, &c, 16, sizeof buf, buf), sizeof buf);
    CHECK_EQ_INT(buf[0], 'g');
    CHECK_EQ_INT(p.calls, pc);
    /* ... until the fallback fails: then the primary answers, and is asked first again. */
    g.rc = -EIO;
    p.rc = 0;
    CHECK_EQ_INT(n->ops->read(n, &c, 0, sizeof buf, buf), sizeof buf);
    CHECK_EQ_INT(buf[0], 'p');
    g.rc = 0;
    int gcalls = g.calls;
    CHECK_EQ_INT(n->ops->read(n, &c, 0, sizeof buf, buf), sizeof buf);
    CHECK_EQ_INT(buf[0], 'p');
    CHECK_EQ_INT(g.calls, gcalls);
    p.rc = -ETIMEDOUT;

    /* A listing falls back only if the primary gave no entry. */
    int entries = 0;
    p.partial = 0;
    g.partial = 3;
    CHECK_EQ_INT(n->ops->list(n, &c, count, &entries), 0);
    CHECK_EQ_INT(entries, 3);
    entries = 0;
    p.partial = 2;
    int gc = g.calls;
    CHECK_EQ_INT(n->ops->list(n, &c, count, &entries), -ETIMEDOUT);
    CHECK_EQ_INT(entries, 2);
    CHECK_EQ_INT(g.calls, gc);

    /* A stream likewise: no byte from the primary, the fallback streams; some, no fallback
     * (other content each time: c2 is then read from the fallback first). */
    struct cid c2 = {.mh_len = 1, .mh = {2}}, c3 = {.mh_len = 1, .mh = {3}};
    p.partial = 0;
    got_bytes = 0;
    CHECK_EQ_INT(n->ops->read_stream(n, &c2, 0, 10, sink, NULL), 0);
    CHECK_EQ_INT(got_bytes, 10);
    CHECK_EQ_INT(got_tag, 'g');
    pc = p.calls;
    got_bytes = 0;
    CHECK_EQ_INT(n->ops->read_stream(n, &c2, 10, 10, sink, NULL), 0);
    CHECK_EQ_INT(got_tag, 'g');
    CHECK_EQ_INT(p.calls, pc);
    p.partial = 5;
    got_bytes = 0;
    CHECK_EQ_INT(n->ops->read_stream(n, &c3, 0, 10, sink, NULL), -ETIMEDOUT);
    CHECK_EQ_INT(got_bytes, 5);
    CHECK_EQ_INT(got_tag, 'p');

    /* Names never fall back; an op neither has is ENOSYS. */
    CHECK_EQ_INT(n->ops->mfs_mkdir(n, "/a"), -ETIMEDOUT);
    CHECK_EQ_INT(p.mfs_calls, 1);
    CHECK_EQ_INT(g.mfs_calls, 0);
    CHECK_EQ_INT(n->ops->mfs_rm(n, "/a", false), -ENOSYS);
    CHECK(n->ops->get_block(n, &c, NULL, NULL) == -ENOSYS);

    /* Stats: the primary's, the fallback counters, the extra text; truncated safely. */
    char s[512];
    int k = n->ops->stats(n, s, sizeof s);
    CHECK(k > 0 && (size_t)k < sizeof s);
    CHECK(strstr(s, "fake_p 1\n") != NULL);
    CHECK(strstr(s, "fallback_calls ") != NULL);
    CHECK(strstr(s, "fallback_served ") != NULL);
    CHECK(strstr(s, "fallback_first 3\n") != NULL);
    CHECK(strstr(s, "gw_calls 7\n") != NULL);
    CHECK(strstr(s, "fake_g") == NULL);
    for (size_t len = 1; len < 64; len++) {
        char t[64];
        memset(t, 'Z', sizeof t);
        k = n->ops->stats(n, t, len);
        CHECK(k >= 0 && (size_t)k < len);
        CHECK(t[len - 1] == '\0' || memchr(t, '\0', len) != NULL);
    }
    node_destroy(n);
    printf("test_fallback: %d checks, %d failures\n", unit_checks, unit_failures);
    return unit_failures ? 1 : 0;
}
