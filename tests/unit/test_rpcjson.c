/* test_rpcjson.c - JSON reply handling against replies recorded from the test node (js-ipfs)
 * and Kubo's documented shapes. */
#include "config.h"

#include "rpc.h"
#include "rpcjson.h"
#include "unit.h"

#include <errno.h>
#include <jansson.h>

struct seen {
    int n;
    char names[16][64];
    enum node_kind kinds[16];
    uint64_t sizes[16];
    uint32_t modes[16];
    char cids[16][CID_STR_MAX];
};

static int record(void *ud, const struct node_entry *e)
{
    struct seen *s = ud;
    if (s->n < 16) {
        snprintf(s->names[s->n], sizeof s->names[0], "%.*s", (int)e->name_len, e->name);
        s->kinds[s->n] = e->kind;
        s->sizes[s->n] = e->size;
        s->modes[s->n] = e->mode;
        cid_format(&e->cid, s->cids[s->n], sizeof s->cids[0]);
    }
    s->n++;
    return 0;
}

static int ls_fixture(const char *name, const struct rpcjson_quirks *q, struct seen *s,
                      unsigned *skipped)
{
    size_t len;
    char *body = unit_read_fixture(name, &len);
    memset(s, 0, sizeof *s);
    int rc = rpcjson_ls(body, len, q, record, s, skipped);
    free(body);
    return rc;
}

static int ls_line(void *ud, const char *line, size_t len)
{
    static const struct rpcjson_quirks kubo = {.symlink_as_file = false};
    return rpcjson_ls(line, len, &kubo, record, ud, NULL);
}

static int count_line(void *ud, const char *line, size_t len)
{
    (void)line;
    (void)len;
    (*(int *)ud)++;
    return 0;
}

static void test_version(void)
{
    struct node_version v;
    size_t len;
    char *b = unit_read_fixture("jsipfs/version.json", &len);
    CHECK_EQ_INT(rpcjson_version(b, len, &v), 0);
    CHECK_EQ_STR(v.version, "0.18.1");
    CHECK(!v.is_kubo);
    free(b);
    b = unit_read_fixture("kubo/version.json", &len);
    CHECK_EQ_INT(rpcjson_version(b, len, &v), 0);
    CHECK_EQ_STR(v.version, "0.30.0");
    CHECK(v.is_kubo);
    free(b);
    CHECK_EQ_INT(rpcjson_version("<html>", 6, &v), -EIO);
    CHECK_EQ_INT(rpcjson_version("{\"Version\":3}", 13, &v), -EIO);
    CHECK_EQ_INT(rpcjson_version("", 0, &v), -EIO);
}

