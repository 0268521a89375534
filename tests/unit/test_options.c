/* test_options.c - option values: sizes, API discovery and the spool directory. */
#include "config.h"

#include "options.h"
#include "unit.h"

#include <errno.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

int main(void)
{
    size_t v;
    CHECK_EQ_INT(parse_size("4096", &v), 0);
    CHECK_EQ_INT(v, 4096);
    CHECK_EQ_INT(parse_size("64M", &v), 0);
    CHECK_EQ_INT(v, 64u << 20);
    CHECK_EQ_INT(parse_size("1G", &v), 0);
    CHECK_EQ_INT(v, 1u << 30);
    CHECK_EQ_INT(parse_size("8MiB", &v), 0);
    CHECK_EQ_INT(v, 8u << 20);
    CHECK_EQ_INT(parse_size("256k", &v), 0);
    CHECK_EQ_INT(v, 256u << 10);
    CHECK_EQ_INT(parse_size("", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("-1", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("12Q", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("12Mx", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("99999999999999999999", &v), -EINVAL);
    CHECK_EQ_INT(parse_size("99999999999T", &v), -EINVAL);

    /* Discovery order: explicit, $IPFS_PATH/api (trimmed), default. */
    const char *src;
    char *ma = discover_api("/ip4/1.2.3.4/tcp/1", &src);
    CHECK_EQ_STR(ma, "/ip4/1.2.3.4/tcp/1");
    CHECK_EQ_STR(src, "--api");
    free(ma);
    char dir[] = "/tmp/ipfsfs-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/api", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("/ip4/127.0.0.1/tcp/4242/http\n", f);
        fclose(f);
    }
    setenv("IPFS_PATH", dir, 1);
    ma = discover_api(NULL, &src);
    CHECK_EQ_STR(ma, "/ip4/127.0.0.1/tcp/4242/http");
    CHECK_EQ_STR(src, "$IPFS_PATH/api");
    free(ma);
    unlink(path);
    ma = discover_api(NULL, &src);
    CHECK_EQ_STR(ma, "/ip4/127.0.0.1/tcp/5001");
    free(ma);
    rmdir(dir);

    /* The proxy is only what the user gives; the insecure secret only when asked. */
    {
        char *argv[] = {"ipfsfs", "--proxy=http://proxy.example:3128", "-o",
                        "api-auth-insecure,timeout=7", "/mnt", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(5, argv);
        struct options o;
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK_EQ_STR(o.proxy, "http://proxy.example:3128");
        CHECK_EQ_INT(o.api_auth_insecure, 1);
        CHECK_EQ_INT(o.timeout, 7);
        options_free(&o);
        fuse_opt_free_args(&args);
    }
    {
        char *argv[] = {"ipfsfs", "/mnt", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(2, argv);
        struct options o;
        setenv("http_proxy", "http://env-proxy.example:1", 1);
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK(o.proxy == NULL);
        CHECK_EQ_INT(o.api_auth_insecure, 0);
        options_free(&o);
        fuse_opt_free_args(&args);
        unsetenv("http_proxy");
    }

    /* The spool directory: where it came from, and refused unless it takes files. */
    {
        char sdir[] = "/tmp/ipfsfs-spool-test-XXXXXX";
        CHECK(mkdtemp(sdir) != NULL);
        char opt[128], file[128], missing[128];
        snprintf(opt, sizeof opt, "--spool-dir=%s", sdir);
        snprintf(file, sizeof file, "%s/file", sdir);
        snprintf(missing, sizeof missing, "%s/missing", sdir);
        char *argv[] = {"ipfsfs", opt, "/mnt", NULL};
        struct fuse_args args = FUSE_ARGS_INIT(3, argv);
        struct options o;
        CHECK_EQ_INT(options_parse(&args, &o), 0);
        CHECK_EQ_STR(o.spool_dir, sdir);
        CHECK_EQ_STR(o.spool_dir_from, "--spool-dir");
        CHECK_EQ_INT(options_check_spool_dir(&o), 0);
        /* Nothing left behind by the check. */
        CHECK(rmdir(sdir) == 0 && mkdir(sdir, 0700) == 0);
        char *given = o.spool_dir;
        o.spool_dir = missing;
        CHECK_EQ_INT(options_check_spool_dir(&o), -1);
        FILE *ff = fopen(file, "w");
        CHECK(ff != NULL);
        if (ff)
            fclose(ff);
        o.spool_dir = file;
        CHECK_EQ_INT(options_check_spool_dir(&o), -1);
        /* Mode bits do not stop root: a directory that is not writable is then on a read-only
         * filesystem (/proc takes no file either). */
        if (geteuid() != 0) {
            CHECK(chmod(sdir, 0500) == 0);
            o.spool_dir = sdir;
            CHECK_EQ_INT(options_check_spool_dir(&o), -1);
            CHECK(chmod(sdir, 0700) == 0);
        }
        o.spool_dir = "/proc";
        CHECK_EQ_INT(options_check_spool_dir(&o), -1);
        o.spool_dir = given;
        options_free(&o);
        fuse_opt_free_args(&args);
        unlink(file);
        rmdir(sdir);

        char *argv2[] = {"ipfsfs", "/mnt", NULL};
        struct fuse_args args2 = FUSE_ARGS_INIT(2, argv2);
        setenv("TMPDIR", sdir, 1);
        CHECK_EQ_INT(options_parse(&args2, &o), 0);
        CHECK_EQ_STR(o.spool_dir, sdir);
        CHECK_EQ_STR(o.spool_dir_from, "$TMPDIR");
        CHECK_EQ_INT(options_check_spool_dir(&o), -1); /* removed just above */
        options_free(&o);
        fuse_opt_free_args(&args2);
        unsetenv("TMPDIR");
    }
    return unit_done("test_options");
}
