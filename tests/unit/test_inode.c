/* test_inode.c - the inode table's change times: kept when the kernel forgets a name, and
 * across mounts through the times file (inode_times_save / inode_times_load), including a file
 * that is not one, or cut short. */
#include "config.h"

#include "inode.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>

static struct inode *add(struct inode_table *t, const char *name, unsigned cid)
{
    struct mfs_attr a = {.cid = unit_cid(cid), .kind = NODE_FILE, .size = 1, .cid_size = 1};
    return inode_mfs_insert_ref(t, inode_root(t), name, &a, NULL);
}

static int64_t changed(struct inode_table *t, const struct inode *ino)
{
    struct mfs_attr a;
    inode_mfs_get(t, ino, &a);
    return a.changed_ns;
}

/* A table as a new mount has it: the times file loaded (rc of the load in *rc). */
static struct inode_table *mount_table(const char *path, int *rc)
{
    struct inode_table *t = NULL;
    CHECK_EQ_INT(inode_table_new(&t), 0);
    *rc = inode_times_load(t, path);
    return t;
}

static void write_file(const char *path, const void *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (f) {
        CHECK_EQ_INT(fwrite(buf, 1, len, f), len);
        fclose(f);
    }
}

int main(void)
{
    char dir[] = "/tmp/test_inode.XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/change-times", dir);
    int rc;

    /* No file yet: nothing to take, no error. */
    struct inode_table *t = mount_table(path, &rc);
    CHECK_EQ_INT(rc, 0);
    struct inode *kept = add(t, "kept", 1);       /* still looked up at the end */
    struct inode *forgotten = add(t, "gone", 2);  /* forgotten by the kernel before the end */
    struct inode *untouched = add(t, "plain", 3); /* never seen to change */
    inode_mfs_touch(t, kept);
    inode_mfs_touch(t, forgotten);
    int64_t kept_ns = changed(t, kept), gone_ns = changed(t, forgotten);
    CHECK(kept_ns > 0 && gone_ns > 0);
    CHECK_EQ_INT(changed(t, untouched), 0);
    inode_forget(t, forgotten, 1);
    /* Forgotten and looked up again within the mount: the same time. */
    forgotten = add(t, "gone", 2);
    CHECK_EQ_INT(changed(t, forgotten), gone_ns);
    inode_forget(t, forgotten, 1);
    CHECK_EQ_INT(inode_times_save(t, path), 0);
    inode_table_free(t);

    /* The next mount: names with the same CID show their time again; another CID or a name
     * never seen to change show none (the caller shows the mount's start). */
    t = mount_table(path, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(changed(t, add(t, "kept", 1)), kept_ns);
    CHECK_EQ_INT(changed(t, add(t, "gone", 2)), gone_ns);
    CHECK_EQ_INT(changed(t, add(t, "plain", 3)), 0);
    inode_table_free(t);
    t = mount_table(path, &rc);
    CHECK_EQ_INT(changed(t, add(t, "kept", 9)), 0); /* changed on the node meanwhile */
    inode_table_free(t);

    /* Cut short inside a record: the whole records before it are taken. */
    FILE *f = fopen(path, "rb");
    char buf[4096];
    size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    CHECK(len > 40);
    write_file(path, buf, len - 5);
    t = mount_table(path, &rc);
    CHECK_EQ_INT(rc, 0);
    int64_t a = changed(t, add(t, "kept", 1)), b = changed(t, add(t, "gone", 2));
    CHECK((a == kept_ns && b == 0) || (a == 0 && b == gone_ns)); /* one whole record left */
    inode_table_free(t);

    /* Not a times file: -EINVAL and nothing taken. */
    memcpy(buf, "garbage!", 8);
    write_file(path, buf, len);
    t = mount_table(path, &rc);
    CHECK_EQ_INT(rc, -EINVAL);
    CHECK_EQ_INT(changed(t, add(t, "kept", 1)), 0);
    /* A save replaces it whole. */
    CHECK_EQ_INT(inode_times_save(t, path), 0);
    inode_table_free(t);
    t = mount_table(path, &rc);
    CHECK_EQ_INT(rc, 0);
    inode_table_free(t);

    /* Many names, each forgotten: every time is kept, within the mount and across two
     * remounts (each with another seed, so other slots). A run of taken slots around a
     * record's place (linear probing at half full: about 1 in 100,000 records) overwrote
     * another record; the table grows instead. */
    {
        enum { MANY = 200000 };
        int64_t *ns = calloc(MANY, sizeof *ns);
        CHECK(ns != NULL);
        snprintf(path, sizeof path, "%s/many-times", dir);
        t = mount_table(path, &rc);
        char nm[32];
        for (unsigned i = 0; ns && i < MANY; i++) {
            snprintf(nm, sizeof nm, "n%06u", i);
            struct inode *ino = add(t, nm, 1000 + i);
            inode_mfs_touch(t, ino);
            ns[i] = changed(t, ino);
            inode_forget(t, ino, 1);
        }
        for (int round = 0; ns && round < 3; round++) {
            unsigned lost = 0;
            for (unsigned i = 0; i < MANY; i++) {
                snprintf(nm, sizeof nm, "n%06u", i);
                struct inode *ino = add(t, nm, 1000 + i);
                lost += changed(t, ino) != ns[i];
                inode_forget(t, ino, 1);
            }
            CHECK_EQ_INT(lost, 0);
            CHECK_EQ_INT(inode_times_save(t, path), 0);
            inode_table_free(t);
            t = mount_table(path, &rc);
            CHECK_EQ_INT(rc, 0);
        }
        inode_table_free(t);
        free(ns);
    }

    /* A folder that cannot be written: an error, nothing left behind. */
    snprintf(path, sizeof path, "%s/missing/change-times", dir);
    t = mount_table(path, &rc);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(inode_times_save(t, path), -ENOENT);
    inode_table_free(t);

    unit_rm_rf(dir);
    return unit_done("test_inode");
}
