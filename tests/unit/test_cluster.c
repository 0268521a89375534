/* test_cluster.c - IPFS Cluster: replication factors, and statuses parsed from answers recorded
 * from ipfs-cluster-service v1.1.6 (tests/fixtures/cluster/README says how). */
#include "config.h"

#include "cluster.h"
#include "unixfs_enc.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int parse(const char *alloc_fixture, const char *pins_fixture, struct cluster_status *st)
{
    size_t al = 0, pl = 0;
    char *a = alloc_fixture ? unit_read_fixture(alloc_fixture, &al) : NULL;
    char *p = unit_read_fixture(pins_fixture, &pl);
    int rc = cluster_status_parse(a, al, p, pl, st);
    free(a);
    free(p);
    return rc;
}

/* Credentials, from a file or inside the URL, go over plain http only to loopback. */
static void test_plain_credentials(void)
{
    struct cluster *c = NULL;
    char err[256] = "";
    struct cluster_config cfg = {.url = "http://someone:secret@192.0.2.1:9094", .timeout_ms = 1000};
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), -EPERM);
    CHECK(strstr(err, "http://192.0.2.1:9094") != NULL);
    CHECK(strstr(err, "secret") == NULL); /* never the password itself */
    cfg.url = "http://192.0.2.1:9094";
    cfg.auth = "basic:someone:secret";
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), -EPERM);
    cfg.allow_plain_auth = true;
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), 0);
    cluster_free(c);
    cfg = (struct cluster_config){.url = "http://someone:secret@127.0.0.1:9094", .timeout_ms = 1000};
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), 0);
    cluster_free(c);
    cfg.url = "https://someone:secret@192.0.2.1:9094";
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), 0);
    cluster_free(c);
    cfg.url = "http://192.0.2.1:9094"; /* no credentials at all */
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), 0);
    cluster_free(c);
}

/* Unpins owed to the cluster come back from the state file (lines "unpin CID [NAME]"); lines
 * that do not parse are skipped; one CID is owed once. */
