/* test_rpcjson.c - JSON reply handling against replies recorded from a real Kubo
 * (tests/fixtures/kubo, re-recorded by tests/record-fixtures.sh). */
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
    int64_t mtimes[16]; /* -1: none */
    uint32_t nsecs[16];
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
        s->mtimes[s->n] = e->has_mtime ? e->mtime : -1;
        s->nsecs[s->n] = e->has_mtime ? e->mtime_nsec : 0;
        cid_format(&e->cid, s->cids[s->n], sizeof s->cids[0]);
    }
    s->n++;
    return 0;
}

static int ls_fixture(const char *name, struct seen *s, unsigned *skipped)
{
    size_t len;
    char *body = unit_read_fixture(name, &len);
    memset(s, 0, sizeof *s);
    int rc = rpcjson_ls(body, len, record, s, skipped);
    free(body);
    return rc;
}

static int ls_line(void *ud, const char *line, size_t len)
{
    return rpcjson_ls(line, len, record, ud, NULL);
}

/* Feed an NDJSON fixture to ls_line, cut in two at cut. */
static void ls_stream(const char *name, size_t cut, struct seen *s)
{
    size_t len;
    char *body = unit_read_fixture(name, &len);
    struct ndjson nd;
    memset(s, 0, sizeof *s);
    if (cut > len)
        cut = len;
    ndjson_init(&nd, 0);
    CHECK_EQ_INT(ndjson_feed(&nd, body, cut, ls_line, s), 0);
    CHECK_EQ_INT(ndjson_feed(&nd, body + cut, len - cut, ls_line, s), 0);
    CHECK_EQ_INT(ndjson_finish(&nd, ls_line, s), 0);
    ndjson_free(&nd);
    free(body);
}

static int count_line(void *ud, const char *line, size_t len)
{
    (void)line;
    (void)len;
    (*(int *)ud)++;
    return 0;
}

/* A version reply with the Version field replaced. */
static int version_of(const char *ver, struct node_version *v)
{
    char body[256];
    int n = snprintf(body, sizeof body,
                     "{\"Version\":\"%s\",\"Commit\":\"\",\"Repo\":\"18\",\"System\":"
                     "\"amd64/linux\",\"Golang\":\"go1.26.8\"}\n", ver);
    return rpcjson_version(body, (size_t)n, v);
}