static void test_ls_jsipfs(void)
{
    struct rpcjson_quirks js = {.symlink_as_file = true};
    struct seen s;
    unsigned skipped = 0;
    CHECK_EQ_INT(ls_fixture("jsipfs/ls_dir.json", &js, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_STR(s.names[0], "h.txt");
    /* js-ipfs reports symlinks as small files: a small dag-pb file is ambiguous. */
    CHECK_EQ_INT(s.kinds[0], NODE_UNKNOWN);
    CHECK_EQ_INT(s.sizes[0], 6);
    CHECK_EQ_INT(s.modes[0], 0644);
    CHECK_EQ_STR(s.cids[0], "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN");
    CHECK_EQ_STR(s.names[1], "sub");
    CHECK_EQ_INT(s.kinds[1], NODE_DIR);
    CHECK_EQ_INT(s.modes[1], 0755);
    CHECK_EQ_INT(skipped, 0);

    /* CIDv1 in base58btc (zb2r...), as js-ipfs prints them; a raw leaf is surely a file. */
    CHECK_EQ_INT(ls_fixture("jsipfs/ls_dir_v1.json", &js, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.cids[0], "bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu");
    CHECK_EQ_INT(s.kinds[0], NODE_FILE);
    CHECK_EQ_INT(s.sizes[0], 4);

    CHECK_EQ_INT(ls_fixture("jsipfs/ls_empty.json", &js, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 0);
    /* ls of a file: no links. */
    CHECK_EQ_INT(ls_fixture("jsipfs/ls_file.json", &js, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 0);

    /* The streamed form, split at every possible byte boundary. */
    size_t len;
    char *body = unit_read_fixture("jsipfs/ls_dir_stream.ndjson", &len);
    for (size_t cut = 0; cut <= len; cut += 7) {
        struct ndjson nd;
        int lines = 0;
        ndjson_init(&nd, 0);
        CHECK_EQ_INT(ndjson_feed(&nd, body, cut, count_line, &lines), 0);
        CHECK_EQ_INT(ndjson_feed(&nd, body + cut, len - cut, count_line, &lines), 0);
        CHECK_EQ_INT(ndjson_finish(&nd, count_line, &lines), 0);
        CHECK_EQ_INT(lines, 2);
        ndjson_free(&nd);
    }
    free(body);
}

static void test_ls_kubo(void)
{
    struct rpcjson_quirks kubo = {.symlink_as_file = false};
    struct seen s;
    unsigned skipped = 0;
    CHECK_EQ_INT(ls_fixture("kubo/ls_dir.json", &kubo, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(s.kinds[0], NODE_FILE);
    CHECK_EQ_INT(s.modes[0], 0);
    CHECK_EQ_STR(s.names[1], "link");
    CHECK_EQ_INT(s.kinds[1], NODE_SYMLINK);
    CHECK_EQ_INT(s.kinds[2], NODE_DIR);
    CHECK_EQ_INT(s.modes[2], 0755); /* Go FileMode with the directory bit */

    size_t len;
    char *body = unit_read_fixture("kubo/ls_dir_stream.ndjson", &len);
    struct ndjson nd;
    memset(&s, 0, sizeof s);
    ndjson_init(&nd, 0);
    CHECK_EQ_INT(ndjson_feed(&nd, body, len, ls_line, &s), 0);
    CHECK_EQ_INT(ndjson_finish(&nd, ls_line, &s), 0);
    ndjson_free(&nd);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_INT(s.kinds[1], NODE_SYMLINK);
    free(body);

    /* An empty directory streams zero lines. */
    body = unit_read_fixture("kubo/ls_empty_stream.ndjson", &len);
    memset(&s, 0, sizeof s);
    ndjson_init(&nd, 0);
    CHECK_EQ_INT(ndjson_feed(&nd, body, len, ls_line, &s), 0);
    CHECK_EQ_INT(ndjson_finish(&nd, ls_line, &s), 0);
    ndjson_free(&nd);
    CHECK_EQ_INT(s.n, 0);
    free(body);
}

static void test_ls_hostile(void)
{
    struct rpcjson_quirks kubo = {.symlink_as_file = false};
    struct seen s;
    unsigned skipped = 0;
    CHECK_EQ_INT(ls_fixture("kubo/ls_hostile.json", &kubo, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.names[0], "ok");
    CHECK_EQ_INT(skipped, 7);

    /* Malformed or truncated JSON is an error, never a crash. */
    static const char *bad[] = {"{", "{\"Objects\":", "{\"Objects\":{}}", "[1,2]",
                                "{\"Objects\":[{\"Links\":3}]}", "null", "\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(rpcjson_ls(bad[i], strlen(bad[i]), &kubo, record, &s, NULL) < 0);

    /* Names: the rules in one place. */
    CHECK(node_name_ok("a", 1));
    CHECK(node_name_ok("with space", 10));
    CHECK(node_name_ok("\xc3\xa9t\xc3\xa9", 5));
    CHECK(!node_name_ok("", 0));
    CHECK(!node_name_ok(".", 1));
    CHECK(!node_name_ok("..", 2));
    CHECK(node_name_ok("...", 3));
    CHECK(!node_name_ok("a/b", 3));
    CHECK(!node_name_ok("a\0b", 3));
    char longname[300];
    memset(longname, 'x', sizeof longname);
    CHECK(node_name_ok(longname, 255));
    CHECK(!node_name_ok(longname, 256));

    /* A line longer than the limit is refused. */
    struct ndjson nd;
    int lines = 0;
    ndjson_init(&nd, 16);
    CHECK_EQ_INT(ndjson_feed(&nd, longname, 100, count_line, &lines), -EMSGSIZE);
    ndjson_free(&nd);
}

static void test_numbers(void)
{
    uint64_t v;
    json_t *j = json_loads("[12, \"12\", -1, \"-1\", \"12x\", \"\", 1.5, null, 18446744073709551615]",
                           0, NULL);
    /* jansson rejects the last (too big for json_int_t): the array fails to load. */
    CHECK(j == NULL);
    j = json_loads("[12, \"12\", -1, \"-1\", \"12x\", \"\", 1.5, null, \"18446744073709551615\"]",
                   0, NULL);
    CHECK(j != NULL);
    CHECK_EQ_INT(rpcjson_u64(json_array_get(j, 0), &v), 0);
    CHECK_EQ_INT(v, 12);
    CHECK_EQ_INT(rpcjson_u64(json_array_get(j, 1), &v), 0); /* Kubo's add Size is a string */
    CHECK_EQ_INT(v, 12);
    CHECK(rpcjson_u64(json_array_get(j, 2), &v) < 0);
    CHECK(rpcjson_u64(json_array_get(j, 3), &v) < 0);
    CHECK(rpcjson_u64(json_array_get(j, 4), &v) < 0);
    CHECK(rpcjson_u64(json_array_get(j, 5), &v) < 0);
    CHECK(rpcjson_u64(json_array_get(j, 6), &v) < 0);
    CHECK(rpcjson_u64(json_array_get(j, 7), &v) < 0);
    CHECK_EQ_INT(rpcjson_u64(json_array_get(j, 8), &v), 0);
    CHECK(v == UINT64_MAX);
    json_decref(j);
}

static void check_error(const char *fixture, bool is_json, const char *want_msg, int want_errno)
{
    size_t len;
    char *b = unit_read_fixture(fixture, &len);
    char msg[512];
    rpc_error_message(b, len, is_json, msg, sizeof msg);
    CHECK_EQ_STR(msg, want_msg);
    CHECK_EQ_INT(rpc_classify_error(msg), want_errno);
    free(b);
}

static void test_errors(void)
{
    check_error("jsipfs/err_cat_missing.json", true, "file does not exist", -ENOENT);
    check_error("jsipfs/err_cat_dir.json", true, "Failed to cat file: this dag node is a directory",
                -EISDIR);
    check_error("jsipfs/err_timeout.json", true, "Failed to get block stats: request timed out",
                -ETIMEDOUT);
    check_error("kubo/err_timeout.json", true, "context deadline exceeded", -ETIMEDOUT);
    check_error("kubo/err_no_link.json", true,
                "no link named \"nope\" under QmdzqLiAivQsXx9RMqiBVpDTwsFKSFC4zAuUiuAm8ut2jC",
                -ENOENT);
    check_error("kubo/err_404.txt", false, "404 page not found", -ENOENT);
    check_error("kubo/err_403.txt", false, "403 - Forbidden", -EIO);
    check_error("jsipfs/err_404.json", true, "Not Found", -ENOENT);
    /* The test node's trailer and pre-command errors use a lowercase key sometimes. */
    char msg[128];
    rpc_error_message("{\"statusCode\":500,\"error\":\"Internal\",\"message\":\"boom\"}", 55,
                      true, msg, sizeof msg);
    CHECK_EQ_STR(msg, "boom");
    /* Binary garbage becomes printable text, never overflows. */
    char junk[600];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 37);
    rpc_error_message(junk, sizeof junk, false, msg, sizeof msg);
    CHECK(strlen(msg) < sizeof msg);
    CHECK_EQ_INT(rpc_classify_error(NULL), -EIO);
    CHECK_EQ_INT(rpc_classify_error("something else"), -EIO);
}

int main(void)
{
    test_version();
    test_ls_jsipfs();
    test_ls_kubo();
    test_ls_hostile();
    test_numbers();
    test_errors();
    return unit_done("test_rpcjson");
}
