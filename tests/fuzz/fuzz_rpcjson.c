/* fuzz_rpcjson.c - the parsers of the node's JSON replies. One source, one binary per parser
 * (run-fuzzers.sh compiles it with -DFUZZ_TARGET=<n>), so each gets its own corpus of real
 * replies:
 *   1 fuzz_rpcjson_ls          rpcjson_ls (Kubo's ls replies)
 *   2 fuzz_rpcjson_files_ls    rpcjson_files_ls
 *   3 fuzz_rpcjson_files_stat  rpcjson_files_stat
 *   4 fuzz_rpcjson_add_result  rpcjson_add_result
 *   5 fuzz_rpcjson_version     rpcjson_version, rpcjson_import_config (config?arg=Import)
 *   6 fuzz_rpc_error_message   rpc_error_message (as JSON and as text)
 *
 * Properties: every entry handed to the callback has a name that node_name_ok accepts (no '/',
 * no NUL, not "." or "..", 1..255 bytes, NUL-terminated right after name_len), a CID that
 * formats and re-parses equal, a known kind, size 0 for directories; a callback error stops the
 * listing and is returned; outputs are NUL-terminated within their buffers.
 */
#include "config.h"

#include "fuzz.h"
#include "log.h"
#include "rpc.h"
#include "rpcjson.h"

#include <errno.h>
#include <string.h>

#ifndef FUZZ_TARGET
#error "compile with -DFUZZ_TARGET=1..6"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_init(LOG_LVL_ERR, false); /* the parsers warn about every hidden entry */
    return 0;
}

__attribute__((unused)) static void check_cid(const struct cid *c)
{
    char s[CID_STR_MAX];
    struct cid c2;
    int n = cid_format(c, s, sizeof s);
    FUZZ_CHECK(n > 0, "an accepted CID does not format (%d)", n);
    FUZZ_CHECK(cid_parse(s, (size_t)n, &c2) == 0 && cid_equal(c, &c2), "'%s' does not re-parse", s);
}

#if FUZZ_TARGET <= 2
struct ctx {
    unsigned calls;
    unsigned stop_after; /* 0: never stop */
};

static int on_entry(void *ud, const struct node_entry *e)
{
    struct ctx *x = ud;
    FUZZ_CHECK(e->name != NULL, "NULL name");
    FUZZ_CHECK(node_name_ok(e->name, e->name_len), "bad name of %zu bytes passed on", e->name_len);
    FUZZ_CHECK(e->name[e->name_len] == '\0', "name not NUL-terminated at name_len");
    FUZZ_CHECK(strlen(e->name) == e->name_len, "name has an inner NUL");
    FUZZ_CHECK(e->kind >= NODE_UNKNOWN && e->kind <= NODE_SYMLINK, "kind %d", (int)e->kind);
    FUZZ_CHECK(e->kind != NODE_DIR || e->size == 0, "directory with size %llu",
               (unsigned long long)e->size);
    FUZZ_CHECK((e->mode & ~07777u) == 0, "mode %o has type bits", e->mode);
    FUZZ_CHECK(!e->has_mtime || e->mtime_nsec <= 999999999u, "mtime fraction %u",
               (unsigned)e->mtime_nsec);
    check_cid(&e->cid);
    x->calls++;
    if (x->stop_after && x->calls == x->stop_after)
        return -ECANCELED;
    return 0;
}

static void run_list(int (*fn)(const char *, size_t, struct ctx *, unsigned *), const char *body,
                     size_t size)
{
    unsigned skipped = 0;
    struct ctx all = {0};
    int rc = fn(body, size, &all, &skipped);
    FUZZ_CHECK(rc == 0 || rc == -EIO || rc == -ENOMEM, "list rc %d", rc);
    if (rc == 0 && all.calls >= 2) {
        /* Stopping at entry 2 must stop there and report the callback's error. */
        struct ctx stop = {.stop_after = 2};
        rc = fn(body, size, &stop, NULL);
        FUZZ_CHECK(rc == -ECANCELED && stop.calls == 2, "stop: rc %d after %u calls", rc,
                   stop.calls);
    }
}

#endif