/* /api/v0/id of an online Kubo 0.43.1: the peer ID, and nothing else of the node's words. */
static void test_id(void)
{
    size_t len;
    char id[128];
    char *b = unit_read_fixture("kubo/id.json", &len);
    CHECK_EQ_INT(rpcjson_id(b, len, id, sizeof id), 0);
    CHECK(strncmp(id, "12D3KooW", 8) == 0);
    CHECK_EQ_INT(rpcjson_id(b, len, id, 8), -EIO); /* does not fit */
    free(b);
    static const char *bad[] = {"{}", "{\"ID\":\"\"}", "{\"ID\":\"12D3/../x\"}",
                                "{\"ID\":42}", "[\"ID\"]", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(rpcjson_id(bad[i], strlen(bad[i]), id, sizeof id), -EIO);
}

/* config?arg=Import, recorded: Kubo's defaults (every setting null), the unixfs-v1-2025 profile;
 * then settings by hand. */
static void test_import_config(void)
{
    struct import_config ic;
    char why[256];
    size_t len;
    char *b = unit_read_fixture("kubo/config_import.json", &len);
    CHECK_EQ_INT(rpcjson_import_config(b, len, &ic, why, sizeof why), 0);
    CHECK_EQ_INT(ic.cid_version, -1);
    CHECK_EQ_INT(ic.raw_leaves, -1);
    CHECK_EQ_STR(ic.chunker, "");
    CHECK_EQ_STR(ic.refused, "");
    CHECK_EQ_STR(ic.differs, "");
    free(b);
    b = unit_read_fixture("kubo/config_import_v1.json", &len);
    CHECK_EQ_INT(rpcjson_import_config(b, len, &ic, why, sizeof why), 0);
    CHECK_EQ_INT(ic.cid_version, 1);
    CHECK_EQ_INT(ic.raw_leaves, 1);
    CHECK_EQ_STR(ic.chunker, "size-1048576");
    CHECK_EQ_STR(ic.refused, "");
    CHECK_EQ_INT(ic.file_max_links, 1024);
    /* the profile's "block" estimate is followed (the store's), so not named */
    CHECK_EQ_STR(ic.differs, "");
    CHECK(ic.hamt_block);
    free(b);
    const char *dis = "{\"Value\":{\"UnixFSHAMTDirectorySizeEstimation\":\"disabled\"}}";
    CHECK_EQ_INT(rpcjson_import_config(dis, strlen(dis), &ic, why, sizeof why), 0);
    CHECK(!ic.hamt_block);
    CHECK_EQ_STR(ic.differs, "Import.UnixFSHAMTDirectorySizeEstimation=disabled");
    static const struct {
        const char *json, *refused;
    } cases[] = {
        {"{\"Value\":{\"HashFunction\":\"blake3\"}}", "Import.HashFunction=blake3"},
        {"{\"Value\":{\"UnixFSDAGLayout\":\"trickle\"}}", "Import.UnixFSDAGLayout=trickle"},
        {"{\"Value\":{\"CidVersion\":2}}", "Import.CidVersion=2"},
        {"{\"Value\":{\"UnixFSPBNodeFieldOrder\":\"data-first\",\"HashFunction\":\"sha2-256\"}}",
         "Import.UnixFSPBNodeFieldOrder=data-first"},
        {"{\"Value\":{\"UnixFSFileMaxLinks\":1}}", "Import.UnixFSFileMaxLinks=1"},
        {"{\"Value\":{\"UnixFSRawLeaves\":false,\"CidVersion\":0}}", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ_INT(rpcjson_import_config(cases[i].json, strlen(cases[i].json), &ic, why,
                                           sizeof why),
                     0);
        CHECK_EQ_STR(ic.refused, cases[i].refused);
        CHECK(!ic.hamt_block);
    }
    CHECK_EQ_INT(ic.raw_leaves, 0);
    CHECK_EQ_INT(ic.cid_version, 0);
    static const char *bad[] = {"{}", "not json", "{\"Value\":3}", "[]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(rpcjson_import_config(bad[i], strlen(bad[i]), &ic, why, sizeof why),
                     -EPROTO);
}

static void test_version(void)
{
    struct node_version v;
    char why[512];
    size_t len;
    char *b = unit_read_fixture("kubo/version.json", &len);
    CHECK_EQ_INT(rpcjson_version(b, len, &v), 0);
    CHECK_EQ_STR(v.version, "0.43.1");
    CHECK(v.is_kubo);
    CHECK(v.parsed);
    CHECK_EQ_INT(v.major, 0);
    CHECK_EQ_INT(v.minor, 43);
    CHECK_EQ_INT(v.patch, 1);
    CHECK_EQ_INT(rpcjson_version_check(&v, why, sizeof why), 0);
    free(b);

    /* The floor: 0.41.0. Older Kubo lost multi-block content on files/chmod and touch. */
    static const struct {
        const char *ver;
        int ok;
    } cases[] = {
        {"0.41.0", 1}, {"0.41.0-rc1", 1}, {"0.44.0-dev", 1}, {"1.0.0", 1}, {"0.41.10", 1},
        {"0.40.1", 0}, {"0.40.99", 0},    {"0.4.41", 0},     {"0.30.0", 0}, {"0.9.1", 0},
        {"0.41", 0},   {"banana", 0},     {"", 0},           {"0.41.x", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_EQ_INT(version_of(cases[i].ver, &v), 0);
        int rc = rpcjson_version_check(&v, why, sizeof why);
        if (cases[i].ok) {
            CHECK_EQ_INT(rc, 0);
        } else {
            CHECK_EQ_INT(rc, -EPROTONOSUPPORT);
            CHECK(strstr(why, "0.41.0") != NULL);
        }
    }
    CHECK_EQ_INT(version_of("0.40.1", &v), 0);
    rpcjson_version_check(&v, why, sizeof why);
    CHECK(strstr(why, "Kubo 0.40.1 is too old") != NULL);

    /* js-ipfs (its reply as recorded from js-ipfs 0.66.1): refused, saying why. */
    static const char js[] =
        "{\"Version\":\"0.18.1\",\"Commit\":\"\",\"Repo\":\"12\",\"ipfs-core\":\"0.18.1\","
        "\"interface-ipfs-core\":\"^0.158.0\",\"ipfs-http-client\":\"^60.0.0\"}";
    CHECK_EQ_INT(rpcjson_version(js, sizeof js - 1, &v), 0);
    CHECK(!v.is_kubo);
    CHECK_EQ_INT(rpcjson_version_check(&v, why, sizeof why), -EPROTONOSUPPORT);
    CHECK(strstr(why, "not Kubo") != NULL);

    /* The node's version string reaches the terminal: nothing but harmless characters. */
    static const char evil[] = "{\"Version\":\"0.43.1\\u001b[2J\\n\",\"Golang\":\"go\"}";
    CHECK_EQ_INT(rpcjson_version(evil, sizeof evil - 1, &v), 0);
    CHECK_EQ_STR(v.version, "0.43.1??2J?");
    CHECK(!v.parsed);

    CHECK_EQ_INT(rpcjson_version("<html>", 6, &v), -EIO);
    CHECK_EQ_INT(rpcjson_version("{\"Version\":3}", 13, &v), -EIO);
    CHECK_EQ_INT(rpcjson_version("", 0, &v), -EIO);
}

static void test_ls(void)
{
    struct seen s;
    unsigned skipped = 0;
    CHECK_EQ_INT(ls_fixture("kubo/ls_dir.json", &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_STR(s.names[0], "h.txt");
    CHECK_EQ_INT(s.kinds[0], NODE_FILE);
    CHECK_EQ_INT(s.sizes[0], 6);
    CHECK_EQ_INT(s.modes[0], 0);
    CHECK_EQ_STR(s.cids[0], "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN");
    CHECK_EQ_STR(s.names[1], "link");
    CHECK_EQ_INT(s.kinds[1], NODE_SYMLINK);
    CHECK_EQ_STR(s.cids[1], "QmW2k3iWQY2puiCcgYwFi3ugLQoas9KQSJ21Cd7qwAaFCc");
    CHECK_EQ_STR(s.names[2], "sub");
    CHECK_EQ_INT(s.kinds[2], NODE_DIR);
    CHECK_EQ_STR(s.cids[2], "QmbLoRBqxVhtj6mCYKHJiC1qTT1dr7DYKRQ93rjcbMFgGn");
    CHECK_EQ_INT(skipped, 0);

    CHECK_EQ_INT(s.mtimes[0], -1); /* Go's zero time: none stored */

    CHECK_EQ_INT(ls_fixture("kubo/ls_empty.json", &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 0);

    /* Stored mtimes (ipfs add --preserve-mtime): ModTime, RFC 3339 with its fraction. */
    CHECK_EQ_INT(ls_fixture("kubo/ls_mtime.json", &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 2);
    CHECK_EQ_INT(s.mtimes[0], 1000000000);
    CHECK_EQ_INT(s.nsecs[0], 500000000);
    CHECK_EQ_INT(s.mtimes[1], 1000000001);
    CHECK_EQ_INT(s.nsecs[1], 0);
    static const struct {
        const char *t;
        int rc;
        int64_t sec;
        uint32_t nsec;
    } times[] = {
        {"1970-01-01T00:00:00Z", 0, 0, 0},
        {"2001-09-09T01:46:40.5Z", 0, 1000000000, 500000000},
        {"2001-09-09T03:46:40.123456789+02:00", 0, 1000000000, 123456789},
        {"2001-09-08T20:46:40.1234567891-05:00", 0, 1000000000, 123456789},
        {"1969-12-31T23:59:59Z", 0, -1, 0},
        {"2000-02-29T00:00:00Z", 0, 951782400, 0},
        {"2001-09-09T01:46:40", -EINVAL, 0, 0},
        {"2001-09-09T01:46:40.Z", -EINVAL, 0, 0},
        {"2001-13-09T01:46:40Z", -EINVAL, 0, 0},
        {"2001-09-09T01:46:40Zjunk", -EINVAL, 0, 0},
        {"", -EINVAL, 0, 0},
        {"-001-01-01T00:00:00Z", -EINVAL, 0, 0},
        {"+201-01-01T00:00:00Z", -EINVAL, 0, 0},
        {" 201-01-01T00:00:00Z", -EINVAL, 0, 0},
        {"2001-02-31T00:00:00Z", -EINVAL, 0, 0},
        {"2001-09-09T01:46:40+ 1:00", -EINVAL, 0, 0},
        {"2001-09-09T01:46:40+01:0", -EINVAL, 0, 0},
        {"0000-01-01T00:00:00Z", 0, -62167219200, 0},
        {"9999-12-31T23:59:59.999999999Z", 0, 253402300799, 999999999},
    };
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        int64_t sec = 0;
        uint32_t nsec = 0;
        CHECK_EQ_INT(rpcjson_rfc3339(times[i].t, &sec, &nsec), times[i].rc);
        if (times[i].rc == 0) {
            CHECK_EQ_INT(sec, times[i].sec);
            CHECK_EQ_INT(nsec, times[i].nsec);
        }
    }

    /* The streamed form, cut at many places. */
    size_t len;
    free(unit_read_fixture("kubo/ls_dir_stream.ndjson", &len));
    for (size_t cut = 0; cut <= len; cut += 13) {
        ls_stream("kubo/ls_dir_stream.ndjson", cut, &s);
        CHECK_EQ_INT(s.n, 3);
        CHECK_EQ_INT(s.kinds[1], NODE_SYMLINK);
        CHECK_EQ_INT(s.kinds[2], NODE_DIR);
    }
    /* resolve-type=false&size=false: names and CIDs from the directory block only; dag-pb
     * kinds are left for stat. */
    ls_stream("kubo/ls_dir_bare_stream.ndjson", 0, &s);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_STR(s.names[1], "link");
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(s.kinds[i], NODE_UNKNOWN);
    CHECK_EQ_STR(s.cids[2], "QmbLoRBqxVhtj6mCYKHJiC1qTT1dr7DYKRQ93rjcbMFgGn");
    /* A raw child is a file whatever the node says. */
    static const char raw[] =
        "{\"Objects\":[{\"Hash\":\"/ipfs/x\",\"Links\":[{\"Name\":\"r\",\"Hash\":"
        "\"bafkreictf2vl3flurag365vzxdgabazmectoyej5narjsvinpjxa6nc6eu\",\"Size\":4,"
        "\"Type\":0}]}]}";
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(rpcjson_ls(raw, sizeof raw - 1, record, &s, NULL), 0);
    CHECK_EQ_INT(s.kinds[0], NODE_FILE);
    CHECK_EQ_INT(s.sizes[0], 4);

    /* An empty directory streams zero lines. */
    ls_stream("kubo/ls_empty_stream.ndjson", 0, &s);
    CHECK_EQ_INT(s.n, 0);
}

static int stop_at_2(void *ud, const struct node_entry *e)
{
    struct seen *s = ud;
    record(ud, e);
    return s->n == 2 ? -ECANCELED : 0;
}

static void test_files_ls(void)
{
    size_t len;
    char *body = unit_read_fixture("kubo/files_ls_long.json", &len);
    struct seen s;
    unsigned skipped = 0;
    /* Whole, and fed in pieces of every size from 1 byte up. */
    for (size_t step = 1; step <= len; step = step < 8 ? step + 1 : step * 2) {
        struct files_ls_reader r;
        memset(&s, 0, sizeof s);
        files_ls_init(&r, 0, record, &s);
        for (size_t off = 0; off < len; off += step)
            CHECK_EQ_INT(files_ls_feed(&r, body + off, off + step <= len ? step : len - off), 0);
        CHECK_EQ_INT(files_ls_finish(&r), 0);
        files_ls_free(&r);
        CHECK_EQ_INT(s.n, 3);
    }
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(rpcjson_files_ls(body, len, record, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 3);
    CHECK_EQ_STR(s.names[0], "empty");
    CHECK_EQ_INT(s.kinds[0], NODE_DIR);
    CHECK_EQ_STR(s.names[1], "h.txt");
    CHECK_EQ_INT(s.kinds[1], NODE_UNKNOWN); /* a small dag-pb file may be a symlink */
    CHECK_EQ_INT(s.sizes[1], 6);
    CHECK_EQ_STR(s.cids[1], "QmWXtanbvhNL2gTvtBboUD9Ti8xTnHEUuEhZtPjSbh1PBs");
    CHECK_EQ_INT(s.kinds[2], NODE_DIR);
    CHECK_EQ_INT(skipped, 0);

    /* The cap on entries, and a callback that stops. */
    struct files_ls_reader r;
    memset(&s, 0, sizeof s);
    files_ls_init(&r, 2, record, &s);
    CHECK_EQ_INT(files_ls_feed(&r, body, len), -EFBIG);
    files_ls_free(&r);
    CHECK_EQ_INT(s.n, 2);
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(rpcjson_files_ls(body, len, stop_at_2, &s, NULL), -ECANCELED);
    CHECK_EQ_INT(s.n, 2);
    free(body);

    body = unit_read_fixture("kubo/files_ls_empty.json", &len);
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(rpcjson_files_ls(body, len, record, &s, NULL), 0);
    CHECK_EQ_INT(s.n, 0);
    free(body);

    /* Strings that hold the reader's delimiters, an empty array, and malformed replies. */
    static const char tricky[] =
        "{\"Entries\" : [ {\"Name\":\"a}]\\\"{\",\"Type\":0,\"Size\":5000,"
        "\"Hash\":\"QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN\"} ] }\n";
    memset(&s, 0, sizeof s);
    CHECK_EQ_INT(rpcjson_files_ls(tricky, sizeof tricky - 1, record, &s, NULL), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.names[0], "a}]\"{");
    CHECK_EQ_INT(s.kinds[0], NODE_FILE);
    CHECK_EQ_INT(rpcjson_files_ls("{\"Entries\":[]}", 14, record, &s, NULL), 0);
    static const char *bad[] = {"",
                                "{",
                                "{\"Entries\":[",
                                "{\"Entries\":[{\"Name\":\"x\"}",
                                "{\"Entries\":[1]}",
                                "{\"Entries\":[{}],}",
                                "{\"Entries\":[{},]}",
                                "{\"Other\":[]}",
                                "{\"Entries\":nul}",
                                "{\"Entries\":null}x",
                                "[]",
                                "{\"Entries\":[{\"Name\":\"x\"}}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(rpcjson_files_ls(bad[i], strlen(bad[i]), record, &s, NULL), -EIO);
    /* One entry larger than the reader keeps is refused, not buffered. */
    size_t big = 70000;
    char *huge = malloc(big + 64);
    int n = snprintf(huge, 64, "{\"Entries\":[{\"Name\":\"");
    memset(huge + n, 'x', big);
    memcpy(huge + n + big, "\"}]}", 5);
    CHECK_EQ_INT(rpcjson_files_ls(huge, strlen(huge), record, &s, NULL), -EIO);
    free(huge);
}

static void test_files_stat(void)
{
    struct node_stat st;
    struct cid c;
    char cs[CID_STR_MAX];
    size_t len;
    char *b = unit_read_fixture("kubo/files_stat_dir.json", &len);
    CHECK_EQ_INT(rpcjson_files_stat(b, len, &st, &c), 0);
    CHECK_EQ_INT(st.kind, NODE_DIR);
    free(b);
    b = unit_read_fixture("kubo/files_stat_file.json", &len);
    CHECK_EQ_INT(rpcjson_files_stat(b, len, &st, &c), 0);
    CHECK_EQ_INT(st.kind, NODE_FILE);
    CHECK_EQ_INT(st.size, 6);
    CHECK_EQ_INT(st.mode, 0600);
    cid_format(&c, cs, sizeof cs);
    CHECK_EQ_STR(cs, "QmWXtanbvhNL2gTvtBboUD9Ti8xTnHEUuEhZtPjSbh1PBs");
    free(b);
    /* A stored time with its fraction (files/touch --mtime-nsecs). */
    b = unit_read_fixture("kubo/files_stat_mtime.json", &len);
    CHECK_EQ_INT(rpcjson_files_stat(b, len, &st, &c), 0);
    CHECK(st.has_mtime && st.mtime == 1700000000 && st.mtime_nsec == 123456789);
    free(b);
    /* MFS calls a symlink a "file"; Go's symlink mode bit tells. */
    b = unit_read_fixture("kubo/files_stat_symlink.json", &len);
    CHECK_EQ_INT(rpcjson_files_stat(b, len, &st, &c), 0);
    CHECK_EQ_INT(st.kind, NODE_SYMLINK);
    CHECK_EQ_INT(st.mode, 0777);
    free(b);
}

static void test_small_replies(void)
{
    size_t len;
    char *b = unit_read_fixture("kubo/add.ndjson", &len);
    struct cid c;
    char cs[CID_STR_MAX];
    CHECK_EQ_INT(rpcjson_add_result(b, len, &c), 0);
    cid_format(&c, cs, sizeof cs);
    CHECK_EQ_STR(cs, "QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR");
    free(b);

    uint64_t used = 0, max = 0;
    b = unit_read_fixture("kubo/repo_stat.json", &len);
    CHECK_EQ_INT(rpcjson_repo_stat(b, len, &used, &max), 0);
    CHECK(used > 0);
    CHECK(max == 10000000000ull);
    free(b);
    CHECK_EQ_INT(rpcjson_repo_stat("{\"RepoSize\":1}", 14, &used, &max), -EIO);

    /* files/rm failures: HTTP 200, one line per path, trailer "can't remove some files". */
    char msg[256];
    b = unit_read_fixture("kubo/files_rm_missing.json", &len);
    CHECK_EQ_INT(rpcjson_rm_error(b, len, msg, sizeof msg), -ENOENT);
    CHECK_EQ_STR(msg, "file does not exist");
    free(b);
    b = unit_read_fixture("kubo/files_rm_dir.json", &len);
    CHECK_EQ_INT(rpcjson_rm_error(b, len, msg, sizeof msg), -EISDIR);
    free(b);
    b = unit_read_fixture("kubo/files_rm_two.json", &len);
    CHECK_EQ_INT(rpcjson_rm_error(b, len, msg, sizeof msg), -EISDIR);
    free(b);
    b = unit_read_fixture("kubo/files_rm_dir.json.trailer", &len);
    CHECK_EQ_INT(rpc_classify_error(b), -EIO); /* the trailer alone tells nothing */
    free(b);
    CHECK_EQ_INT(rpcjson_rm_error("\"/a: b: directory not empty\"", 28, msg, sizeof msg),
                 -ENOTEMPTY);
    CHECK_EQ_INT(rpcjson_rm_error("garbage", 7, msg, sizeof msg), -EIO);
    CHECK_EQ_INT(rpcjson_rm_error("", 0, msg, sizeof msg), -EIO);
}

/* Feed body to an ls_reader in pieces of step bytes; the reader's result. */
static int ls_read(const char *body, size_t len, size_t step, struct seen *s, unsigned *skipped)
{
    struct ls_reader r;
    memset(s, 0, sizeof *s);
    ls_reader_init(&r, record, s);
    int rc = 0;
    for (size_t off = 0; off < len && rc == 0; off += step)
        rc = ls_reader_feed(&r, body + off, off + step <= len ? step : len - off);
    if (rc == 0)
        rc = ls_reader_finish(&r);
    if (skipped)
        *skipped = r.skipped;
    ls_reader_free(&r);
    return rc;
}

/* The ls reader: whole replies, streamed ones, in pieces of every size. */
static void test_ls_reader(void)
{
    static const char *fixtures[] = {"kubo/ls_dir.json", "kubo/ls_dir_stream.ndjson"};
    struct seen s;
    unsigned skipped;
    for (size_t f = 0; f < 2; f++) {
        size_t len;
        char *body = unit_read_fixture(fixtures[f], &len);
        for (size_t step = 1; step <= len; step = step < 8 ? step + 1 : step * 2) {
            CHECK_EQ_INT(ls_read(body, len, step, &s, &skipped), 0);
            CHECK_EQ_INT(s.n, 3);
            CHECK_EQ_STR(s.names[0], "h.txt");
            CHECK_EQ_INT(s.kinds[0], NODE_FILE);
            CHECK_EQ_INT(s.sizes[0], 6);
            CHECK_EQ_STR(s.cids[0], "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN");
            CHECK_EQ_STR(s.names[1], "link");
            CHECK_EQ_INT(s.kinds[1], NODE_SYMLINK);
            CHECK_EQ_STR(s.names[2], "sub");
            CHECK_EQ_INT(s.kinds[2], NODE_DIR);
            CHECK_EQ_INT(skipped, 0);
        }
        free(body);
    }
    size_t len;
    char *body = unit_read_fixture("kubo/ls_dir_bare_stream.ndjson", &len);
    CHECK_EQ_INT(ls_read(body, len, 7, &s, NULL), 0);
    CHECK_EQ_INT(s.n, 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_INT(s.kinds[i], NODE_UNKNOWN);
    free(body);
    body = unit_read_fixture("kubo/ls_empty.json", &len);
    CHECK_EQ_INT(ls_read(body, len, 5, &s, NULL), 0);
    CHECK_EQ_INT(s.n, 0);
    free(body);
    /* An empty streamed listing is no reply at all: not a listing. */
    CHECK_EQ_INT(ls_read("", 0, 1, &s, NULL), -EIO);
    body = unit_read_fixture("kubo/ls_hostile.json", &len);
    CHECK_EQ_INT(ls_read(body, len, 3, &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.names[0], "ok");
    CHECK_EQ_INT(skipped, 7);
    free(body);

    /* Brackets and quotes inside strings, nested values inside a link, keys elsewhere. */
    static const char tricky[] =
        "{\"Extra\":{\"Links\":[{\"Name\":\"no\"}]},\"Objects\":[{\"Hash\":\"]}[{\\\"\","
        "\"Links\":[{\"Name\":\"a]}\\\"{[\",\"X\":{\"y\":[1,{\"z\":\"}\"}]},\"Hash\":"
        "\"QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN\",\"Size\":6,\"Type\":2},"
        "{\"Name\":\"b\",\"Hash\":\"QmbLoRBqxVhtj6mCYKHJiC1qTT1dr7DYKRQ93rjcbMFgGn\","
        "\"Type\":1}]},{\"Links\":null}]}\n";
    for (size_t step = 1; step < sizeof tricky; step++) {
        CHECK_EQ_INT(ls_read(tricky, sizeof tricky - 1, step, &s, &skipped), 0);
        CHECK_EQ_INT(s.n, 2);
        CHECK_EQ_STR(s.names[0], "a]}\"{[");
        CHECK_EQ_INT(s.sizes[0], 6);
        CHECK_EQ_STR(s.names[1], "b");
        CHECK_EQ_INT(s.kinds[1], NODE_DIR);
    }

    /* Malformed or truncated: an error, never a crash. */
    static const char *bad[] = {"{", "{\"Objects\":", "{\"Objects\":{}}", "[1,2]",
                                "{\"Objects\":[{\"Links\":3}]}", "null", "\"x\"",
                                "{\"Objects\":[{\"Links\":{}}]}", "{\"Objects\":[]}]",
                                "{\"Objects\":[{\"Links\":[{\"Name\":}]}]}", "{}",
                                "{\"Objects\":[]} x", "{\"Objects\":[{\"Links\":\"[\"}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(ls_read(bad[i], strlen(bad[i]), 1, &s, NULL) < 0);
    /* Deeper than the reader follows. */
    char deep[64];
    memset(deep, '[', sizeof deep);
    memcpy(deep, "{\"a\":", 5);
    CHECK_EQ_INT(ls_read(deep, sizeof deep, 64, &s, NULL), -EIO);
    /* One link larger than 64 KiB. */
    size_t big = 70u << 10;
    char *huge = malloc(big + 100);
    CHECK(huge != NULL);
    if (!huge)
        return;
    int n = snprintf(huge, 100, "{\"Objects\":[{\"Links\":[{\"Name\":\"");
    memset(huge + n, 'x', big);
    memcpy(huge + n + big, "\"}]}]}", 6);
    CHECK_EQ_INT(ls_read(huge, (size_t)n + big + 6, 4096, &s, NULL), -EIO);
    free(huge);
    /* The callback's error stops the reader. */
    struct ls_reader r;
    memset(&s, 0, sizeof s);
    ls_reader_init(&r, stop_at_2, &s);
    CHECK_EQ_INT(ls_reader_feed(&r, tricky, sizeof tricky - 1), -ECANCELED);
    ls_reader_free(&r);
    body = unit_read_fixture("kubo/ls_dir.json", &len);
    memset(&s, 0, sizeof s);
    ls_reader_init(&r, stop_at_2, &s);
    CHECK_EQ_INT(ls_reader_feed(&r, body, len), -ECANCELED);
    CHECK_EQ_INT(s.n, 2);
    ls_reader_free(&r);
    free(body);
}

static void test_ls_hostile(void)
{
    struct seen s;
    unsigned skipped = 0;
    CHECK_EQ_INT(ls_fixture("kubo/ls_hostile.json", &s, &skipped), 0);
    CHECK_EQ_INT(s.n, 1);
    CHECK_EQ_STR(s.names[0], "ok");
    CHECK_EQ_INT(skipped, 7);

    /* Malformed or truncated JSON is an error, never a crash. */
    static const char *bad[] = {"{", "{\"Objects\":", "{\"Objects\":{}}", "[1,2]",
                                "{\"Objects\":[{\"Links\":3}]}", "null", "\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(rpcjson_ls(bad[i], strlen(bad[i]), record, &s, NULL) < 0);

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
    check_error("kubo/err_timeout.json", true, "context deadline exceeded", -ETIMEDOUT);
    check_error("kubo/err_no_link.json", true,
                "no link named \"nope\" under QmPfeLSqYNuJZwTSEgUwRCD8R4wLKUEtLCUYWvJid3js8X",
                -ENOENT);
    check_error("kubo/err_not_local.json", true,
                "block was not found locally (offline): ipld: could not find "
                "QmWVNXRXR42EK19McGxjXTrq77didRfLDvV1neUzBkWPtM",
                -ETIMEDOUT);
    check_error("kubo/err_404.txt", false, "404 page not found", -ENOENT);
    check_error("kubo/err_403.txt", false, "403 - Forbidden", -EIO);
    char msg[128];
    /* Binary garbage becomes printable text, never overflows. */
    char junk[600];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 37);
    rpc_error_message(junk, sizeof junk, false, msg, sizeof msg);
    CHECK(strlen(msg) < sizeof msg);
    CHECK_EQ_INT(rpc_classify_error(NULL), -EIO);
    CHECK_EQ_INT(rpc_classify_error("something else"), -EIO);
}

/* rpc_auth_header: the header line sent to the node's API and to the cluster's REST API. */
static void check_auth(const char *secret, const char *want)
{
    char *h = rpc_auth_header(secret);
    CHECK_EQ_STR(h, want);
    free(h);
}

static void test_auth_header(void)
{
    check_auth("basic:alice:s3cret", "Authorization: Basic YWxpY2U6czNjcmV0");
    check_auth("BASIC:alice:s3cret", "Authorization: Basic YWxpY2U6czNjcmV0");
    /* each padding length; a password may hold colons (only the first one splits) */
    check_auth("basic:a:", "Authorization: Basic YTo=");
    check_auth("basic:a:b", "Authorization: Basic YTpi");
    check_auth("basic:ab:c", "Authorization: Basic YWI6Yw==");
    check_auth("basic:u:p:q", "Authorization: Basic dTpwOnE=");
    /* already encoded (no colon): as it is */
    check_auth("basic:YWxpY2U6czNjcmV0", "Authorization: Basic YWxpY2U6czNjcmV0");
    check_auth("bearer:eyJ.tok.en", "Authorization: Bearer eyJ.tok.en");
    check_auth("Bearer:tok", "Authorization: Bearer tok");
    check_auth("tok", "Authorization: Bearer tok");
}

int main(void)
{
    test_version();
    test_import_config();
    test_id();
    test_ls();
    test_files_ls();
    test_files_stat();
    test_small_replies();
    test_ls_hostile();
    test_ls_reader();
    test_numbers();
    test_errors();
    test_auth_header();
    return unit_done("test_rpcjson");
}