static void test_owed_state(void)
{
    char dir[] = "/tmp/test_cluster.XXXXXX", path[64], buf[1024];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/cluster-pins", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR\n\n"
          "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH 0 0 tree\n"
          "unpin QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH old%20name\n"
          "unpin QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn\n"
          "unpin QmUNLLsPACCz1vLxQVkXqqLX5R1X345qqfHbsf67hvA3Nn again\n"
          "unpin notacid name\n"
          "unpin\n",
          f);
    fclose(f);
    struct cluster *c = NULL;
    char err[256];
    struct cluster_config cfg = {.url = "http://127.0.0.1:9", .timeout_ms = 1000,
                                 .state_path = path};
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), 0);
    if (c) {
        CHECK(cluster_stats(c, buf, sizeof buf) > 0);
        CHECK(strstr(buf, "cluster_unpins_owed 2\n") != NULL);
        CHECK(strstr(buf, "cluster_root QmQrXZ4iXdEKQMiQT6GRg2Wy3vxb9exR25sYdaqoHwWWuR\n") != NULL);
        cluster_free(c);
    }
    /* At most 256 are kept: past that the oldest go. */
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fputs("\n\n", f);
    for (int i = 0; i < 300; i++) {
        uint8_t d[32] = {(uint8_t)i, (uint8_t)(i >> 8)};
        struct cid k;
        char s[CID_STR_MAX];
        CHECK_EQ_INT(block_cid(1, CID_CODEC_RAW, d, sizeof d, &k), 0);
        CHECK(cid_format(&k, s, sizeof s) > 0);
        fprintf(f, "unpin %s n%d\n", s, i);
    }
    fclose(f);
    c = NULL;
    CHECK_EQ_INT(cluster_new(&cfg, &c, err, sizeof err), 0);
    if (c) {
        CHECK(cluster_stats(c, buf, sizeof buf) > 0);
        CHECK(strstr(buf, "cluster_unpins_owed 256\n") != NULL);
        CHECK(strstr(buf, "cluster_root none\n") != NULL);
        cluster_free(c);
    }
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_plain_credentials();
    test_owed_state();
    int lo, hi;
    CHECK_EQ_INT(cluster_parse_replication("2", &lo, &hi), 0);
    CHECK_EQ_INT(lo, 2);
    CHECK_EQ_INT(hi, 2);
    CHECK_EQ_INT(cluster_parse_replication("2:3", &lo, &hi), 0);
    CHECK_EQ_INT(lo, 2);
    CHECK_EQ_INT(hi, 3);
    CHECK_EQ_INT(cluster_parse_replication("-1", &lo, &hi), 0);
    CHECK_EQ_INT(lo, -1);
    CHECK_EQ_INT(hi, -1);
    CHECK_EQ_INT(cluster_parse_replication("-1:-1", &lo, &hi), 0);
    const char *bad[] = {"", "0", "3:1", "2:", ":2", "x", "2:3:4", "-2", "1:-1", "-1:3",
                         "99999999999", "2 ", " 2", "+2", "2: 3", "2:+3", "\t2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = cluster_parse_replication(bad[i], &lo, &hi);
        CHECK_EQ_INT(rc, -EINVAL);
        if (rc != -EINVAL)
            fprintf(stderr, "  accepted: '%s'\n", bad[i]);
    }

    char line[8];
    cluster_one_line(line, sizeof line, "a\nb\r\tc");
    CHECK_EQ_STR(line, "a b  c");
    cluster_one_line(line, sizeof line, "0123456789");
    CHECK_EQ_STR(line, "0123456");

    struct cluster_status st;
    char buf[512];

    /* Pinned with 2:2 on three peers: two PINNED, one REMOTE (not allocated). */
    CHECK_EQ_INT(parse("cluster/pinned.alloc.json", "cluster/pinned.pins.json", &st), 0);
    CHECK(st.is_pin);
    CHECK_EQ_INT(st.rmin, 2);
    CHECK_EQ_INT(st.rmax, 2);
    CHECK_EQ_INT(st.peers, 3);
    CHECK_EQ_INT(st.pinned, 2);
    CHECK_EQ_INT(st.pinning + st.queued + st.failed, 0);
    CHECK(cluster_satisfied(&st));
    cluster_status_text(&st, buf, sizeof buf);
    CHECK_EQ_STR(buf, "pinned: 2 of 2 peers hold it (min 2, max 2)");

    /* Content no peer can find, pinned 3:3: every peer PINNING. */
    CHECK_EQ_INT(parse("cluster/pinning.alloc.json", "cluster/pinning.pins.json", &st), 0);
    CHECK(st.is_pin);
    CHECK_EQ_INT(st.pinning, 3);
    CHECK_EQ_INT(st.pinned, 0);
    CHECK(!cluster_satisfied(&st));
    cluster_status_text(&st, buf, sizeof buf);
    CHECK_EQ_STR(buf, "pinning: 0 of 3 peers hold it (min 3, max 3); 3 pinning, 0 queued");

    /* Not a pin (GET /allocations/CID was 404): every peer says "unpinned". */
    CHECK_EQ_INT(parse(NULL, "cluster/unpinned.pins.json", &st), 0);
    CHECK(!st.is_pin);
    CHECK_EQ_INT(st.peers, 3);
    CHECK_EQ_INT(st.pinned, 0);
    CHECK(!cluster_satisfied(&st));
    cluster_status_text(&st, buf, sizeof buf);
    CHECK_EQ_STR(buf, "unpinned: 0 of 0 peers hold it");

    /* The 404's body is not a status. */
    CHECK_EQ_INT(parse(NULL, "cluster/unpinned.alloc-404.json", &st), -EPROTO);
    /* Malformed answers. */
    CHECK_EQ_INT(cluster_status_parse(NULL, 0, "{", 1, &st), -EPROTO);
    CHECK_EQ_INT(cluster_status_parse("[]", 2, "{\"peer_map\":{}}", 15, &st), -EPROTO);
    CHECK_EQ_INT(cluster_status_parse(NULL, 0, "{\"peer_map\":{\"p\":{\"status\":7}}}", 31, &st),
                 0);
    CHECK_EQ_INT(st.peers, 1);
    CHECK_EQ_INT(st.pinned, 0);

    /* "Every peer" (-1): satisfied when every allocated peer has it. */
    st = (struct cluster_status){.is_pin = true, .rmin = -1, .rmax = -1, .pinned = 3, .peers = 3};
    CHECK(cluster_satisfied(&st));
    cluster_status_text(&st, buf, sizeof buf);
    CHECK_EQ_STR(buf, "pinned: 3 of 3 peers hold it (every peer)");
    st.pinning = 1;
    CHECK(!cluster_satisfied(&st));
    /* A failure is reported with the peer's error. */
    st = (struct cluster_status){.is_pin = true, .rmin = 2, .rmax = 2, .pinned = 1, .failed = 1};
    snprintf(st.error, sizeof st.error, "peer3: context deadline exceeded");
    CHECK(!cluster_satisfied(&st));
    cluster_status_text(&st, buf, sizeof buf);
    CHECK_EQ_STR(buf, "error: 1 of 2 peers hold it (min 2, max 2); 1 failed, peer3: context "
                      "deadline exceeded");
    /* A short buffer truncates like snprintf. */
    CHECK(cluster_status_text(&st, buf, 8) > 8);
    CHECK_EQ_STR(buf, "error: ");
    return unit_done("test_cluster");
}