#if FUZZ_TARGET == 1
static int ls_kubo(const char *b, size_t n, struct ctx *x, unsigned *sk)
{
    return rpcjson_ls(b, n, on_entry, x, sk);
}
#elif FUZZ_TARGET == 2
static int files_ls(const char *b, size_t n, struct ctx *x, unsigned *sk)
{
    return rpcjson_files_ls(b, n, on_entry, x, sk);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parsers get (pointer, length) and must not read past it: hand them an exact copy,
     * not NUL-terminated, so ASan catches any strlen on the body. */
    char *body = malloc(size ? size : 1);
    if (!body)
        return 0;
    memcpy(body, data, size);

#if FUZZ_TARGET == 1
    run_list(ls_kubo, body, size);
#elif FUZZ_TARGET == 2
    run_list(files_ls, body, size);
#elif FUZZ_TARGET == 3
    struct node_stat st;
    struct cid c;
    int rc = rpcjson_files_stat(body, size, &st, &c);
    if (rc == 0) {
        check_cid(&c);
        FUZZ_CHECK(st.kind == NODE_FILE || st.kind == NODE_DIR || st.kind == NODE_SYMLINK,
                   "kind %d", (int)st.kind);
        FUZZ_CHECK(st.kind == NODE_FILE || st.size == 0, "non-file with size");
        FUZZ_CHECK((st.mode & ~07777u) == 0, "mode %o", st.mode);
        FUZZ_CHECK(!st.has_mtime || st.mtime >= 0, "negative mtime");
        FUZZ_CHECK(st.mtime_nsec <= 999999999u, "mtime fraction %u", (unsigned)st.mtime_nsec);
    } else {
        FUZZ_CHECK(rc == -EIO, "files_stat rc %d", rc);
    }
    node_stat_clear(&st);
#elif FUZZ_TARGET == 4
    struct cid c;
    int rc = rpcjson_add_result(body, size, &c);
    if (rc == 0)
        check_cid(&c);
    else
        FUZZ_CHECK(rc == -EIO || rc == -EMSGSIZE || rc == -ENOMEM, "add_result rc %d", rc);
#elif FUZZ_TARGET == 5
    struct node_version v;
    memset(&v, 'X', sizeof v);
    int rc = rpcjson_version(body, size, &v);
    FUZZ_CHECK(memchr(v.version, '\0', sizeof v.version) != NULL, "version not terminated");
    FUZZ_CHECK(rc == 0 || rc == -EIO, "version rc %d", rc);
    struct import_config ic;
    char why[64];
    rc = rpcjson_import_config(body, size, &ic, why, sizeof why);
    FUZZ_CHECK(rc == 0 || rc == -EPROTO, "import_config rc %d", rc);
    FUZZ_CHECK(ic.cid_version >= -1 && ic.cid_version <= 1, "cid_version %d", ic.cid_version);
    FUZZ_CHECK(ic.raw_leaves >= -1 && ic.raw_leaves <= 1, "raw_leaves %d", ic.raw_leaves);
    FUZZ_CHECK(ic.file_max_links == 0 || (ic.file_max_links >= 2 && ic.file_max_links <= 65536),
               "file_max_links %u", ic.file_max_links);
    FUZZ_CHECK(memchr(ic.chunker, '\0', sizeof ic.chunker) && memchr(ic.refused, '\0',
               sizeof ic.refused) && memchr(ic.differs, '\0', sizeof ic.differs),
               "import_config strings not terminated");
#elif FUZZ_TARGET == 6
    static const size_t outlens[] = {1, 2, 17, 1024};
    char out[1024];
    for (int json = 0; json < 2; json++) {
        size_t outlen = outlens[(size + (size_t)json) % 4];
        memset(out, 'X', sizeof out);
        rpc_error_message(body, size, json, out, outlen);
        size_t n = strnlen(out, outlen);
        FUZZ_CHECK(n < outlen, "message not NUL-terminated within %zu bytes", outlen);
        FUZZ_CHECK(outlen == sizeof out || out[outlen] == 'X', "wrote past outlen");
        FUZZ_CHECK(n == 0 || (out[0] != ' ' && out[n - 1] != ' ') || json ||
                       (size > 0 && data[0] == '{'),
                   "text message not trimmed");
#ifdef FUZZ_STRICT_PRINTABLE
        /* The message goes into log lines: no control characters (off until rpc.c filters
         * JSON messages too; see tests/README-hardening.md). */
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f,
                       "control character 0x%02x in the message", (unsigned char)out[i]);
#endif
        (void)rpc_classify_error(out);
    }
    rpc_error_message(body, size, true, out, 0); /* must not write */
#else
#error "unknown FUZZ_TARGET"
#endif
    free(body);
    return 0;
}
